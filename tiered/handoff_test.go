package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// handOffFleet is three nodes on one real Redis with their bus: a holds the
// lease and loads, b waits for it, c writes. Every node watches a vanished
// lease for a minute (the loaders here take as long as the test needs), and
// hands off unless off; a wait lasts up to a minute.
func handOffFleet(t *testing.T, off bool, rec tiered.Recorder) (a, b, c *tiered.Cache, ga, gb, gc *tiered.Group[string]) {
	caches, groups := stampedeNodes(t, startServer(t), 3, tiered.Options{Namespace: "handoff", Recorder: rec, LeaseWait: time.Minute})
	for _, n := range caches {
		tiered.SetHandOffWatch(n, time.Minute)
		tiered.SetNoHandOff(n, off)
	}
	return caches[0], caches[1], caches[2], groups[0], groups[1], groups[2]
}

// TestHandOffAcrossInvalidation: node b waits for the lease of node a's
// load; node c writes version 2 and invalidates the key, which removes the
// lease; then a's load of version 1 ends. a cannot fill it (its lease is
// gone), but b began its read before the invalidation, so b takes version 1
// from a's hand-off instead of loading again: one load in all. b's next read
// began after b applied the invalidation and gets version 2: the hand-off
// put nothing stale in b's L1. With the hand-off switched off, b's wait
// ends when the lease vanishes and b loads version 2 itself: the count can
// fail.
func TestHandOffAcrossInvalidation(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("hand-off off=%v", off), func(t *testing.T) {
			var served atomic.Int64 // lease waits that ended with a value
			a, b, c, ga, gb, gc := handOffFleet(t, off, tiered.RecorderFunc(func(e tiered.Event) {
				if e.Kind == tiered.EventLeaseWaited && e.Err == nil {
					served.Add(1)
				}
			}))
			var version atomic.Int64
			version.Store(1)
			var loads atomic.Int64
			started, release := make(chan struct{}), make(chan struct{})
			slow := func(ctx context.Context, id string) (string, error) {
				loads.Add(1)
				v := fmt.Sprintf("v%d", version.Load())
				close(started)
				<-release
				return v, nil
			}
			load := func(ctx context.Context, id string) (string, error) {
				loads.Add(1)
				return fmt.Sprintf("v%d", version.Load()), nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang's guard only
			defer cancel()
			aDone := make(chan error, 1)
			go func() {
				v, err := ga.Fetch(ctx, "k", slow)
				if err == nil && v != "v1" {
					err = fmt.Errorf("a read %q; want v1, what it loaded", v)
				}
				aDone <- err
			}()
			<-started
			type result struct {
				v   string
				err error
			}
			bDone := make(chan result, 1)
			go func() {
				v, err := gb.Fetch(ctx, "k", load)
				bDone <- result{v, err}
			}()
			waitUntil(t, "b found a's lease", func() bool { return b.Stats().LeasesBusy == 1 })
			version.Store(2)
			if err := c.Invalidate(ctx, gc.Key("k")); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "a and b applied the invalidation", func() bool {
				return a.Stats().InvalidationsReceived == 1 && b.Stats().InvalidationsReceived == 1
			})
			close(release)
			if err := <-aDone; err != nil {
				t.Fatal(err)
			}
			res := <-bDone
			want, wantLoads := "v1", int64(1)
			if off {
				want, wantLoads = "v2", 2
			}
			if res.err != nil || res.v != want || loads.Load() != wantLoads {
				t.Fatalf("b read %q, %v after %d loads; want %q after %d", res.v, res.err, loads.Load(), want, wantLoads)
			}
			if n := served.Load(); n != 2-wantLoads {
				t.Errorf("%d lease waits ended with a value; want %d", n, 2-wantLoads)
			}
			if v, err := gb.Fetch(ctx, "k", load); err != nil || v != "v2" {
				t.Fatalf("b's read after the invalidation = %q, %v; want v2", v, err)
			}
		})
	}
}

