package tiered_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// msWindow is the MaxStale of the rig's group: long, as the rig's clock is
// manual (Redis keeps the stale envelope for that long in real time).
const msWindow = time.Minute

// msRig is a fleet of nodes on one Redis sharing a manual clock, each with
// the group "m" (TTL 1h, MaxStale msWindow, no jitter).
type msRig struct {
	t        *testing.T
	rdb      redis.UniversalClient
	clk      *manualClock
	caches   []*tiered.Cache
	groups   []*tiered.Group[string]
	received []chan struct{} // per node: a receive per invalidation message applied
	loaded   []chan struct{} // per node: a receive per background load ended after a stale serve
	loads    atomic.Int64

	mu    sync.Mutex                      // protects hooks
	hooks map[int]func(point string) bool // per node: the test's hook, if any
}

func newMSRig(t *testing.T, rdb redis.UniversalClient, n int, gopts tiered.GroupOptions) *msRig {
	return newMixedRig(t, rdb, n, gopts, nil)
}

// newMixedRig is newMSRig whose nodes in strict have a group without
// MaxStale, as a node of a release before it (or configured otherwise)
// would run during a rolling upgrade.
func newMixedRig(t *testing.T, rdb redis.UniversalClient, n int, gopts tiered.GroupOptions, strict map[int]bool) *msRig {
	r := &msRig{t: t, rdb: rdb, clk: newManualClock(time.Now()), hooks: map[int]func(string) bool{}}
	gopts.TTL = time.Hour
	if gopts.MaxStale == 0 {
		gopts.MaxStale = msWindow
	}
	for i := 0; i < n; i++ {
		recv, loaded := make(chan struct{}, 64), make(chan struct{}, 64)
		rec := tiered.RecorderFunc(func(e tiered.Event) {
			if e.Kind == tiered.EventInvalidationReceived {
				recv <- struct{}{}
			}
		})
		// RedisTimeout: a loaded machine must not fail an invalidation.
		o := tiered.Options{Redis: rdb, Namespace: "ms", DisableJitter: true, L1TTL: 2 * time.Hour, Recorder: rec, RedisTimeout: 10 * time.Second}
		c := newCache(t, tiered.WithClock(o, r.clk))
		tiered.SetHook(c, func(point string) {
			if point == "stale-loaded" {
				loaded <- struct{}{}
			}
			r.mu.Lock()
			h := r.hooks[i]
			r.mu.Unlock()
			if h != nil {
				h(point)
			}
		})
		r.caches = append(r.caches, c)
		gi := gopts
		if strict[i] {
			gi.MaxStale = 0
		}
		r.groups = append(r.groups, newGroup[string](t, c, "m", gi))
		r.received, r.loaded = append(r.received, recv), append(r.loaded, loaded)
	}
	return r
}

// hook sets node i's test hook.
func (r *msRig) hook(i int, h func(point string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks[i] = h
}

// ok loads value.
func (r *msRig) ok(value string) tiered.LoaderFunc[string] {
	return func(context.Context, string) (string, error) { r.loads.Add(1); return value, nil }
}

// gated loads value once release is closed, after telling started.
func (r *msRig) gated(value string, started chan<- struct{}, release <-chan struct{}) tiered.LoaderFunc[string] {
	return func(context.Context, string) (string, error) {
		r.loads.Add(1)
		started <- struct{}{}
		<-release
		return value, nil
	}
}

// noLoad is the loader of reads that must be served from the cache.
func (r *msRig) noLoad(context.Context, string) (string, error) {
	r.t.Error("loader called; the read should have been served from the cache")
	return "", fmt.Errorf("unexpected load")
}

func (r *msRig) fetch(i int, id string, load tiered.LoaderFunc[string]) (string, tiered.Served) {
	r.t.Helper()
	v, s, err := r.groups[i].FetchInfo(context.Background(), id, load)
	if err != nil {
		r.t.Fatalf("node %d: FetchInfo(%q): %v", i, id, err)
	}
	return v, s
}

// cached makes every node hold v0 for id (node 0 loads it; the others read
// it from Redis into their L1).
func (r *msRig) cached(id string) {
	r.t.Helper()
	for i := range r.groups {
		if v, _ := r.fetch(i, id, r.ok("v0")); v != "v0" {
			r.t.Fatalf("node %d: first fetch = %q", i, v)
		}
		r.caches[i].WaitL1()
	}
}

// invalidate invalidates id on node 0 and waits until every other node
// applied the message.
func (r *msRig) invalidate(id string) {
	r.t.Helper()
	if err := r.groups[0].Invalidate(context.Background(), id); err != nil {
		r.t.Fatal(err)
	}
	for i := 1; i < len(r.caches); i++ {
		<-r.received[i]
	}
}

// TestMaxStale runs the MaxStale tests on one real Redis server.
func TestMaxStale(t *testing.T) {
	for name, f := range maxStaleCases {
		t.Run(name, func(t *testing.T) { f(t, newReal(t)) })
	}
}

// TestMaxStaleCluster runs them on a real Redis Cluster.
func TestMaxStaleCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	for name, f := range maxStaleCases {
		t.Run(name, func(t *testing.T) {
			cl.Flush(t)
			f(t, cl.Client(t))
		})
	}
}

