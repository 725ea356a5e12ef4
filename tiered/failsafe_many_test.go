package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

func init() {
	failSafeCases["FetchManyServesExpired"] = failSafeFetchManyServesExpired
	failSafeCases["FetchManyNeverInvalidated"] = failSafeFetchManyNeverInvalidated
	failSafeCases["FetchManyNotFoundDiscards"] = failSafeFetchManyNotFoundDiscards
}

// deadMany is a batch loader whose database is down.
func (r *fsRig) deadMany(context.Context, []string) (map[string]string, error) {
	r.loads.Add(1)
	return nil, errDown
}

// failSafeFetchManyServesExpired: a FetchMany whose batch load fails gets
// the expired value of the id that has one, with the load's error for the
// id that has none; the fleet is then held back (the other node's
// FetchMany serves the value without loading), and the node keeps it in
// L1. With the throttle off, the other node loads.
func failSafeFetchManyServesExpired(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("throttleOff=%v", off), func(t *testing.T) {
			ctx := context.Background()
			r := newFSRig(t, rdb, 2, tiered.GroupOptions{})
			for _, c := range r.caches {
				tiered.SetNoThrottle(c, off)
			}
			id := fmt.Sprintf("many-%v", off)
			r.cached(id)
			got, err := r.groups[0].FetchMany(ctx, []string{id, "never"}, r.deadMany)
			if !errors.Is(err, errDown) || got[id] != "v1" || len(got) != 1 {
				t.Fatalf("FetchMany with the database down = %v, %v; want %s: v1 and the loader's error for the other id", got, err, id)
			}
			if s := r.groups[0].Stats(); s.FailSafe != 1 {
				t.Fatalf("Stats.FailSafe = %d; want 1", s.FailSafe)
			}
			base := r.loads.Load()
			got, err = r.groups[1].FetchMany(ctx, []string{id}, r.deadMany)
			if err != nil || got[id] != "v1" {
				t.Fatalf("the other node's FetchMany = %v, %v; want v1, no error", got, err)
			}
			calls := r.loads.Load() - base
			if off {
				if calls != 1 {
					t.Fatalf("throttle off: %d loader calls on the other node; want 1", calls)
				}
				return
			}
			if calls != 0 {
				t.Fatalf("%d loader calls within the throttle period; want 0 (the mark holds the fleet back)", calls)
			}
			r.caches[0].WaitL1()
			if got, err := r.groups[0].FetchMany(ctx, []string{id}, r.deadMany); err != nil || got[id] != "v1" || r.loads.Load() != base {
				t.Fatalf("FetchMany during the throttle = %v, %v; want v1 from L1 without a load", got, err)
			}
		})
	}
}

// failSafeFetchManyNeverInvalidated: an invalidation from another node
// that lands during the batch's load (the loader issues it) makes the
// expired value no fallback: the caller gets the load's error. With the
// fallback checks off, the invalidated value is served.
func failSafeFetchManyNeverInvalidated(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkOff=%v", off), func(t *testing.T) {
			ctx := context.Background()
			r := newFSRig(t, rdb, 2, tiered.GroupOptions{})
			tiered.SetNoFallbackCheck(r.caches[1], off)
			id := fmt.Sprintf("many-inv-%v", off)
			r.cached(id)
			invalidating := func(ctx context.Context, ids []string) (map[string]string, error) {
				if err := r.groups[0].Invalidate(ctx, ids...); err != nil {
					t.Error(err)
				}
				return nil, errDown
			}
			got, err := r.groups[1].FetchMany(ctx, []string{id}, invalidating)
			if off {
				if err != nil || got[id] != "v1" {
					t.Fatalf("check off: %v, %v; want the invalidated v1 served", got, err)
				}
				return
			}
			if !errors.Is(err, errDown) || len(got) != 0 {
				t.Fatalf("invalidated during the load: %v, %v; want the loader's error and no value", got, err)
			}
		})
	}
}

// failSafeFetchManyNotFoundDiscards: a batch loader that no longer finds
// the id (the row is gone) removes its expired value from Redis, so a
// later failing load has no fallback for it.
func failSafeFetchManyNotFoundDiscards(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	r := newFSRig(t, rdb, 2, tiered.GroupOptions{})
	r.cached("gone")
	none := func(context.Context, []string) (map[string]string, error) { return map[string]string{}, nil }
	if got, err := r.groups[1].FetchMany(ctx, []string{"gone"}, none); err != nil || len(got) != 0 {
		t.Fatalf("FetchMany of a deleted row = %v, %v; want nothing", got, err)
	}
	if v, fb, err := r.fetch(0, "gone", r.dead); !errors.Is(err, errDown) {
		t.Fatalf("then a failing Fetch = %q, fallback %v, %v; want the loader's error, no fallback", v, fb, err)
	}
}

func init() {
	failSafeCases["FetchManyThrottledKeepsValue"] = failSafeFetchManyThrottledKeepsValue
}

// failSafeFetchManyThrottledKeepsValue: a FetchMany whose batch holds a
// throttled id (served its fallback, not loaded) and another id that loads
// leaves the throttled id's expired value in Redis: a third node's failing
// Fetch still falls back on it.
func failSafeFetchManyThrottledKeepsValue(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	r := newFSRig(t, rdb, 3, tiered.GroupOptions{})
	r.cached("hb")
	if got, err := r.groups[0].FetchMany(ctx, []string{"hb"}, r.deadMany); err != nil || got["hb"] != "v1" {
		t.Fatalf("FetchMany with the database down = %v, %v; want the fallback v1", got, err)
	}
	other := func(_ context.Context, ids []string) (map[string]string, error) {
		return map[string]string{"other": "o"}, nil
	}
	got, err := r.groups[1].FetchMany(ctx, []string{"hb", "other"}, other)
	if err != nil || got["hb"] != "v1" || got["other"] != "o" {
		t.Fatalf("FetchMany of the throttled id and another = %v, %v; want hb: v1 (held back), other: o", got, err)
	}
	if v, fb, err := r.fetch(2, "hb", r.dead); err != nil || v != "v1" || !fb {
		t.Fatalf("a third node's failing Fetch = %q, fallback %v, %v; want the fallback v1 still in Redis", v, fb, err)
	}
}
