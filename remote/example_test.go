package remote_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
)

// LoadScripts puts the store's scripts in every server's script cache at
// start-up; without it, the first call that meets NOSCRIPT loads them.
func ExampleStore_LoadScripts() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	s, err := remote.New(rdb, remote.Options{Namespace: "shop"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("loaded:", s.LoadScripts(context.Background()) == nil)
	// Output:
	// loaded: true
}

// A wake notice names the Redis key of a lease that a node waited for;
// one from a fill that succeeded carries the lease's identity and the
// envelope the fill wrote as well.
func ExampleParseWake() {
	lease := remote.Encode(remote.Record{Kind: remote.KindLease, Token: 7})[:11]
	env := remote.Encode(remote.Record{Kind: remote.KindValue, Token: 1, Payload: []byte(`"v"`)})
	for _, notice := range []string{"shop:user:42", fmt.Sprintf("\x00%d:%s%s%s", len("shop:user:42"), "shop:user:42", lease, env)} {
		key, l, rec, hasRec, ok := remote.ParseWake(notice)
		fmt.Printf("%s lease=%d value=%v ok=%v %v %q\n", key, l, hasRec, ok, rec.Kind, rec.Payload)
	}
	// Output:
	// shop:user:42 lease=0 value=false ok=true miss ""
	// shop:user:42 lease=7 value=true ok=true value "\"v\""
}
