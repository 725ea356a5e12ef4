package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

var errNoRow = fmt.Errorf("no row: %w", tiered.ErrNotFound)

// TestNegativeCaching: with NegativeTTL, a "not found" from the loader is
// cached in both tiers, told apart from "not cached" by Get, and cleared by
// an invalidation; without it, every Fetch asks the loader.
func TestNegativeCaching(t *testing.T) {
	rdb := newReal(t)
	ctx := context.Background()
	var calls atomic.Int64
	exists := atomic.Bool{}
	load := func(_ context.Context, id string) (string, error) {
		calls.Add(1)
		if !exists.Load() {
			return "", errNoRow
		}
		return "row " + id, nil
	}
	a := newCache(t, tiered.Options{Redis: rdb, Namespace: "neg"})
	b := newCache(t, tiered.Options{Redis: rdb, Namespace: "neg"})
	ga := newGroup[string](t, a, "user", tiered.GroupOptions{NegativeTTL: time.Minute})
	gb := newGroup[string](t, b, "user", tiered.GroupOptions{NegativeTTL: time.Minute})

	if _, err := ga.Fetch(ctx, "1", load); !errors.Is(err, errNoRow) {
		t.Fatalf("first Fetch error = %v; want the loader's own not-found error", err)
	}
	a.WaitL1()
	for name, g := range map[string]*tiered.Group[string]{"same node (L1)": ga, "other node (L2)": gb} {
		if _, err := g.Fetch(ctx, "1", load); !errors.Is(err, tiered.ErrNotFound) {
			t.Fatalf("%s: Fetch error = %v; want ErrNotFound", name, err)
		}
		if _, err := g.Get(ctx, "1"); !errors.Is(err, tiered.ErrNotFound) {
			t.Fatalf("%s: Get error = %v; want ErrNotFound (cached as absent)", name, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("loader calls = %d; want 1 (the answer is cached)", n)
	}
	if _, err := ga.Get(ctx, "2"); !errors.Is(err, tiered.ErrNotCached) {
		t.Fatalf("Get(never loaded) = %v; want ErrNotCached", err)
	}
	// The row is created: its key must be invalidated, then it loads.
	exists.Store(true)
	if err := ga.Invalidate(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := ga.Fetch(ctx, "1", load); err != nil || v != "row 1" {
		t.Fatalf("Fetch after creation = %q, %v", v, err)
	}

	// Without NegativeTTL nothing is cached.
	off := newGroup[string](t, a, "plain", tiered.GroupOptions{})
	exists.Store(false)
	calls.Store(0)
	for range 2 {
		if _, err := off.Fetch(ctx, "1", load); !errors.Is(err, tiered.ErrNotFound) {
			t.Fatalf("Fetch = %v; want ErrNotFound", err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("loader calls without NegativeTTL = %d; want 2", n)
	}
}

// TestFetchManyNegative: ids a batch loader leaves out are cached as absent
// with NegativeTTL.
func TestFetchManyNegative(t *testing.T) {
	c := newCache(t, tiered.Options{Redis: newReal(t), Namespace: "negm"})
	g := newGroup[string](t, c, "u", tiered.GroupOptions{NegativeTTL: time.Minute})
	var asked [][]string
	load := func(_ context.Context, ids []string) (map[string]string, error) {
		asked = append(asked, slices.Clone(ids))
		return map[string]string{"1": "one"}, nil
	}
	for range 2 {
		got, err := g.FetchMany(context.Background(), []string{"1", "2"}, load)
		if err != nil || len(got) != 1 || got["1"] != "one" {
			t.Fatalf("FetchMany = %v, %v", got, err)
		}
		c.WaitL1()
	}
	if len(asked) != 1 {
		t.Fatalf("batch loader calls = %v; want one", asked)
	}
	if _, err := g.Get(context.Background(), "2"); !errors.Is(err, tiered.ErrNotFound) {
		t.Fatalf("Get(2) = %v; want ErrNotFound", err)
	}
}

// TestBatchNotFoundIsNoLoadError: a batch loader that returns an error
// wrapping ErrNotFound says none of its ids exists, the same answer as an
// empty map: FetchMany returns them absent and no error, the load is not
// counted as failed (LoadErrors, EventLoad's Err), as a Fetch's loader's
// ErrNotFound is not, and with NegativeTTL the absence is cached.
func TestBatchNotFoundIsNoLoadError(t *testing.T) {
	var loadErrs atomic.Int64
	c := newCache(t, tiered.Options{Redis: newReal(t), Namespace: "negnf", Recorder: tiered.RecorderFunc(func(e tiered.Event) {
		if e.Kind == tiered.EventLoad && e.Err != nil {
			loadErrs.Add(1)
		}
	})})
	g := newGroup[string](t, c, "u", tiered.GroupOptions{NegativeTTL: time.Minute})
	calls := 0
	load := func(context.Context, []string) (map[string]string, error) {
		calls++
		return nil, fmt.Errorf("rows 1, 2: %w", tiered.ErrNotFound)
	}
	for range 2 {
		got, err := g.FetchMany(context.Background(), []string{"1", "2"}, load)
		if err != nil || len(got) != 0 {
			t.Fatalf("FetchMany = %v, %v; want nothing and no error", got, err)
		}
		c.WaitL1()
	}
	if calls != 1 {
		t.Fatalf("batch loader calls = %d; want 1 (the absence cached with NegativeTTL)", calls)
	}
	if s := g.Stats(); s.Loads != 1 || s.LoadErrors != 0 || loadErrs.Load() != 0 {
		t.Fatalf("Loads %d, LoadErrors %d, failed EventLoads %d; want 1 load and no error", s.Loads, s.LoadErrors, loadErrs.Load())
	}
	if _, err := g.Get(context.Background(), "2"); !errors.Is(err, tiered.ErrNotFound) {
		t.Fatalf("Get(2) = %v; want ErrNotFound", err)
	}
}

// TestFetchManyJoinsFetch: an id that a Fetch is loading is not loaded again
// by a FetchMany in the same process, and the reverse.
func TestFetchManyJoinsFetch(t *testing.T) {
	c := newCache(t, tiered.Options{Redis: newReal(t), Namespace: "join"})
	g := newGroup[string](t, c, "u", tiered.GroupOptions{})
	ctx := context.Background()

	entered, release := make(chan struct{}), make(chan struct{})
	go g.Fetch(ctx, "1", func(context.Context, string) (string, error) { //nolint:errcheck // checked through FetchMany
		close(entered)
		<-release
		return "one", nil
	})
	<-entered
	var asked []string
	done := make(chan map[string]string)
	go func() {
		got, err := g.FetchMany(ctx, []string{"1", "2"}, func(_ context.Context, ids []string) (map[string]string, error) {
			asked = slices.Clone(ids)
			return map[string]string{"2": "two"}, nil
		})
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	waitUntil(t, "FetchMany joins the Fetch", func() bool { return g.Stats().Collapsed == 1 })
	close(release)
	got := <-done
	if got["1"] != "one" || got["2"] != "two" || !slices.Equal(asked, []string{"2"}) {
		t.Fatalf("FetchMany = %v, batch loader asked %v; want 1 from the Fetch, only 2 loaded", got, asked)
	}

	// The reverse: a Fetch joins the batch.
	entered, release = make(chan struct{}), make(chan struct{})
	go g.FetchMany(ctx, []string{"3", "4"}, func(context.Context, []string) (map[string]string, error) { //nolint:errcheck // checked through Fetch
		close(entered)
		<-release
		return map[string]string{"3": "three", "4": "four"}, nil
	})
	<-entered
	res := make(chan string)
	go func() {
		v, err := g.Fetch(ctx, "4", func(context.Context, string) (string, error) { return "", errors.New("must not load") })
		if err != nil {
			t.Error(err)
		}
		res <- v
	}()
	waitUntil(t, "Fetch joins the batch", func() bool { return g.Stats().Collapsed == 2 })
	close(release)
	if v := <-res; v != "four" {
		t.Fatalf("Fetch = %q; want four from the batch", v)
	}
}

// TestFetchManyNoStaleFill: a batch that loaded old data while its keys were
// invalidated fills neither tier; with the compare-and-set off it does.
func TestFetchManyNoStaleFill(t *testing.T) {
	for _, noCAS := range []bool{false, true} {
		t.Run(fmt.Sprintf("noCAS=%v", noCAS), func(t *testing.T) {
			rdb := newReal(t)
			c := newCache(t, tiered.Options{Redis: rdb, Namespace: "mstale"})
			tiered.SetNoCAS(c, noCAS)
			g := newGroup[string](t, c, "u", tiered.GroupOptions{})
			ctx := context.Background()
			read, release := make(chan struct{}), make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				g.FetchMany(ctx, []string{"1", "2"}, func(context.Context, []string) (map[string]string, error) { //nolint:errcheck // the values are checked in the tiers
					close(read)
					<-release
					return map[string]string{"1": "old", "2": "old"}, nil
				})
			}()
			<-read
			if err := g.Invalidate(ctx, "1", "2"); err != nil {
				t.Fatal(err)
			}
			close(release)
			<-done
			c.WaitL1()
			n, _ := rdb.Exists(ctx, "mstale:u:1", "mstale:u:2").Result()
			_, l1err := g.Get(ctx, "1")
			stale := n > 0 || l1err == nil
			if stale != noCAS {
				t.Fatalf("old values cached = %v (L2 keys %d, Get err %v); want %v", stale, n, l1err, noCAS)
			}
		})
	}
}

// TestFailClosed: with Redis down, Fetch serves the loader's value and no
// error by default, and returns the Redis error with FailClosed.
func TestFailClosed(t *testing.T) {
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("FailClosed=%v", closed), func(t *testing.T) {
			rdb, m := newMini(t)
			c := newCache(t, tiered.Options{Redis: rdb, Namespace: "fc", FailClosed: closed, DisableBus: true})
			g := newGroup[string](t, c, "u", tiered.GroupOptions{})
			m.Close()
			var calls atomic.Int64
			v, err := g.Fetch(context.Background(), "1", func(context.Context, string) (string, error) { calls.Add(1); return "v", nil })
			if closed {
				if err == nil || calls.Load() != 0 {
					t.Fatalf("Fetch = %q, %v with %d loads; want the Redis error and no load", v, err, calls.Load())
				}
				return
			}
			if err != nil || v != "v" {
				t.Fatalf("Fetch = %q, %v; want the loader's value", v, err)
			}
			got, err := g.FetchMany(context.Background(), []string{"2"}, func(_ context.Context, ids []string) (map[string]string, error) {
				return map[string]string{"2": "w"}, nil
			})
			if err != nil || got["2"] != "w" {
				t.Fatalf("FetchMany = %v, %v", got, err)
			}
		})
	}
}
