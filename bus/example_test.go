package bus_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
)

// Publisher is how a bus sends: PUBLISH (on a cluster, to the master of
// the channel's slot), or SPUBLISH when sharded.
func ExamplePublisher() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	sub := rdb.Subscribe(ctx, "shop:bus")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription is confirmed
		fmt.Println(err)
		return
	}
	publish := bus.Publisher(rdb, "shop:bus", false)
	if err := publish(ctx, []byte("hello")); err != nil {
		fmt.Println(err)
		return
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(msg.Channel, msg.Payload)
	// Output:
	// shop:bus hello
}

// EncodeSigned and Verify are how nodes with Options.Keys sign and check
// messages; a reader without keys decodes a signed message all the same.
func ExampleEncodeSigned() {
	key := []byte("a key of at least sixteen bytes")
	b := bus.EncodeSigned(bus.Message{Kind: bus.KindKeys, Seq: 1, Items: []string{"shop:item:1"}}, key)
	fmt.Println(bus.Verify(b, [][]byte{key}), bus.Verify(b, [][]byte{[]byte("another key, sixteen+")}))
	m, err := bus.Decode(b)
	fmt.Println(m.Items, err)
	b[len(b)-1] ^= 1 // a forged MAC
	fmt.Println(bus.Verify(b, [][]byte{key}))
	// Output:
	// true false
	// [shop:item:1] <nil>
	// false
}
