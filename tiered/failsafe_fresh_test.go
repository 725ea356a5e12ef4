package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// The fail-safe cases of this file: a fallback is checked for
// invalidations (tags, Clear, the key's own) on every path that serves it,
// the L1 copies of a fallback keep the tags it was loaded with, and a
// reload reports what a miss reports.
func init() {
	failSafeCases["CopyKeepsTags"] = failSafeCopyKeepsTags
	failSafeCases["ThrottleChecksTags"] = failSafeThrottleChecksTags
	failSafeCases["ThrottleChecksKey"] = failSafeThrottleChecksKey
	failSafeCases["ReloadBadTag"] = failSafeReloadBadTag
	failSafeCases["ManyReplaceAfterClear"] = failSafeManyReplaceAfterClear
	failSafeCases["SoftGoexit"] = failSafeSoftGoexit
	failSafeCases["ReloadPanicCounted"] = failSafeReloadPanicCounted
}

// tagged is the Tags of the fail-safe rigs of this file: id's tag is
// "t-"+id, and a value "bad" has a tag the cache refuses.
func tagged(id, v string) []string {
	if v == "bad" {
		return []string{""}
	}
	return []string{"t-" + id}
}

// failSafeCopyKeepsTags: the fallback a failed reload keeps in L1 for the
// throttle carries its value's tags, so that an InvalidateTags of one of
// them ends it there too: the next read loads, and reports the failure.
func failSafeCopyKeepsTags(t *testing.T, rdb redis.UniversalClient) {
	r := newFSRig(t, rdb, 1, tiered.GroupOptions{FailSafeThrottle: time.Hour, Tags: tagged})
	r.cached("a")
	if v, fb, err := r.fetch(0, "a", r.dead); err != nil || v != "v1" || !fb {
		t.Fatalf("reload fails: %q, fallback %v, %v; want v1 as a fallback", v, fb, err)
	}
	r.caches[0].WaitL1()
	if err := r.caches[0].InvalidateTags(context.Background(), "t-a"); err != nil {
		t.Fatal(err)
	}
	if v, fb, err := r.fetch(0, "a", r.dead); !errors.Is(err, errDown) {
		t.Fatalf("after InvalidateTags of its tag: %q, fallback %v, %v; want the loader's error", v, fb, err)
	}
}

// failSafeThrottleChecksTags: node 0's reload fails and sets the throttle
// mark; a tag invalidation of the value follows. Node 1 then finds the
// mark, and must not serve the value: it loads. With the fallback checks
// off it serves the tag-invalidated value, which shows the test catches
// it.
func failSafeThrottleChecksTags(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkOff=%v", off), func(t *testing.T) {
			r := newFSRig(t, rdb, 2, tiered.GroupOptions{FailSafeThrottle: time.Hour, Tags: tagged})
			tiered.SetNoFallbackCheck(r.caches[1], off)
			id := fmt.Sprintf("tags-%v", off)
			r.cached(id)
			if _, fb, err := r.fetch(0, id, r.dead); err != nil || !fb {
				t.Fatalf("node 0: fallback %v, %v; want one (and the throttle mark)", fb, err)
			}
			if err := r.caches[0].InvalidateTags(context.Background(), "t-"+id); err != nil {
				t.Fatal(err)
			}
			before := r.loads.Load()
			v, fb, err := r.fetch(1, id, r.dead)
			if off {
				if v != "v1" || !fb {
					t.Fatalf("checks off: %q, fallback %v, %v; want the tag-invalidated v1 served", v, fb, err)
				}
				return
			}
			if !errors.Is(err, errDown) || r.loads.Load() != before+1 {
				t.Fatalf("node 1: %q, fallback %v, %v after %d loads; want the loader's error from one load", v, fb, err, r.loads.Load()-before)
			}
		})
	}
}

