package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// adaptiveTTL gives ids that start with "short" 10s and every other id
// 100s, counting its calls.
func adaptiveTTL(calls *atomic.Int64) func(string, any) time.Duration {
	return func(id string, v any) time.Duration {
		calls.Add(1)
		if _, ok := v.(int); !ok {
			panic(fmt.Sprintf("TTLOf got a %T", v))
		}
		if strings.HasPrefix(id, "short") {
			return 10 * time.Second
		}
		return 100 * time.Second
	}
}

// TestAdaptiveTTLRedis reads back with PTTL, from a real server, the TTL of
// values written by Fetch, FetchMany and Set with TTLOf: each lies within
// the jitter band of what TTLOf answered for its id, the lower bound less
// the time measured around the write and the read.
func TestAdaptiveTTLRedis(t *testing.T) {
	rdb := newReal(t)
	ctx := context.Background()
	const j = 0.5
	var calls atomic.Int64
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "ad", Jitter: j})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{TTL: time.Hour, TTLOf: adaptiveTTL(&calls)})
	load := func(_ context.Context, id string) (int, error) { return len(id), nil }
	loadMany := func(_ context.Context, ids []string) (map[string]int, error) {
		m := map[string]int{}
		for _, id := range ids {
			m[id] = len(id)
		}
		return m, nil
	}
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("long%d", i)
		want := 100 * time.Second
		if i%2 == 0 {
			id, want = fmt.Sprintf("short%d", i), 10*time.Second
		}
		start := time.Now()
		var err error
		switch i % 3 {
		case 0:
			_, err = g.Fetch(ctx, id, load)
		case 1:
			_, err = g.FetchMany(ctx, []string{id}, loadMany)
		case 2:
			err = g.Set(ctx, id, i)
		}
		if err != nil {
			t.Fatal(err)
		}
		pttl := rdb.PTTL(ctx, "ad:k:"+id).Val()
		took := time.Since(start)
		// PX has millisecond resolution: the jittered TTL is cut to whole
		// milliseconds before Redis counts down from it.
		lo := time.Duration(float64(want)*(1-j)) - took - time.Millisecond
		if pttl > want || pttl < lo {
			t.Fatalf("PTTL of %s = %v; want in [%v, %v]", id, pttl, lo, want)
		}
	}
	if calls.Load() != 30 {
		t.Fatalf("TTLOf called %d times; want 30, one per write", calls.Load())
	}
}