var maxStaleCases = map[string]func(*testing.T, redis.UniversalClient){
	"ServesPrevious":   maxStaleServesPrevious,
	"OneLoad":          maxStaleOneLoad,
	"WindowEnds":       maxStaleWindowEnds,
	"NeverEarlierLoad": maxStaleNeverEarlierLoad,
	"FetchMany":        maxStaleFetchMany,
	"TagEndsWindow":    maxStaleTagEndsWindow,
	"MixedFleet":       maxStaleMixedFleet,
	"Pattern":          maxStalePattern,
}

// maxStaleMixedFleet: a node whose group has no MaxStale (as during a
// rolling upgrade, where an older release reads the stale envelope as
// foreign: a miss, left alone) never serves the stale value: it loads
// without filling, and the stale envelope stays for the other nodes. Its
// own invalidation unlinks the key, which ends the window.
func maxStaleMixedFleet(t *testing.T, rdb redis.UniversalClient) {
	r := newMixedRig(t, rdb, 2, tiered.GroupOptions{}, map[int]bool{1: true})
	r.cached("mx")
	r.invalidate("mx")
	if v, s := r.fetch(1, "mx", r.ok("v1")); v != "v1" || s.Stale {
		t.Fatalf("strict node: %q, stale %v; want v1 from its load", v, s.Stale)
	}
	if v, s := r.fetch(0, "mx", r.ok("v1")); v != "v0" || !s.Stale {
		t.Fatalf("MaxStale node after it: %q, stale %v; want v0 still in the window", v, s.Stale)
	}
	<-r.loaded[0]
	if err := r.groups[1].Invalidate(context.Background(), "mx"); err != nil {
		t.Fatal(err)
	}
	<-r.received[0]
	if v, s := r.fetch(0, "mx", r.ok("v2")); v != "v2" || s.Stale {
		t.Fatalf("after the strict node's invalidation: %q, stale %v; want v2 from a load", v, s.Stale)
	}
}

// maxStaleServesPrevious: after an invalidation on node 0, a read on each
// of 3 nodes gets the previous value at once while one load (started by
// the first reader, in the background) runs; once it filled, every node
// reads the new value and the loader ran once.
func maxStaleServesPrevious(t *testing.T, rdb redis.UniversalClient) {
	r := newMSRig(t, rdb, 3, tiered.GroupOptions{})
	r.cached("a")
	r.invalidate("a")
	base := r.loads.Load()
	started, release := make(chan struct{}, 8), make(chan struct{})
	load := r.gated("v1", started, release)
	for _, i := range []int{1, 2, 0} {
		if v, s := r.fetch(i, "a", load); v != "v0" || !s.Stale {
			t.Fatalf("node %d inside the window: %q, stale %v; want v0, true", i, v, s.Stale)
		}
		if i == 1 {
			<-started
		}
	}
	close(release)
	<-r.loaded[1]
	if n := r.loads.Load() - base; n != 1 {
		t.Fatalf("%d loads; want 1 fleet-wide", n)
	}
	for i := range r.groups {
		if v, s := r.fetch(i, "a", r.noLoad); v != "v1" || s.Stale {
			t.Fatalf("node %d after the load: %q, stale %v; want v1, false", i, v, s.Stale)
		}
	}
	var stale uint64
	for _, g := range r.groups {
		stale += g.Stats().Stale
	}
	if stale != 3 {
		t.Fatalf("Stats.Stale = %d over the fleet; want 3", stale)
	}
}

