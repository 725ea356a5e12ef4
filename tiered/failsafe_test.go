package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

var errDown = errors.New("database down")

// fsRig is a fleet of nodes on one Redis sharing a manual clock, each with
// the group "k" (TTL 1h, FailSafe 1h, no jitter).
type fsRig struct {
	t      *testing.T
	rdb    redis.UniversalClient
	clk    *manualClock
	caches []*tiered.Cache
	groups []*tiered.Group[string]
	busy   chan struct{} // a receive per lease (or reload lock) found busy
	joined chan struct{} // a receive per caller that joined a load in flight
	loads  atomic.Int64  // calls of the rig's loaders
}

const fsTTL = time.Hour

func newFSRig(t *testing.T, rdb redis.UniversalClient, n int, gopts tiered.GroupOptions) *fsRig {
	return newFSRigWith(t, rdb, n, gopts, nil)
}

// newFSRigWith is newFSRig with the caches' options changed by opts (if
// not nil).
func newFSRigWith(t *testing.T, rdb redis.UniversalClient, n int, gopts tiered.GroupOptions, opts func(*tiered.Options)) *fsRig {
	r := &fsRig{t: t, rdb: rdb, clk: newManualClock(time.Now()), busy: make(chan struct{}, 64), joined: make(chan struct{}, 64)}
	gopts.TTL = fsTTL
	if gopts.FailSafe == 0 {
		gopts.FailSafe = time.Hour
	}
	rec := tiered.RecorderFunc(func(e tiered.Event) {
		switch e.Kind {
		case tiered.EventLeaseBusy:
			r.busy <- struct{}{}
		case tiered.EventCollapsed:
			r.joined <- struct{}{}
		}
	})
	for i := 0; i < n; i++ {
		// RedisTimeout: a loaded machine must not fail an invalidation.
		o := tiered.Options{Redis: rdb, Namespace: "fs", DisableJitter: true, L1TTL: 2 * fsTTL, Recorder: rec, RedisTimeout: 10 * time.Second}
		if opts != nil {
			opts(&o)
		}
		c := newCache(t, tiered.WithClock(o, r.clk))
		r.caches = append(r.caches, c)
		r.groups = append(r.groups, newGroup[string](t, c, "k", gopts))
	}
	return r
}

// ok loads id as value.
func (r *fsRig) ok(value string) tiered.LoaderFunc[string] {
	return func(context.Context, string) (string, error) { r.loads.Add(1); return value, nil }
}

// dead is a loader whose database is down.
func (r *fsRig) dead(context.Context, string) (string, error) { r.loads.Add(1); return "", errDown }

// fetch fetches id on node i, reporting whether it was a fallback.
func (r *fsRig) fetch(i int, id string, load tiered.LoaderFunc[string]) (string, bool, error) {
	v, s, err := r.groups[i].FetchInfo(context.Background(), id, load)
	return v, s.Fallback, err
}

// cached fetches id on node 0 with the value v1, then expires it (the
// manual clock moves past its TTL, the Redis key stays for FailSafe).
func (r *fsRig) cached(id string) {
	r.t.Helper()
	if v, _, err := r.fetch(0, id, r.ok("v1")); err != nil || v != "v1" {
		r.t.Fatalf("first fetch = %q, %v", v, err)
	}
	for _, c := range r.caches {
		c.WaitL1()
	}
	r.clk.Add(fsTTL + time.Second)
}

// TestFailSafe runs the fail-safe tests on one real Redis server.
func TestFailSafe(t *testing.T) {
	for name, f := range failSafeCases {
		t.Run(name, func(t *testing.T) { f(t, newReal(t)) })
	}
}

// TestFailSafeCluster runs them on a real Redis Cluster, where the reload
// lock (and the throttle mark) lives on another slot than the key.
func TestFailSafeCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	for name, f := range failSafeCases {
		t.Run(name, func(t *testing.T) {
			cl.Flush(t)
			f(t, cl.Client(t))
		})
	}
}