// TestAdaptiveTTLExpiry follows a value's logical expiry on a manual clock:
// it is served from L1 (TTLOf not called again) up to the low end of its
// jitter band, and is gone from both tiers once its TTLOf answer passed,
// while a value with the long TTL stays.
func TestAdaptiveTTLExpiry(t *testing.T) {
	rdb := newReal(t)
	ctx := context.Background()
	clk := newManualClock(time.Now())
	var calls, loads atomic.Int64
	c := newCache(t, tiered.WithClock(tiered.Options{Redis: rdb, Namespace: "ae", Jitter: 0.5, L1TTL: time.Hour}, clk))
	g := newGroup[int](t, c, "k", tiered.GroupOptions{TTL: time.Hour, TTLOf: adaptiveTTL(&calls)})
	load := func(_ context.Context, id string) (int, error) { loads.Add(1); return len(id), nil }
	for _, id := range []string{"short", "long"} {
		if _, err := g.Fetch(ctx, id, load); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitL1()
	clk.Add(5*time.Second - 2*time.Millisecond) // the low end of short's band, less a tick
	before := g.Stats().L1Hits
	for _, id := range []string{"short", "long"} {
		if _, err := g.Fetch(ctx, id, load); err != nil {
			t.Fatal(err)
		}
	}
	if hits := g.Stats().L1Hits - before; hits != 2 || loads.Load() != 2 || calls.Load() != 2 {
		t.Fatalf("inside the band: %d L1 hits, %d loads, %d TTLOf calls; want 2, 2, 2", hits, loads.Load(), calls.Load())
	}
	clk.Add(5*time.Second + 2*time.Millisecond) // past short's TTL of 10s
	if _, err := g.Fetch(ctx, "short", load); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Fetch(ctx, "long", load); err != nil {
		t.Fatal(err)
	}
	if loads.Load() != 3 {
		t.Fatalf("past 10s: %d loads; want 3 (short reloaded from both tiers, long still cached)", loads.Load())
	}
}

// errGone is a loader's own "not found", which NegativeTTLOf receives.
type errGone struct{ id string }

func (e errGone) Error() string { return "no row " + e.id }
func (e errGone) Unwrap() error { return tiered.ErrNotFound }

// TestAdaptiveNegativeTTL: with NegativeTTLOf, each "not found" decides how
// long it is cached, in Redis (read back with PTTL, within the jitter band)
// and in L1: "gone" ids for 30s although the group's NegativeTTL is 0,
// "maybe" ids not at all (0 keeps NegativeTTL). The callback gets the
// loader's own error from a Fetch, ErrNotFound for an id a batch loader
// left out.
func TestAdaptiveNegativeTTL(t *testing.T) {
	rdb := newReal(t)
	ctx := context.Background()
	const j = 0.5
	var gotOwn, gotBare atomic.Int64
	negOf := func(id string, err error) time.Duration {
		var own errGone
		switch {
		case errors.As(err, &own) && own.id == id:
			gotOwn.Add(1)
		case err == tiered.ErrNotFound:
			gotBare.Add(1)
		default:
			panic(fmt.Sprintf("NegativeTTLOf(%q) got %v", id, err))
		}
		if strings.HasPrefix(id, "gone") {
			return 30 * time.Second
		}
		return 0
	}
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "an", Jitter: j})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{TTL: time.Hour, NegativeTTLOf: negOf})
	var loads atomic.Int64
	load := func(_ context.Context, id string) (int, error) { loads.Add(1); return 0, errGone{id} }
	loadMany := func(_ context.Context, ids []string) (map[string]int, error) {
		loads.Add(1)
		return map[string]int{}, nil
	}
	fetch := func(id string, many bool) error {
		if many {
			_, err := g.FetchMany(ctx, []string{id}, loadMany)
			if err != nil {
				return err
			}
			_, err = g.Get(ctx, id)
			return err
		}
		_, err := g.Fetch(ctx, id, load)
		return err
	}
	for i, id := range []string{"gone1", "gone2", "maybe1", "maybe2"} {
		many := i%2 == 1
		start := time.Now()
		if err := fetch(id, many); many && !errors.Is(err, tiered.ErrNotFound) && !errors.Is(err, tiered.ErrNotCached) || !many && !errors.As(err, new(errGone)) {
			t.Fatalf("%s (batch %v): %v; want its not found", id, many, err)
		}
		pttl := rdb.PTTL(ctx, "an:k:"+id).Val()
		took := time.Since(start)
		if strings.HasPrefix(id, "gone") {
			lo := time.Duration(float64(30*time.Second)*(1-j)) - took - time.Millisecond
			if pttl > 30*time.Second || pttl < lo {
				t.Fatalf("PTTL of %s = %v; want in [%v, 30s]", id, pttl, lo)
			}
		} else if pttl != -2 { // go-redis: -2 for no key
			t.Fatalf("PTTL of %s = %v; want no key (NegativeTTL 0 kept)", id, pttl)
		}
	}
	if gotOwn.Load() != 2 || gotBare.Load() != 2 {
		t.Fatalf("NegativeTTLOf got the loader's error %d times, ErrNotFound %d times; want 2 and 2", gotOwn.Load(), gotBare.Load())
	}
	c.WaitL1()
	before := loads.Load()
	if _, err := g.Fetch(ctx, "gone1", load); !errors.Is(err, tiered.ErrNotFound) || loads.Load() != before {
		t.Fatalf("gone1 again: %v after %d loads; want ErrNotFound from the cache", err, loads.Load()-before)
	}
	if _, err := g.Fetch(ctx, "maybe1", load); !errors.Is(err, tiered.ErrNotFound) || loads.Load() != before+1 {
		t.Fatalf("maybe1 again: %v after %d loads; want a load (nothing cached)", err, loads.Load()-before)
	}
}
