package tiered_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// Reads fail open: while Redis cannot serve, Fetch returns the loader's
// value and no error, and after BreakerFailures failed calls in a row the
// breaker stops calling Redis until a probe succeeds.
func ExampleOptions_breaker() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{
		Redis: rdb, Namespace: "shop", DisableBus: true,
		BreakerFailures: 3, BreakerCooldown: time.Hour,
	})
	defer c.Close()
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{})

	mr.SetError("LOADING Redis is loading the dataset in memory") // Redis cannot serve
	ctx := context.Background()
	for _, id := range []string{"1", "2", "3", "4"} {
		u, err := profiles.Fetch(ctx, id, loadProfile)
		fmt.Println(u.Name, err)
	}
	s := c.Stats()
	fmt.Println("breaker opens:", s.BreakerOpens, "failed or refused Redis calls:", s.RedisErrors)
	// Output:
	// loading 1 from the database
	// user 1 <nil>
	// loading 2 from the database
	// user 2 <nil>
	// loading 3 from the database
	// user 3 <nil>
	// loading 4 from the database
	// user 4 <nil>
	// breaker opens: 1 failed or refused Redis calls: 4
}