var failSafeCases = map[string]func(*testing.T, redis.UniversalClient){
	"ServesExpired":     failSafeServesExpired,
	"NeverInvalidated":  failSafeNeverInvalidated,
	"ThrottleFleet":     failSafeThrottleFleet,
	"ThrottleWaiter":    failSafeThrottleWaiter,
	"SoftTimeout":       failSafeSoftTimeout,
	"SoftTimeoutClose":  failSafeSoftTimeoutClose,
	"ExpiredReloads":    failSafeExpiredReloads,
	"FetchManyReplaces": failSafeFetchManyReplaces,
	"SoftTimeoutFails":  failSafeSoftTimeoutFails,
	"FetchManyJoins":    failSafeFetchManyJoins,
	"NeverTagged":       failSafeNeverTagInvalidated,
	"FailureOneTrip":    failSafeFailureOneRoundTrip,
	"WaiterWoken":       failSafeWaiterWoken,
	"NoMarkNoFallback":  failSafeNoMarkWithoutFallback,
}

// failSafeNeverTagInvalidated: a tag invalidation (or a Clear) leaves the
// key in Redis, only its stamp tells; an expired value whose tag was
// invalidated is never a fallback, whether the tag lands before the read
// or during the load. With the tag checks off the invalidated value is
// served, which shows the test catches it.
func failSafeNeverTagInvalidated(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("tagCheckOff=%v", off), func(t *testing.T) {
			ctx := context.Background()
			r := newFSRig(t, rdb, 2, tiered.GroupOptions{Tags: func(id, _ string) []string { return []string{"t-" + id} }})
			for _, c := range r.caches {
				tiered.SetNoTagCheck(c, off)
			}
			before, during := fmt.Sprintf("before-%v", off), fmt.Sprintf("during-%v", off)
			r.cached(before)
			for _, id := range []string{during} {
				if v, _, err := r.fetch(0, id, r.ok("v1")); err != nil || v != "v1" {
					t.Fatalf("fetch %s = %q, %v", id, v, err)
				}
			}
			r.caches[0].WaitL1()
			r.clk.Add(fsTTL + time.Second)
			if err := r.caches[0].InvalidateTags(ctx, "t-"+before); err != nil {
				t.Fatal(err)
			}
			tagging := func(ctx context.Context, id string) (string, error) {
				if err := r.caches[0].InvalidateTags(ctx, "t-"+id); err != nil {
					t.Error(err)
				}
				return "", errDown
			}
			for _, c := range []struct {
				id   string
				load tiered.LoaderFunc[string]
			}{{before, r.dead}, {during, tagging}} {
				v, fb, err := r.fetch(1, c.id, c.load)
				if off {
					if err != nil || v != "v1" || !fb {
						t.Fatalf("%s, tag check off: %q, fallback %v, %v; want the invalidated v1 served", c.id, v, fb, err)
					}
					continue
				}
				if !errors.Is(err, errDown) {
					t.Fatalf("%s: tag invalidated, loader down: %q, fallback %v, %v; want the loader's error", c.id, v, fb, err)
				}
			}
		})
	}
}