// TestHandOffOfAFailedLoad: when the load of a lease that vanished fails,
// its holder hands off a mark that no value is coming, and the waiting
// node takes the lease and loads at once instead of watching for the rest
// of its (here one-minute) window; without the mark the read would outlast
// the test's guard.
func TestHandOffOfAFailedLoad(t *testing.T) {
	_, b, c, ga, gb, gc := handOffFleet(t, false, nil)
	started, release := make(chan struct{}), make(chan struct{})
	failing := func(ctx context.Context, id string) (string, error) {
		close(started)
		<-release
		return "", errors.New("the database is down")
	}
	var loads atomic.Int64
	load := func(ctx context.Context, id string) (string, error) {
		loads.Add(1)
		return "fresh", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	aDone := make(chan error, 1)
	go func() {
		_, err := ga.Fetch(ctx, "k", failing)
		aDone <- err
	}()
	<-started
	bDone := make(chan error, 1)
	var got string
	go func() {
		var err error
		got, err = gb.Fetch(ctx, "k", load)
		bDone <- err
	}()
	waitUntil(t, "b found a's lease", func() bool { return b.Stats().LeasesBusy == 1 })
	if err := c.Invalidate(ctx, gc.Key("k")); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-aDone; err == nil {
		t.Fatal("a's failed load returned no error")
	}
	if err := <-bDone; err != nil || got != "fresh" || loads.Load() != 1 {
		t.Fatalf("b read %q, %v after %d loads of its own; want fresh after 1", got, err, loads.Load())
	}
}

// TestVanishedLeaseWithoutHandOff: a lease that vanishes and whose holder
// never hands off (it died, or runs a version without hand-offs) is watched
// for the window only; then the waiting node takes the lease and loads.
func TestVanishedLeaseWithoutHandOff(t *testing.T) {
	srv := startRedis(t)
	c := newCache(t, tiered.Options{Redis: srv.Client(t), Namespace: "gone", DisableBus: true, LeaseTTL: time.Minute, LeaseWait: time.Minute})
	tiered.SetHandOffWatch(c, 20*time.Millisecond)
	g := newGroup[string](t, c, "g", tiered.GroupOptions{})
	holdLeases(t, srv, "gone", g, "k")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var got string
	var loads atomic.Int64
	go func() {
		var err error
		got, err = g.Fetch(ctx, "k", func(context.Context, string) (string, error) {
			loads.Add(1)
			return "mine", nil
		})
		done <- err
	}()
	waitUntil(t, "the lease was found busy", func() bool { return c.Stats().LeasesBusy == 1 })
	if err := srv.Client(t).Del(ctx, "gone:g:k").Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || got != "mine" || loads.Load() != 1 {
		t.Fatalf("Fetch = %q, %v after %d loads; want mine after 1", got, err, loads.Load())
	}
	if s := c.Stats(); s.LeasesWon != 1 {
		t.Errorf("%d leases won; want 1, taken after the watch", s.LeasesWon)
	}
}

// gate holds a client's pipelines of GETs, PTTLs and scripts (the polls of
// a lease wait, the first of which marks the lease as waited for) while
// shut; everything else passes (a single read's lease and fill are not
// pipelined).
type gate struct{ shut atomic.Pointer[chan struct{}] }

func (g *gate) close() { ch := make(chan struct{}); g.shut.Store(&ch) }
func (g *gate) open() {
	if ch := g.shut.Swap(nil); ch != nil {
		close(*ch)
	}
}
func (*gate) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ch := g.shut.Load(); ch != nil && !slices.ContainsFunc(cmds, func(c redis.Cmder) bool {
			n := c.Name()
			return n != "get" && n != "pttl" && n != "evalsha" && n != "eval"
		}) {
			<-*ch
		}
		return next(ctx, cmds)
	}
}

// TestHandOffOfAFilledValue: node a fills its value (the compare-and-set
// succeeds), then node c invalidates the key, all while node b's polls are
// held; b's first poll then finds the key empty. b began before the
// invalidation, and the fill's pipeline handed the value off too: b takes
// it, with one load in all. Without the hand-off b loads again.
func TestHandOffOfAFilledValue(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("hand-off off=%v", off), func(t *testing.T) {
			addr := startServer(t)
			var gb gate
			nodes := make([]*tiered.Cache, 3)
			groups := make([]*tiered.Group[string], 3)
			for i := range nodes {
				rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
				t.Cleanup(func() { rdb.Close() })
				if i == 1 {
					rdb.AddHook(&gb)
				}
				// RedisTimeout: a loaded machine must not fail the invalidation.
				nodes[i] = newCache(t, tiered.Options{Redis: rdb, Namespace: "filled", LeaseWait: time.Minute, RedisTimeout: 10 * time.Second})
				tiered.SetHandOffWatch(nodes[i], time.Minute)
				tiered.SetNoHandOff(nodes[i], off)
				groups[i] = newGroup[string](t, nodes[i], "g", tiered.GroupOptions{})
			}
			b := nodes[1]
			// b learns of the fill by its held polls only: a wake notice
			// would bring it the value without a read.
			tiered.SetNoWakeWait(b, true)
			var version, loads atomic.Int64
			version.Store(1)
			started, release := make(chan struct{}), make(chan struct{})
			load := func(ctx context.Context, id string) (string, error) {
				if loads.Add(1) == 1 {
					close(started)
					<-release
				}
				return fmt.Sprintf("v%d", version.Load()), nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang's guard only
			defer cancel()
			aDone := make(chan error, 1)
			go func() {
				_, err := groups[0].Fetch(ctx, "k", load)
				aDone <- err
			}()
			<-started
			gb.close()
			t.Cleanup(gb.open) // before the caches close: a failed check must not leave b's polls held
			bDone := make(chan string, 1)
			go func() {
				v, err := groups[1].Fetch(ctx, "k", load)
				if err != nil {
					v = err.Error()
				}
				bDone <- v
			}()
			waitUntil(t, "b found a's lease", func() bool { return b.Stats().LeasesBusy == 1 })
			close(release)
			if err := <-aDone; err != nil {
				t.Fatal(err)
			}
			version.Store(2)
			if err := nodes[2].Invalidate(ctx, groups[2].Key("k")); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "b applied the invalidation", func() bool { return b.Stats().InvalidationsReceived == 1 })
			gb.open()
			want, wantLoads := "v1", int64(1)
			if off {
				want, wantLoads = "v2", 2
			}
			if got := <-bDone; got != want || loads.Load() != wantLoads {
				t.Fatalf("b read %q after %d loads; want %q after %d", got, loads.Load(), want, wantLoads)
			}
			if v, err := groups[1].Fetch(ctx, "k", load); err != nil || v != "v2" {
				t.Fatalf("b's read after the invalidation = %q, %v; want v2", v, err)
			}
		})
	}
}
