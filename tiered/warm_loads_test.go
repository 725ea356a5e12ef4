package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// TestBatchNotFoundServesNoFallback: a batch loader's ErrNotFound says its
// ids do not exist, as an empty map would: FetchMany returns nothing and no
// error, serves no expired value as a fail-safe fallback, and removes that
// value, as Fetch does on the same answer.
func TestBatchNotFoundServesNoFallback(t *testing.T) {
	ctx := context.Background()
	r := newFSRig(t, newReal(t), 1, tiered.GroupOptions{})
	r.cached("a")
	nf := func(context.Context, []string) (map[string]string, error) {
		r.loads.Add(1)
		return nil, fmt.Errorf("rows gone: %w", tiered.ErrNotFound)
	}
	got, err := r.groups[0].FetchMany(ctx, []string{"a"}, nf)
	if s := r.groups[0].Stats(); err != nil || len(got) != 0 || s.FailSafe != 0 || s.LoadErrors != 0 {
		t.Fatalf("FetchMany with a batch ErrNotFound = %v, %v (FailSafe %d, LoadErrors %d); want nothing, no error, no fallback", got, err, s.FailSafe, s.LoadErrors)
	}
	r.caches[0].WaitL1()
	if got, err := r.groups[0].FetchMany(ctx, []string{"a"}, r.deadMany); err == nil || len(got) != 0 {
		t.Fatalf("FetchMany after the row was gone, the loader down = %v, %v; want the error: the expired value was removed", got, err)
	}
}

// TestWarmServesNoFallback: Warm loads, or reports the failure. A batch
// whose LoadMany fails with every id expired is a failure, not fallbacks;
// and another node's throttle mark (a load failed there lately) does not
// hold Warm back from loading.
func TestWarmServesNoFallback(t *testing.T) {
	ctx := context.Background()
	t.Run("LoadManyFails", func(t *testing.T) {
		r := newFSRig(t, newReal(t), 1, tiered.GroupOptions{})
		r.cached("a")
		r.cached("b")
		err := r.groups[0].Warm(ctx, []string{"a", "b"}, tiered.WarmOptions[string]{LoadMany: r.deadMany})
		var we *tiered.WarmError
		if !errors.As(err, &we) || !errors.Is(err, errDown) {
			t.Fatalf("Warm with LoadMany failing = %v; want a WarmError with the loader's error", err)
		}
		if n := r.groups[0].Stats().FailSafe; n != 0 {
			t.Fatalf("Warm served %d fallbacks; want none", n)
		}
	})
	t.Run("Throttled", func(t *testing.T) {
		r := newFSRig(t, newReal(t), 2, tiered.GroupOptions{})
		r.cached("a")
		if got, err := r.groups[0].FetchMany(ctx, []string{"a"}, r.deadMany); err != nil || got["a"] != "v1" {
			t.Fatalf("node 0's FetchMany with the loader down = %v, %v; want the fallback v1", got, err)
		}
		calls := 0
		err := r.groups[1].Warm(ctx, []string{"a"}, tiered.WarmOptions[string]{LoadMany: func(context.Context, []string) (map[string]string, error) {
			calls++
			return map[string]string{"a": "v2"}, nil
		}})
		if err != nil || calls != 1 {
			t.Fatalf("node 1's Warm under node 0's throttle = %v after %d loader calls; want it loaded", err, calls)
		}
		r.caches[1].WaitL1()
		if v, s, ok := r.groups[1].PeekInfo("a"); !ok || v != "v2" || s.Fallback {
			t.Fatalf("node 1's L1 after Warm: %q %+v %v; want v2, no fallback", v, s, ok)
		}
	})
}