// failSafeServesExpired: Redis keeps the value for TTL + FailSafe; past its
// TTL a failed load serves it with no error (counted, told by FetchInfo),
// L1 keeps serving it while the throttle holds, and once the throttle ends
// a load that succeeds replaces it.
func failSafeServesExpired(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	r := newFSRig(t, rdb, 1, tiered.GroupOptions{FailSafe: 30 * time.Minute})
	start := time.Now()
	r.cached("a")
	pttl := rdb.PTTL(ctx, "fs:k:a").Val()
	if lo := fsTTL + 30*time.Minute - time.Since(start); pttl < lo || pttl > fsTTL+30*time.Minute {
		t.Fatalf("PTTL = %v; want TTL + FailSafe, in [%v, %v]", pttl, lo, fsTTL+30*time.Minute)
	}
	v, fb, err := r.fetch(0, "a", r.dead)
	if err != nil || v != "v1" || !fb {
		t.Fatalf("expired, loader down: %q, fallback %v, %v; want v1, true, nil", v, fb, err)
	}
	if st := r.groups[0].Stats(); st.FailSafe != 1 || st.Loads != 2 {
		t.Fatalf("FailSafe %d, Loads %d; want 1, 2", st.FailSafe, st.Loads)
	}
	r.caches[0].WaitL1()
	v, fb, err = r.fetch(0, "a", r.dead) // the throttle: from L1, no load
	if err != nil || v != "v1" || !fb || r.loads.Load() != 2 {
		t.Fatalf("within the throttle: %q, fallback %v, %v, %d loads; want v1, true, nil, 2", v, fb, err, r.loads.Load())
	}
	if v, err := r.groups[0].Fetch(ctx, "a", r.dead); err != nil || v != "v1" {
		t.Fatalf("Fetch within the throttle = %q, %v", v, err)
	}
	// The throttle ends (its mark expires in Redis, the L1 copy on the clock).
	rdb.Del(ctx, "fs:%!refresh:k:a")
	r.clk.Add(tiered.DefaultFailSafeThrottle + time.Second)
	v, fb, err = r.fetch(0, "a", r.ok("v2"))
	if err != nil || v != "v2" || fb {
		t.Fatalf("after the throttle, database back: %q, fallback %v, %v; want v2, false, nil", v, fb, err)
	}
	r.caches[0].WaitL1()
	if v, fb, _ := r.fetch(0, "a", r.dead); v != "v2" || fb {
		t.Fatalf("then: %q, fallback %v; want v2 fresh", v, fb)
	}
	// Past TTL + FailSafe nothing is left to fall back on.
	r.clk.Add(fsTTL + 30*time.Minute + time.Second)
	rdb.Del(ctx, "fs:k:a") // what Redis's PX does at that point
	if _, _, err := r.fetch(0, "a", r.dead); !errors.Is(err, errDown) {
		t.Fatalf("past the window: %v; want the loader's error", err)
	}
}

// failSafeNeverInvalidated: node 1 reads the expired value, then an
// invalidation from node 0 lands while node 1's load runs, and the load
// fails: node 1 returns the loader's error, not the invalidated value. The
// same on node 1's L1 alone: an invalidated entry is never a fallback.
// With the check switched off the invalidated value is served, which shows
// the test catches it.
func failSafeNeverInvalidated(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkOff=%v", off), func(t *testing.T) {
			ctx := context.Background()
			r := newFSRig(t, rdb, 2, tiered.GroupOptions{})
			tiered.SetNoFallbackCheck(r.caches[1], off)
			id := fmt.Sprintf("inv-%v", off)
			r.cached(id)
			invalidating := func(ctx context.Context, id string) (string, error) {
				if err := r.groups[0].Invalidate(ctx, id); err != nil {
					t.Error(err)
				}
				return "", errDown
			}
			v, fb, err := r.fetch(1, id, invalidating)
			if off {
				if err != nil || v != "v1" || !fb {
					t.Fatalf("check off: %q, fallback %v, %v; want the invalidated v1 served", v, fb, err)
				}
				return
			}
			if !errors.Is(err, errDown) {
				t.Fatalf("invalidated during the load: %q, fallback %v, %v; want the loader's error", v, fb, err)
			}
			// The L1: node 1 caches v1 again, it expires, an invalidation
			// comes, Redis goes away: L1 must not fall back on it.
			if _, _, err := r.fetch(1, id, r.ok("v1")); err != nil {
				t.Fatal(err)
			}
			r.caches[1].WaitL1()
			r.clk.Add(fsTTL + time.Second)
			if err := r.groups[1].Invalidate(ctx, id); err != nil {
				t.Fatal(err)
			}
			if v, fb, err := r.fetch(1, id, r.dead); !errors.Is(err, errDown) {
				t.Fatalf("after an invalidation: %q, fallback %v, %v; want the loader's error", v, fb, err)
			}
		})
	}
}