// maxStaleOneLoad: nodes 1 and 2 both read the stale envelope before
// either takes the lease over it; the compare-and-set lets one take it,
// the other serves the stale value from that lease, and one load runs.
// With the take-over as a plain write both load, which shows the test
// catches it.
func maxStaleOneLoad(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("casOff=%v", off), func(t *testing.T) {
			r := newMSRig(t, rdb, 3, tiered.GroupOptions{})
			id := fmt.Sprintf("one-%v", off)
			r.cached(id)
			r.invalidate(id)
			for _, c := range r.caches {
				tiered.SetNoStaleCAS(c, off)
			}
			var barrier sync.WaitGroup
			barrier.Add(2)
			for _, i := range []int{1, 2} {
				var once sync.Once
				r.hook(i, func(p string) bool {
					if p == "read-done" {
						once.Do(func() { barrier.Done(); barrier.Wait() })
					}
					return true
				})
			}
			base := r.loads.Load()
			started, release := make(chan struct{}, 8), make(chan struct{})
			load := r.gated("v1", started, release)
			var wg sync.WaitGroup
			for _, i := range []int{1, 2} {
				wg.Go(func() {
					if v, s, err := r.groups[i].FetchInfo(context.Background(), id, load); err != nil || v != "v0" || !s.Stale {
						t.Errorf("node %d: %q, stale %v, %v; want v0, true", i, v, s.Stale, err)
					}
				})
			}
			wg.Wait()
			<-started
			want := int64(1)
			if off {
				<-started
				want = 2
			}
			close(release)
			for n := want; n > 0; n-- {
				select {
				case <-r.loaded[1]:
				case <-r.loaded[2]:
				}
			}
			if n := r.loads.Load() - base; n != want {
				t.Fatalf("%d loads; want %d", n, want)
			}
		})
	}
}

// maxStaleWindowEnds: past the window (on the clocks of the nodes) a read
// does not get the previous value: it waits for its load, which fills.
// With the window's end ignored the previous value is served, which shows
// the test catches it.
func maxStaleWindowEnds(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("windowOff=%v", off), func(t *testing.T) {
			r := newMSRig(t, rdb, 2, tiered.GroupOptions{})
			for _, c := range r.caches {
				tiered.SetNoStaleWindow(c, off)
			}
			id := fmt.Sprintf("end-%v", off)
			r.cached(id)
			r.invalidate(id)
			r.clk.Add(msWindow - time.Millisecond)
			// Just inside: stale, and the background load fills v1.
			if v, s := r.fetch(1, id, r.ok("v1")); v != "v0" || !s.Stale {
				t.Fatalf("just inside the window: %q, stale %v; want v0, true", v, s.Stale)
			}
			<-r.loaded[1]
			r.caches[1].WaitL1()
			r.invalidate(id)
			r.clk.Add(msWindow)
			v, s := r.fetch(1, id, r.ok("v2"))
			if off {
				if v != "v1" || !s.Stale {
					t.Fatalf("window ignored: %q, stale %v; want the stale v1 served", v, s.Stale)
				}
				return
			}
			if v != "v2" || s.Stale {
				t.Fatalf("past the window: %q, stale %v; want v2 from the load", v, s.Stale)
			}
			if v, s := r.fetch(0, id, r.noLoad); v != "v2" || s.Stale {
				t.Fatalf("node 0 then: %q, stale %v; want v2", v, s.Stale)
			}
		})
	}
}