// TestWarmJoinsEarlyEndedLoad: a Warm whose id joins a Fetch's load that
// then ends at its soft timeout (a fallback served while the load goes on)
// does not count that id as warmed: it fetches it again and loads it. The
// Fetch's load is still blocked when Warm returns with its own value in
// place.
func TestWarmJoinsEarlyEndedLoad(t *testing.T) {
	r := newSoftRig(t, newReal(t), tiered.GroupOptions{})
	r.cached("a")
	for len(r.joined) > 0 {
		<-r.joined
	}
	entered, release := make(chan struct{}), make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // a failed check still lets the Fetch's load end before Close
	fetched := make(chan error, 1)
	go func() {
		_, _, err := r.fetch(1, "a", func(context.Context, string) (string, error) {
			close(entered)
			<-release
			return "", errDown
		})
		fetched <- err
	}()
	<-entered
	warmed := make(chan error, 1)
	warmCalls := 0
	go func() {
		warmed <- r.groups[1].Warm(context.Background(), []string{"a"}, tiered.WarmOptions[string]{LoadMany: func(context.Context, []string) (map[string]string, error) {
			warmCalls++
			return map[string]string{"a": "v2"}, nil
		}})
	}()
	<-r.joined // Warm joined the Fetch's load
	r.fire <- time.Now()
	if err := <-warmed; err != nil || warmCalls != 1 {
		t.Fatalf("Warm = %v after %d loader calls; want its own load of the id whose joined load ended early", err, warmCalls)
	}
	if v, err := r.groups[0].Get(context.Background(), "a"); err != nil || v != "v2" {
		t.Fatalf("Redis after Warm: %q, %v; want v2", v, err)
	}
	unblock()
	<-fetched
}