// failSafeThrottleFleet: with the database down, every node of the fleet
// reads the expired value; the loader is called once fleet-wide for the
// throttle period (its mark is in Redis), and every node serves the
// fallback. With the throttle switched off every node calls the loader,
// which shows the test catches a missing throttle.
func failSafeThrottleFleet(t *testing.T, rdb redis.UniversalClient) {
	const n = 4
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("throttleOff=%v", off), func(t *testing.T) {
			r := newFSRig(t, rdb, n, tiered.GroupOptions{FailSafeThrottle: time.Hour})
			for _, c := range r.caches {
				tiered.SetNoThrottle(c, off)
			}
			id := fmt.Sprintf("thr-%v", off)
			r.cached(id)
			base := r.loads.Load()
			for round := 0; round < 3; round++ {
				for i := 0; i < n; i++ {
					v, fb, err := r.fetch(i, id, r.dead)
					if err != nil || v != "v1" || !fb {
						t.Fatalf("node %d: %q, fallback %v, %v; want v1, true, nil", i, v, fb, err)
					}
				}
			}
			calls := r.loads.Load() - base
			if off {
				if calls < n {
					t.Fatalf("throttle off: %d loader calls; want at least %d (one per node)", calls, n)
				}
				return
			}
			if calls != 1 {
				t.Fatalf("%d loader calls fleet-wide within one throttle period; want 1", calls)
			}
		})
	}
}

// failSafeThrottleWaiter: node 1 reads the expired value while node 0's
// reload holds the lock; it waits, and when node 0's load fails it serves
// the fallback without calling the loader itself.
func failSafeThrottleWaiter(t *testing.T, rdb redis.UniversalClient) {
	r := newFSRig(t, rdb, 2, tiered.GroupOptions{FailSafeThrottle: time.Hour})
	r.cached("w")
	release := make(chan struct{})
	entered := make(chan struct{})
	blocked := func(context.Context, string) (string, error) {
		r.loads.Add(1)
		close(entered)
		<-release
		return "", errDown
	}
	type res struct {
		v   string
		fb  bool
		err error
	}
	first := make(chan res, 1)
	go func() {
		v, fb, err := r.fetch(0, "w", blocked)
		first <- res{v, fb, err}
	}()
	<-entered
	base := r.loads.Load()
	second := make(chan res, 1)
	go func() {
		v, fb, err := r.fetch(1, "w", r.dead)
		second <- res{v, fb, err}
	}()
	<-r.busy // node 1 found node 0's reload lock and waits
	close(release)
	for i, ch := range []chan res{first, second} {
		if o := <-ch; o.err != nil || o.v != "v1" || !o.fb {
			t.Fatalf("node %d: %q, fallback %v, %v; want v1, true, nil", i, o.v, o.fb, o.err)
		}
	}
	if calls := r.loads.Load() - base; calls != 0 {
		t.Fatalf("the waiting node called the loader %d times; want 0", calls)
	}
}

// failSafeSoftTimeout: with LoadSoftTimeout, a slow load (blocked until the
// test lets it go) returns the fallback as soon as the soft timeout fires;
// the load goes on and fills both tiers.
func failSafeSoftTimeout(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	r := newFSRig(t, rdb, 1, tiered.GroupOptions{LoadSoftTimeout: time.Hour})
	fire := make(chan time.Time, 1)
	tiered.SetSoftTimer(r.caches[0], func(time.Duration) *time.Timer {
		tm := time.NewTimer(time.Hour)
		tm.C = fire // the test decides when the soft timeout passes
		return tm
	})
	filled := make(chan struct{}, 1)
	tiered.SetHook(r.caches[0], func(p string) {
		if p == "filled" {
			filled <- struct{}{}
		}
	})
	r.cached("s")
	release := make(chan struct{})
	entered := make(chan struct{})
	slow := func(context.Context, string) (string, error) {
		close(entered)
		<-release
		return "v2", nil
	}
	got := make(chan string, 1)
	go func() {
		v, fb, err := r.fetch(0, "s", slow)
		if err != nil || !fb {
			t.Errorf("soft timeout: fallback %v, %v; want true, nil", fb, err)
		}
		got <- v
	}()
	<-entered
	fire <- time.Now()
	if v := <-got; v != "v1" {
		t.Fatalf("soft timeout served %q; want the fallback v1", v)
	}
	if st := r.groups[0].Stats(); st.FailSafe != 1 {
		t.Fatalf("FailSafe = %d; want 1", st.FailSafe)
	}
	close(release)
	<-filled // the background load filled Redis; L1 is next
	r.caches[0].WaitL1()
	for range 2 { // the L1 fill may land just after the Redis one
		if v, fb, err := r.fetch(0, "s", r.dead); err == nil && v == "v2" && !fb {
			if st := r.groups[0].Stats(); st.FailSafe != 1 {
				t.Fatalf("FailSafe = %d after the background fill; want 1", st.FailSafe)
			}
			return
		}
		r.caches[0].WaitL1()
	}
	v, fb, err := r.fetch(0, "s", r.dead)
	t.Fatalf("after the background load: %q, fallback %v, %v; want v2 fresh (Redis holds %q)", v, fb, err, rdb.Get(ctx, "fs:k:s").Val())
}

