package tiered_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// TestColdStartLoadsOnce: the first program a user writes. New, NewGroup,
// then two Fetch calls of one cold key without WaitBus: the loader runs
// once, and the value is in Redis. The bus's first subscription flushes L1
// while the first load is in progress (forced here: the subscription waits
// until the load has taken its token, and the loader waits for the
// subscription); the flush vetoes that load's L1 fill only. The lease
// guards Redis: the compare-and-set fills it, and the second Fetch is an
// L2 hit.
//
// With SetFlushVetoesL2 (a flush vetoing the Redis fill too, as before),
// the same run loads twice and loses a lease: the subtest "flush vetoes
// L2" shows that the test catches it.
func TestColdStartLoadsOnce(t *testing.T) {
	for _, old := range []bool{false, true} {
		name := "flush vetoes L1 only"
		if old {
			name = "flush vetoes L2"
		}
		t.Run(name, func(t *testing.T) {
			loads, lost, inRedis := coldStart(t, old)
			switch {
			case !old && (loads != 1 || lost != 0 || !inRedis):
				t.Fatalf("%d loads, %d leases lost, value in Redis %v; want 1 load, 0 lost, in Redis", loads, lost, inRedis)
			case old && (loads != 2 || lost != 1 || inRedis):
				t.Fatalf("with a flush vetoing the Redis fill: %d loads, %d leases lost, value in Redis %v; want the double load the test must catch (2 loads, 1 lost, not in Redis)", loads, lost, inRedis)
			}
		})
	}
}

// coldStart runs the cold start on a fresh real redis-server and returns
// the loader calls, the leases lost, and whether Redis held the value
// after the first Fetch.
func coldStart(t *testing.T, flushVetoesL2 bool) (loads int64, lost uint64, inRedis bool) {
	srv := startRedis(t)
	// Every new connection (the read's and the bus's subscription) waits
	// at the gate until the first load has taken its token.
	var gate dialGate
	gate.close()
	var d net.Dialer
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, Dialer: gate.wrap(d.DialContext)})
	t.Cleanup(func() { rdb.Close() })
	t.Cleanup(gate.reopen) // before the client closes: nothing stays held

	// Long timeouts: the loader waits for the subscription, and a loaded
	// machine must not turn that wait or a Redis call into an error.
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "cold", LoadTimeout: time.Minute, RedisTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	tiered.SetFlushVetoesL2(c, flushVetoesL2)
	tiered.SetHook(c, func(point string) {
		if point == "read" { // the token is taken
			gate.reopen()
		}
	})
	g, err := tiered.NewGroup[User](c, "users", tiered.GroupOptions{})
	if err != nil {
		t.Fatalf("NewGroup: %v", err)
	}
	var calls atomic.Int64
	load := func(ctx context.Context, id string) (User, error) {
		calls.Add(1)
		// The subscription, and so its flush of L1, lands during the load.
		if err := c.WaitBus(ctx); err != nil {
			return User{}, err
		}
		return User{ID: id, Name: "user " + id}, nil
	}
	ctx := context.Background()
	admin := srv.Client(t)
	for i := range 2 {
		u, err := g.Fetch(ctx, "1", load)
		if err != nil || u.Name != "user 1" {
			t.Fatalf("Fetch #%d = %+v, %v; want user 1", i+1, u, err)
		}
		if i == 0 {
			n, err := admin.Exists(ctx, "cold:"+g.Key("1")).Result()
			if err != nil {
				t.Fatalf("EXISTS: %v", err)
			}
			inRedis = n == 1
		}
	}
	s := c.Stats()
	t.Logf("loads %d, leases won %d, lost %d, L2 hits %d, value in Redis after the first Fetch %v",
		calls.Load(), s.LeasesWon, s.LeasesLost, s.L2Hits, inRedis)
	return calls.Load(), s.LeasesLost, inRedis
}