// maxStaleNeverEarlierLoad: node 1 takes the lease over the stale v0 and
// loads v1 (blocked); a second invalidation comes (the source moved to
// v2): the load's fill must fail, and readers get v0 (still within the
// first invalidation's window) or a value loaded after the second
// invalidation, never v1. With the compare-and-set fills off v1 lands in
// Redis and is served, which shows the test catches it.
func maxStaleNeverEarlierLoad(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("casOff=%v", off), func(t *testing.T) {
			r := newMSRig(t, rdb, 3, tiered.GroupOptions{})
			for _, c := range r.caches {
				tiered.SetNoCAS(c, off)
			}
			id := fmt.Sprintf("early-%v", off)
			r.cached(id)
			r.invalidate(id)
			started, release := make(chan struct{}, 8), make(chan struct{})
			if v, s := r.fetch(1, id, r.gated("v1", started, release)); v != "v0" || !s.Stale {
				t.Fatalf("inside the window: %q, stale %v; want v0, true", v, s.Stale)
			}
			<-started
			r.invalidate(id) // the source is at v2 now
			close(release)
			<-r.loaded[1]
			for _, i := range []int{2, 1} {
				v, _ := r.fetch(i, id, r.ok("v2"))
				if off {
					if v != "v1" {
						t.Fatalf("compare-and-set off: node %d read %q; want the early load's v1", i, v)
					}
					return
				}
				if v == "v1" {
					t.Fatalf("node %d read v1, loaded before the second invalidation", i)
				}
			}
		})
	}
}

// maxStaleFetchMany: FetchMany inside the window gets the previous values
// at once, and its load fills in the background.
func maxStaleFetchMany(t *testing.T, rdb redis.UniversalClient) {
	r := newMSRig(t, rdb, 2, tiered.GroupOptions{})
	for _, id := range []string{"x", "y"} {
		r.cached(id)
	}
	if err := r.groups[0].Invalidate(context.Background(), "x", "y"); err != nil {
		t.Fatal(err)
	}
	<-r.received[1]
	started, release := make(chan struct{}, 8), make(chan struct{})
	load := func(_ context.Context, ids []string) (map[string]string, error) {
		r.loads.Add(1)
		started <- struct{}{}
		<-release
		out := map[string]string{}
		for _, id := range ids {
			out[id] = "v1"
		}
		return out, nil
	}
	got, err := r.groups[1].FetchMany(context.Background(), []string{"x", "y"}, load)
	if err != nil || got["x"] != "v0" || got["y"] != "v0" {
		t.Fatalf("FetchMany inside the window = %v, %v; want v0 for both", got, err)
	}
	<-started
	close(release)
	<-r.loaded[1]
	for _, id := range []string{"x", "y"} {
		if v, s := r.fetch(0, id, r.noLoad); v != "v1" || s.Stale {
			t.Fatalf("%s after the load: %q, stale %v; want v1", id, v, s.Stale)
		}
	}
}

// maxStaleTagEndsWindow: a tag invalidation of a stale value ends its
// window (tags stay strict): the read loads. With the tag checks off the
// tag-invalidated value is served as stale, which shows the test catches
// it.
func maxStaleTagEndsWindow(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("tagCheckOff=%v", off), func(t *testing.T) {
			r := newMSRig(t, rdb, 2, tiered.GroupOptions{Tags: func(id, _ string) []string { return []string{"t-" + id} }})
			for _, c := range r.caches {
				tiered.SetNoTagCheck(c, off)
			}
			id := fmt.Sprintf("tag-%v", off)
			r.cached(id)
			r.invalidate(id)
			if err := r.caches[0].InvalidateTags(context.Background(), "t-"+id); err != nil {
				t.Fatal(err)
			}
			<-r.received[1]
			v, s := r.fetch(1, id, r.ok("v1"))
			if off {
				if v != "v0" || !s.Stale {
					t.Fatalf("tag checks off: %q, stale %v; want the tag-invalidated v0 served", v, s.Stale)
				}
				<-r.loaded[1]
				return
			}
			if v != "v1" || s.Stale {
				t.Fatalf("after a tag invalidation: %q, stale %v; want v1 loaded", v, s.Stale)
			}
		})
	}
}

// TestMaxStaleNegative: a negative window is refused, and nothing is
// registered.
func TestMaxStaleNegative(t *testing.T) {
	rdb, _ := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "msn"})
	if _, err := tiered.NewGroup[string](c, "m", tiered.GroupOptions{MaxStale: -time.Second}); err == nil {
		t.Fatal("NewGroup with a negative MaxStale: no error")
	}
	if _, err := tiered.NewGroup[string](c, "m", tiered.GroupOptions{MaxStale: time.Second}); err != nil {
		t.Fatalf("NewGroup after the refused one: %v", err)
	}
}