// failSafeSoftTimeoutClose: Close while a background load (past its soft
// timeout) still runs cancels the loader and waits for it; goleak checks
// nothing is left.
func failSafeSoftTimeoutClose(t *testing.T, rdb redis.UniversalClient) {
	r := newFSRig(t, rdb, 1, tiered.GroupOptions{LoadSoftTimeout: time.Hour})
	tiered.SetSoftTimer(r.caches[0], func(time.Duration) *time.Timer { return time.NewTimer(0) })
	r.cached("c")
	entered := make(chan struct{})
	cancelled := make(chan struct{})
	hang := func(ctx context.Context, _ string) (string, error) {
		close(entered)
		<-ctx.Done()
		close(cancelled)
		return "", ctx.Err()
	}
	v, fb, err := r.fetch(0, "c", hang)
	if err != nil || v != "v1" || !fb {
		t.Fatalf("soft timeout: %q, fallback %v, %v", v, fb, err)
	}
	<-entered
	r.caches[0].Close()
	select {
	case <-cancelled:
	default:
		t.Fatal("Close returned before the background load ended")
	}
}

// failSafeExpiredReloads: an expired value whose load succeeds is replaced
// in both tiers (with a TTL that covers FailSafe again), by one loader call
// fleet-wide when the nodes come one after the other.
func failSafeExpiredReloads(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	r := newFSRig(t, rdb, 3, tiered.GroupOptions{})
	r.cached("r")
	base := r.loads.Load()
	for i := range 3 {
		v, fb, err := r.fetch(i, "r", r.ok("v2"))
		if err != nil || v != "v2" || fb {
			t.Fatalf("node %d: %q, fallback %v, %v; want v2", i, v, fb, err)
		}
	}
	if calls := r.loads.Load() - base; calls != 1 {
		t.Fatalf("%d loader calls; want 1", calls)
	}
	if pttl := rdb.PTTL(ctx, "fs:k:r").Val(); pttl <= fsTTL {
		t.Fatalf("PTTL after the reload = %v; want above TTL (TTL + FailSafe)", pttl)
	}
}

// failSafeFetchManyReplaces: FetchMany, which takes no fallback, finds the
// expired value kept by fail-safe in place of a lease; its load replaces it
// in Redis, so the next read is a hit instead of another load.
func failSafeFetchManyReplaces(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	r := newFSRig(t, rdb, 2, tiered.GroupOptions{})
	r.cached("m")
	many := func(_ context.Context, ids []string) (map[string]string, error) {
		r.loads.Add(1)
		return map[string]string{ids[0]: "v2"}, nil
	}
	got, err := r.groups[1].FetchMany(ctx, []string{"m"}, many)
	if err != nil || got["m"] != "v2" {
		t.Fatalf("FetchMany = %v, %v; want v2", got, err)
	}
	base := r.loads.Load()
	if v, fb, err := r.fetch(0, "m", r.dead); err != nil || v != "v2" || fb {
		t.Fatalf("then Fetch on another node: %q, fallback %v, %v; want v2 from Redis", v, fb, err)
	}
	if r.loads.Load() != base {
		t.Fatal("the value FetchMany loaded was not cached")
	}
}