// failSafeThrottleChecksKey: node 1 reads the expired value, then an
// invalidation of the key on node 1 itself lands before it looks at the
// reload lock, where node 0's failed reload left the throttle mark. Node 1
// must not serve what it saw invalidated: it loads. With the fallback
// checks off it serves it, which shows the test catches it.
func failSafeThrottleChecksKey(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkOff=%v", off), func(t *testing.T) {
			ctx := context.Background()
			r := newFSRig(t, rdb, 2, tiered.GroupOptions{FailSafeThrottle: time.Hour})
			tiered.SetNoFallbackCheck(r.caches[1], off)
			id := fmt.Sprintf("key-%v", off)
			r.cached(id)
			if _, fb, err := r.fetch(0, id, r.dead); err != nil || !fb {
				t.Fatalf("node 0: fallback %v, %v; want one (and the throttle mark)", fb, err)
			}
			var once atomic.Bool
			tiered.SetHook(r.caches[1], func(point string) {
				if point == "read-done" && once.CompareAndSwap(false, true) {
					if err := r.groups[1].Invalidate(ctx, id); err != nil {
						t.Error(err)
					}
				}
			})
			v, fb, err := r.fetch(1, id, r.dead)
			if off {
				if v != "v1" || !fb {
					t.Fatalf("checks off: %q, fallback %v, %v; want the invalidated v1 served", v, fb, err)
				}
				return
			}
			if !errors.Is(err, errDown) {
				t.Fatalf("invalidated on node 1 during its read: %q, fallback %v, %v; want the loader's error", v, fb, err)
			}
		})
	}
}

// failSafeReloadBadTag: a reload of an expired value whose tags the cache
// refuses returns ErrBadTag and caches nothing, as a miss does, and is no
// Redis error.
func failSafeReloadBadTag(t *testing.T, rdb redis.UniversalClient) {
	r := newFSRig(t, rdb, 1, tiered.GroupOptions{Tags: tagged})
	if _, _, err := r.fetch(0, "miss", r.ok("bad")); !errors.Is(err, tiered.ErrBadTag) {
		t.Fatalf("a miss whose value has a bad tag: %v; want ErrBadTag", err)
	}
	r.cached("a")
	before := r.groups[0].Stats()
	if v, fb, err := r.fetch(0, "a", r.ok("bad")); !errors.Is(err, tiered.ErrBadTag) {
		t.Fatalf("a reload whose value has a bad tag: %q, fallback %v, %v; want ErrBadTag", v, fb, err)
	}
	if n := r.groups[0].Stats().RedisErrors - before.RedisErrors; n != 0 {
		t.Fatalf("%d Redis errors counted for a refused tag; want 0", n)
	}
	if v, fb, err := r.fetch(0, "a", r.ok("v2")); err != nil || v != "v2" || fb {
		t.Fatalf("next read: %q, fallback %v, %v; want v2 loaded (the bad value cached nowhere)", v, fb, err)
	}
}

// failSafeManyReplaceAfterClear: a FetchMany that loads an expired id
// (without its lease, which a Fetch would take) replaces the expired value
// with one whose load began after the group's last Clear: the next
// FetchMany is served from the cache. With a load begin of 0 the
// replacement counted as loaded before that Clear and was refused, and
// every FetchMany loaded again.
func failSafeManyReplaceAfterClear(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	r := newFSRig(t, rdb, 1, tiered.GroupOptions{})
	if err := r.groups[0].Clear(ctx); err != nil {
		t.Fatal(err)
	}
	r.clk.Add(time.Second)
	r.cached("m")
	var calls atomic.Int64
	load := func(_ context.Context, ids []string) (map[string]string, error) {
		calls.Add(1)
		out := map[string]string{}
		for _, id := range ids {
			out[id] = "v2"
		}
		return out, nil
	}
	for i := 0; i < 3; i++ {
		if m, err := r.groups[0].FetchMany(ctx, []string{"m"}, load); err != nil || m["m"] != "v2" {
			t.Fatalf("FetchMany %d = %v, %v; want v2", i, m, err)
		}
		r.caches[0].WaitL1()
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d loader calls for 3 FetchMany of one expired id; want 1 (the first replaces it)", n)
	}
}

