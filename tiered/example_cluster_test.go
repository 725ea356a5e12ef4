package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

// A cache on a Redis Cluster takes the cluster client as it is: nothing
// else changes. (Not run: New makes no call itself, but the bus it starts
// subscribes and sends heartbeats at once, to these addresses.)
func ExampleNew_cluster() {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"},
		ContextTimeoutEnabled: true, // lets RedisTimeout bound every call
	})
	defer rdb.Close()
	c, err := tiered.New(tiered.Options{
		Redis:              rdb,
		Namespace:          "shop",
		ShardedPubSub:      true, // optional: SPUBLISH/SSUBSCRIBE instead of a cluster-wide broadcast
		InvalidateReplicas: 1,    // optional: an invalidation returns nil only once a replica has it
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
}

// A cache behind Sentinel takes go-redis's failover client. (Not run: the
// bus that New starts asks these Sentinels for the master at once.)
func ExampleNew_sentinel() {
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            "mymaster",
		SentinelAddrs:         []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
		ContextTimeoutEnabled: true,
	})
	defer rdb.Close()
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop", InvalidateReplicas: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
}

// With InvalidateReplicas, an invalidation that no replica acknowledged in
// time is an error, and the cache retries it in the background. The
// embedded Redis here has no replica at all.
func ExampleOptions_invalidateReplicas() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, err := tiered.New(tiered.Options{
		Redis: rdb, Namespace: "shop", DisableBus: true,
		InvalidateReplicas: 1, InvalidateReplicasTimeout: 10 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	err = c.Invalidate(context.Background(), "profile:42")
	fmt.Println("not replicated:", errors.Is(err, remote.ErrNotReplicated))
	fmt.Println("waiting for a retry:", c.PendingInvalidations())
	// Output:
	// not replicated: true
	// waiting for a retry: 1
}
