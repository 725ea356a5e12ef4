package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

// waitUntil polls cond until it holds; the deadline only guards against a
// hang; the verdict never depends on it.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// stampedeNodes returns n caches on addr, each with its own client.
func stampedeNodes(t *testing.T, addr string, n int, o tiered.Options) ([]*tiered.Cache, []*tiered.Group[string]) {
	caches := make([]*tiered.Cache, n)
	groups := make([]*tiered.Group[string], n)
	for i := range caches {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, PoolSize: 32})
		t.Cleanup(func() { rdb.Close() })
		o.Redis = rdb
		if o.Namespace == "" {
			o.Namespace = "stampede"
		}
		caches[i] = newCache(t, o)
		groups[i] = newGroup[string](t, caches[i], "hot", tiered.GroupOptions{})
	}
	return caches, groups
}

func sumStats(cs []*tiered.Cache, f func(tiered.Stats) uint64) uint64 {
	var n uint64
	for _, c := range cs {
		n += f(c.Stats())
	}
	return n
}

// stampede has nodes x perNode goroutines Fetch one cold key at once. Every
// loader call blocks until every node has tried the lease (one won, the
// others found it busy), so that no node finds the value filled already
// and the count cannot depend on timing; it returns the number of loader
// calls. The timeouts are long (a minute for a load and for a lease wait,
// ten seconds for a Redis call): 1,600 goroutines under -race on a loaded
// machine must not turn a slow Redis call into a failure, nor a slow load
// into a waiter that gives up.
func stampede(t *testing.T, nodes, perNode int, o tiered.Options) (loads int64, caches []*tiered.Cache) {
	o.LoadTimeout, o.RedisTimeout = time.Minute, 10*time.Second
	caches, groups := stampedeNodes(t, startServer(t), nodes, o)
	var calls atomic.Int64
	tried := func() (won, busy, redisErrors uint64) {
		won = sumStats(caches, func(s tiered.Stats) uint64 { return s.LeasesWon })
		busy = sumStats(caches, func(s tiered.Stats) uint64 { return s.LeasesBusy })
		return won, busy, sumStats(caches, func(s tiered.Stats) uint64 { return s.RedisErrors })
	}
	load := func(ctx context.Context, id string) (string, error) {
		calls.Add(1)
		for {
			won, busy, redisErrors := tried()
			switch {
			case won+busy == uint64(nodes):
				return "v", nil
			case redisErrors > 0 || ctx.Err() != nil:
				return "", fmt.Errorf("not every node tried the lease: %d won, %d busy, %d Redis errors, %v", won, busy, redisErrors, ctx.Err())
			}
			time.Sleep(time.Millisecond)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, nodes*perNode)
	for _, g := range groups {
		for range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if v, err := g.Fetch(context.Background(), "k", load); err != nil || v != "v" {
					errs <- fmt.Errorf("Fetch = %q, %v", v, err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return calls.Load(), caches
}

// TestFleetStampede: 8 nodes x 200 goroutines miss one key together. With
// lease waiting (the default) the fleet calls the loader once; with it off,
// every node that found the lease loads too.
func TestFleetStampede(t *testing.T) {
	t.Run("wait", func(t *testing.T) {
		loads, caches := stampede(t, 8, 200, tiered.Options{})
		if loads != 1 {
			t.Fatalf("loader calls = %d; want 1", loads)
		}
		if w := sumStats(caches, func(s tiered.Stats) uint64 { return s.LeasesWaited }); w != 7 {
			t.Fatalf("LeasesWaited = %d; want 7 (one per other node)", w)
		}
	})
	t.Run("no-wait", func(t *testing.T) {
		loads, _ := stampede(t, 8, 200, tiered.Options{DisableLeaseWait: true})
		if loads != 8 {
			t.Fatalf("loader calls = %d; want 8 (one per node)", loads)
		}
	})
}

// TestClosedLeaseHolder: the node holding the lease is closed mid-load; the
// others, waiting, load once between them and cache the value.
func TestClosedLeaseHolder(t *testing.T) {
	caches, groups := stampedeNodes(t, startServer(t), 4, tiered.Options{LeaseWait: time.Minute})
	entered := make(chan struct{})
	holder := func(ctx context.Context, id string) (string, error) {
		close(entered)
		<-ctx.Done() // Close cancels the load
		return "", ctx.Err()
	}
	go groups[0].Fetch(context.Background(), "k", holder) //nolint:errcheck // its result is the closed cache's
	<-entered
	var calls atomic.Int64
	load := func(context.Context, string) (string, error) { calls.Add(1); return "v", nil }
	var wg sync.WaitGroup
	for _, g := range groups[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := g.Fetch(context.Background(), "k", load); err != nil || v != "v" {
				t.Errorf("Fetch = %q, %v", v, err)
			}
		}()
	}
	waitUntil(t, "the other nodes wait for the lease", func() bool {
		return sumStats(caches[1:], func(s tiered.Stats) uint64 { return s.LeasesBusy }) == 3
	})
	caches[0].Close()
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("loader calls after the holder closed = %d; want 1", n)
	}
}

// TestDeadLeaseHolder: a lease left by a process that died (never released)
// delays the others until it expires; then they load once between them.
func TestDeadLeaseHolder(t *testing.T) {
	addr := startServer(t)
	caches, groups := stampedeNodes(t, addr, 4, tiered.Options{LeaseWait: time.Minute})
	dead := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { dead.Close() })
	st, err := remote.New(dead, remote.Options{Namespace: "stampede"})
	if err != nil {
		t.Fatal(err)
	}
	const leaseTTL = 300 * time.Millisecond
	if _, won, _, err := st.Acquire(context.Background(), groups[0].Key("k"), leaseTTL); err != nil || !won {
		t.Fatalf("planting the dead lease: won %v, %v", won, err)
	}
	planted := time.Now()
	var calls atomic.Int64
	load := func(context.Context, string) (string, error) { calls.Add(1); return "v", nil }
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := g.Fetch(context.Background(), "k", load); err != nil || v != "v" {
				t.Errorf("Fetch = %q, %v", v, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("loader calls = %d; want 1", n)
	}
	if e := time.Since(planted); e < leaseTTL {
		t.Fatalf("a node loaded %v after the lease was planted, before it expired", e)
	}
	t.Logf("delay behind a dead lease of %v: %v", leaseTTL, time.Since(planted))
	_ = caches
}

// TestSlowLoadRenewsItsLease: a load that runs past its LeaseTTL keeps its
// lease by renewing it, and its value is cached.
func TestSlowLoadRenewsItsLease(t *testing.T) {
	rdb := newReal(t)
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "renew", LeaseTTL: 150 * time.Millisecond})
	g := newGroup[string](t, c, "slow", tiered.GroupOptions{})
	v, err := g.Fetch(context.Background(), "1", func(context.Context, string) (string, error) {
		// Four renewals, 50ms apart: the load outlives the 150ms lease.
		waitUntil(t, "four renewals", func() bool { return c.Stats().LeasesRenewed >= 4 })
		return "v", nil
	})
	if err != nil || v != "v" {
		t.Fatalf("Fetch = %q, %v", v, err)
	}
	if s := c.Stats(); s.LeasesLost != 0 {
		t.Fatalf("LeasesLost = %d; want 0", s.LeasesLost)
	}
	raw, err := rdb.Get(context.Background(), "renew:slow:1").Bytes()
	if err != nil || string(raw[len(raw)-3:]) != `"v"` {
		t.Fatalf("Redis holds %q, %v; want the value", raw, err)
	}
}