// failSafeSoftGoexit: a reload loader that calls runtime.Goexit ends the
// load as it does without LoadSoftTimeout (its caller gets an error), not
// as a panic of the caller's.
func failSafeSoftGoexit(t *testing.T, rdb redis.UniversalClient) {
	for _, soft := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("soft=%v", soft), func(t *testing.T) {
			r := newFSRig(t, rdb, 1, tiered.GroupOptions{LoadSoftTimeout: soft})
			id := fmt.Sprintf("goexit-%v", soft)
			r.cached(id)
			exit := func(context.Context, string) (string, error) { runtime.Goexit(); return "", nil }
			var p any
			var err error
			func() {
				defer func() { p = recover() }()
				_, err = r.groups[0].Fetch(context.Background(), id, exit)
			}()
			if p != nil || err == nil {
				t.Fatalf("loader called runtime.Goexit: panic %v, error %v; want an error and no panic", p, err)
			}
		})
	}
}

// failSafeReloadPanicCounted: a reload whose loader panics (or calls
// runtime.Goexit) is counted as a load that failed, as a miss's is.
func failSafeReloadPanicCounted(t *testing.T, rdb redis.UniversalClient) {
	for _, exit := range []bool{false, true} {
		t.Run(fmt.Sprintf("goexit=%v", exit), func(t *testing.T) {
			r := newFSRig(t, rdb, 1, tiered.GroupOptions{})
			id := fmt.Sprintf("panic-%v", exit)
			r.cached(id)
			before := r.groups[0].Stats()
			func() {
				defer func() { _ = recover() }()
				_, _ = r.groups[0].Fetch(context.Background(), id, func(context.Context, string) (string, error) {
					if exit {
						runtime.Goexit()
					}
					panic("loader bug")
				})
			}()
			after := r.groups[0].Stats()
			if after.Loads-before.Loads != 1 || after.LoadErrors-before.LoadErrors != 1 {
				t.Fatalf("%d loads, %d failed; want 1 failed load counted", after.Loads-before.Loads, after.LoadErrors-before.LoadErrors)
			}
		})
	}
}

// TestFailSafeL1CopyKeepsTags: without Redis, the fallback l1Fallback
// keeps in L1 for the throttle carries the value's tags: an InvalidateTags
// of one of them ends it, and the next read reports the loader's failure.
func TestFailSafeL1CopyKeepsTags(t *testing.T) {
	ctx := context.Background()
	clk := newManualClock(time.Now())
	c := newCache(t, tiered.WithClock(tiered.Options{DisableJitter: true, L1TTL: 2 * fsTTL}, clk))
	g := newGroup[string](t, c, "k", tiered.GroupOptions{TTL: fsTTL, FailSafe: time.Hour, FailSafeThrottle: time.Hour, Tags: tagged})
	if _, err := g.Fetch(ctx, "a", func(context.Context, string) (string, error) { return "v1", nil }); err != nil {
		t.Fatal(err)
	}
	c.WaitL1()
	clk.Add(fsTTL + time.Second)
	dead := func(context.Context, string) (string, error) { return "", errDown }
	if v, s, err := g.FetchInfo(ctx, "a", dead); err != nil || v != "v1" || !s.Fallback {
		t.Fatalf("expired in L1, loader down: %q, %+v, %v; want v1 as a fallback", v, s, err)
	}
	c.WaitL1()
	if err := c.InvalidateTags(ctx, "t-a"); err != nil {
		t.Fatal(err)
	}
	if v, s, err := g.FetchInfo(ctx, "a", dead); !errors.Is(err, errDown) {
		t.Fatalf("after InvalidateTags of its tag: %q, %+v, %v; want the loader's error", v, s, err)
	}
}