// TestFailSafeL1 checks the L1 tier alone (a cache without Redis): an
// expired entry serves as a fallback within FailSafe, then is throttled
// locally; an invalidated one never does.
func TestFailSafeL1(t *testing.T) {
	ctx := context.Background()
	clk := newManualClock(time.Now())
	c := newCache(t, tiered.WithClock(tiered.Options{DisableJitter: true}, clk))
	g := newGroup[string](t, c, "k", tiered.GroupOptions{TTL: time.Minute, FailSafe: time.Hour})
	var loads atomic.Int64
	dead := func(context.Context, string) (string, error) { loads.Add(1); return "", errDown }
	ok := func(context.Context, string) (string, error) { loads.Add(1); return "v1", nil }
	for _, id := range []string{"a", "b"} {
		if _, err := g.Fetch(ctx, id, ok); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitL1()
	clk.Add(time.Minute + time.Second)
	if err := g.Invalidate(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	v, s, err := g.FetchInfo(ctx, "a", dead)
	if err != nil || v != "v1" || !s.Fallback {
		t.Fatalf("expired in L1, loader down: %q, %+v, %v; want v1, a fallback", v, s, err)
	}
	c.WaitL1()
	before := loads.Load()
	if v, s, err := g.FetchInfo(ctx, "a", dead); err != nil || v != "v1" || !s.Fallback || loads.Load() != before {
		t.Fatalf("within the throttle: %q, %+v, %v, loader called %d times", v, s, err, loads.Load()-before)
	}
	if v, err := g.Fetch(ctx, "b", dead); !errors.Is(err, errDown) {
		t.Fatalf("invalidated: %q, %v; want the loader's error", v, err)
	}
	// Past the window nothing is left.
	clk.Add(time.Hour)
	if _, err := g.Fetch(ctx, "a", dead); !errors.Is(err, errDown) {
		t.Fatalf("past FailSafe: %v; want the loader's error", err)
	}
	if st := g.Stats(); st.FailSafe != 1 {
		t.Fatalf("Stats.FailSafe = %d; want 1 (the L1 hits within the throttle are hits)", st.FailSafe)
	}
}

// failSafeSoftTimeoutFails: the background load that outlived its soft
// timeout fails: it counts no second fallback, and its throttle mark holds
// the other nodes back.
func failSafeSoftTimeoutFails(t *testing.T, rdb redis.UniversalClient) {
	r := newFSRig(t, rdb, 2, tiered.GroupOptions{LoadSoftTimeout: time.Hour, FailSafeThrottle: time.Hour})
	tiered.SetSoftTimer(r.caches[0], func(time.Duration) *time.Timer { return time.NewTimer(0) })
	done := make(chan struct{})
	tiered.SetHook(r.caches[0], func(p string) {
		if p == "fail-safe-served" {
			close(done)
		}
	})
	r.cached("f")
	release := make(chan struct{})
	failing := func(context.Context, string) (string, error) { <-release; return "", errDown }
	if v, fb, err := r.fetch(0, "f", failing); err != nil || v != "v1" || !fb {
		t.Fatalf("soft timeout: %q, fallback %v, %v", v, fb, err)
	}
	close(release)
	<-done
	base := r.loads.Load()
	if v, fb, err := r.fetch(1, "f", r.dead); err != nil || v != "v1" || !fb || r.loads.Load() != base {
		t.Fatalf("other node after the background failure: %q, fallback %v, %v, %d loads; want the throttled fallback, no load", v, fb, err, r.loads.Load()-base)
	}
	if st := r.groups[0].Stats(); st.FailSafe != 1 {
		t.Fatalf("FailSafe on the first node = %d; want 1", st.FailSafe)
	}
}

// failSafeFetchManyJoins: a FetchMany that joins a Fetch's load which ends
// in a fallback gets the fallback value too (not a zero value).
func failSafeFetchManyJoins(t *testing.T, rdb redis.UniversalClient) {
	r := newFSRig(t, rdb, 1, tiered.GroupOptions{})
	r.cached("j")
	release := make(chan struct{})
	entered := make(chan struct{})
	failing := func(context.Context, string) (string, error) { close(entered); <-release; return "", errDown }
	first := make(chan error, 1)
	go func() {
		_, _, err := r.fetch(0, "j", failing)
		first <- err
	}()
	<-entered
	got := make(chan map[string]string, 1)
	go func() {
		m, err := r.groups[0].FetchMany(context.Background(), []string{"j"}, func(context.Context, []string) (map[string]string, error) {
			return nil, errDown
		})
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	<-r.joined
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if m := <-got; m["j"] != "v1" {
		t.Fatalf("FetchMany joined the fallback load and got %q; want v1", m["j"])
	}
}