// TestLostLeaseIsCounted: a lease removed under a slow load (here by hand, as
// an expiry would) is reported lost at the next renewal, and the value is
// returned but not cached.
func TestLostLeaseIsCounted(t *testing.T) {
	rdb := newReal(t)
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "renew", LeaseTTL: 150 * time.Millisecond})
	g := newGroup[string](t, c, "slow", tiered.GroupOptions{})
	v, err := g.Fetch(context.Background(), "1", func(ctx context.Context, _ string) (string, error) {
		if err := rdb.Del(ctx, "renew:slow:1").Err(); err != nil {
			return "", err
		}
		waitUntil(t, "the lost lease is noticed", func() bool { return c.Stats().LeasesLost == 1 })
		return "v", nil
	})
	if err != nil || v != "v" {
		t.Fatalf("Fetch = %q, %v", v, err)
	}
	if n, _ := rdb.Exists(context.Background(), "renew:slow:1").Result(); n != 0 {
		t.Fatal("a load that lost its lease wrote its value")
	}
	c.WaitL1()
	if _, err := g.Get(context.Background(), "1"); !errors.Is(err, tiered.ErrNotCached) {
		t.Fatalf("Get = %v; want ErrNotCached", err)
	}
	if s := c.Stats(); s.LeasesLost != 1 {
		t.Fatalf("LeasesLost = %d; want 1", s.LeasesLost)
	}
}
