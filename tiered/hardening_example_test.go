package tiered_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// With BusKey, every node signs its invalidations and applies only those
// signed under one of its keys: someone who can publish on the channel but
// holds no key can neither invalidate nor blind the fleet.
func ExampleOptions_busKey() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	keys := [][]byte{[]byte("32 random bytes from your secrets")} // [new, old] while rotating
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop", BusKey: keys})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx := context.Background()
	_ = c.WaitBus(ctx)
	fmt.Println(c.Invalidate(ctx, "user_profile:42"))
	fmt.Println(c.Stats().BusRejected)
	// Output:
	// <nil>
	// 0
}

// A pattern beyond the documented limits is refused before anything is
// applied.
func ExampleCache_InvalidatePattern_limits() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	ctx := context.Background()
	err := c.InvalidatePattern(ctx, "user_profile:*"+strings.Repeat("?", tiered.MaxPatternWildcards))
	fmt.Println(err)
	fmt.Println(c.InvalidatePattern(ctx, "user_profile:4?"))
	// Output:
	// tiered: invalidate pattern: glob: pattern beyond limits: 33 wildcards (*, ?, [...]), more than 32
	// <nil>
}