// TestWarmCancelledLoadsNoMore: a batch that waited for a slot while Warm's
// ctx was cancelled is reported failed and never loaded.
func TestWarmCancelledLoadsNoMore(t *testing.T) {
	c := newCache(t, tiered.Options{Redis: newReal(t), Namespace: "wc"})
	g := newGroup[string](t, c, "g", tiered.GroupOptions{})
	queued := make(chan struct{}, 2)
	tiered.SetHook(c, func(point string) {
		if point == "warm-batch-queued" {
			queued <- struct{}{}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var called []string
	entered, release := make(chan struct{}, 2), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- g.Warm(ctx, []string{"a", "b"}, tiered.WarmOptions[string]{BatchSize: 1, Concurrency: 1,
			LoadMany: func(_ context.Context, ids []string) (map[string]string, error) {
				mu.Lock()
				called = append(called, ids...)
				mu.Unlock()
				entered <- struct{}{}
				<-release
				return map[string]string{ids[0]: "v"}, nil
			}})
	}()
	<-queued
	<-entered // batch a loads
	<-queued  // batch b passed the ctx check and waits for the slot
	cancel()
	close(release)
	err := <-done
	var we *tiered.WarmError
	if !errors.As(err, &we) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Warm = %v; want a WarmError with context.Canceled", err)
	}
	tiered.WaitLoads(c) // any load started for batch b has called the loader by now
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(called, []string{"a"}) {
		t.Fatalf("loader called for %v; want only batch a, which began before the cancel", called)
	}
}

// TestBatchLoaderOwnsItsIDs: a batch loader may rewrite the ids it is
// given; FetchMany still delivers each value to its id.
func TestBatchLoaderOwnsItsIDs(t *testing.T) {
	c := newCache(t, tiered.Options{Redis: newReal(t), Namespace: "own"})
	g := newGroup[string](t, c, "g", tiered.GroupOptions{})
	load := func(_ context.Context, ids []string) (map[string]string, error) {
		m := make(map[string]string, len(ids))
		for i, id := range ids {
			m[id] = "v" + id
			ids[i] = ""
		}
		return m, nil
	}
	got, err := g.FetchMany(context.Background(), []string{"a", "b", "c"}, load)
	if err != nil || len(got) != 3 || got["a"] != "va" || got["b"] != "vb" || got["c"] != "vc" {
		t.Fatalf("FetchMany with a loader that rewrites its ids = %v, %v", got, err)
	}
}

// TestWarmLoadsOverL1Fallback: a fail-safe fallback that this node keeps in
// L1 for the throttle is no warmed value: Warm loads the id, whether the
// fallback was served before Warm began or by the failed load Warm joined.
func TestWarmLoadsOverL1Fallback(t *testing.T) {
	warmV2 := func(calls *int) tiered.WarmOptions[string] {
		return tiered.WarmOptions[string]{LoadMany: func(context.Context, []string) (map[string]string, error) {
			*calls++
			return map[string]string{"a": "v2"}, nil
		}}
	}
	check := func(t *testing.T, r *fsRig, err error, calls int) {
		t.Helper()
		if err != nil || calls != 1 {
			t.Fatalf("Warm = %v after %d loader calls; want the id loaded", err, calls)
		}
		r.caches[0].WaitL1()
		if v, s, ok := r.groups[0].PeekInfo("a"); !ok || v != "v2" || s.Fallback {
			t.Fatalf("L1 after Warm: %q %+v %v; want v2, no fallback", v, s, ok)
		}
	}
	t.Run("ServedBefore", func(t *testing.T) {
		r := newFSRig(t, newReal(t), 1, tiered.GroupOptions{})
		r.cached("a")
		if got, err := r.groups[0].FetchMany(context.Background(), []string{"a"}, r.deadMany); err != nil || got["a"] != "v1" {
			t.Fatalf("FetchMany with the loader down = %v, %v; want the fallback v1", got, err)
		}
		r.caches[0].WaitL1()
		calls := 0
		err := r.groups[0].Warm(context.Background(), []string{"a"}, warmV2(&calls))
		check(t, r, err, calls)
	})
	t.Run("JoinedFailedLoad", func(t *testing.T) {
		r := newFSRig(t, newReal(t), 1, tiered.GroupOptions{})
		r.cached("a")
		for len(r.joined) > 0 {
			<-r.joined
		}
		entered, release := make(chan struct{}), make(chan struct{})
		unblock := sync.OnceFunc(func() { close(release) })
		defer unblock()
		fetched := make(chan error, 1)
		go func() {
			_, _, err := r.fetch(0, "a", func(context.Context, string) (string, error) {
				close(entered)
				<-release
				return "", errDown
			})
			fetched <- err
		}()
		<-entered
		warmed := make(chan error, 1)
		calls := 0
		go func() { warmed <- r.groups[0].Warm(context.Background(), []string{"a"}, warmV2(&calls)) }()
		<-r.joined // Warm joined the Fetch's load, which now fails
		unblock()
		<-fetched
		check(t, r, <-warmed, calls)
	})
}

// TestWarmNotFoundIsDone: a loader's ErrNotFound says the id does not
// exist, with Load as with LoadMany: Warm counts it done, not failed.
func TestWarmNotFoundIsDone(t *testing.T) {
	c := newCache(t, tiered.Options{Redis: newReal(t), Namespace: "wnf"})
	g := newGroup[string](t, c, "g", tiered.GroupOptions{})
	ctx := context.Background()
	gone := fmt.Errorf("no row: %w", tiered.ErrNotFound)
	load := func(_ context.Context, id string) (string, error) {
		if id == "z" {
			return "", gone
		}
		return "v" + id, nil
	}
	if err := g.Warm(ctx, []string{"a", "z"}, tiered.WarmOptions[string]{Load: load}); err != nil {
		t.Fatalf("Warm with Load answering ErrNotFound for z = %v; want nil", err)
	}
	loadMany := func(context.Context, []string) (map[string]string, error) { return nil, gone }
	if err := g.Warm(ctx, []string{"x", "y"}, tiered.WarmOptions[string]{LoadMany: loadMany}); err != nil {
		t.Fatalf("Warm with LoadMany answering ErrNotFound = %v; want nil", err)
	}
	if v, err := g.Get(ctx, "a"); err != nil || v != "va" {
		t.Fatalf("Get(a) after Warm = %q, %v", v, err)
	}
}
