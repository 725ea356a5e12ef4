package tiered_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// TestEarlyRefreshLoadsOncePerExpiry: XFetch with beta = 1, a steady read
// load on a hot key, an injected clock and random source. Over 100 expiry
// periods the key is loaded at most 1.1 times per period and the refreshes
// happen in the background, without a reader waiting. A read misses only
// when the drawn deadline fell within the last L1 clock tick (1ms) before
// the value's expiry, which XFetch makes rare: probability
// 1-exp(-(1ms+step)/delta) per period, about 1% here.
func TestEarlyRefreshLoadsOncePerExpiry(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	start := time.Now()
	m.SetTime(start)
	clk := newManualClock(start)
	rng := rand.New(rand.NewPCG(1, 2))
	o := tiered.WithRandom(tiered.WithClock(tiered.Options{
		Redis: rdb, Namespace: "xfetch", DisableBus: true, DisableJitter: true,
		L1TTL: time.Hour, EarlyRefreshBeta: 1,
	}, clk), rng.Float64)
	c := newCache(t, o)
	const ttl, delta, step = time.Second, 200 * time.Millisecond, time.Millisecond
	g := newGroup[int](t, c, "hot", tiered.GroupOptions{TTL: ttl})
	var loads atomic.Int64
	load := func(context.Context, string) (int, error) {
		clk.Add(delta) // the load takes delta on the injected clock
		return int(loads.Add(1)), nil
	}
	ctx := context.Background()
	if _, err := g.Fetch(ctx, "k", load); err != nil {
		t.Fatal(err)
	}
	c.WaitL1()
	warm := g.Stats()
	const periods = 100
	var sawRefresh bool
	for clk.Now() < start.Add(periods*ttl).UnixNano() {
		before := loads.Load()
		if _, err := g.Fetch(ctx, "k", load); err != nil {
			t.Fatal(err)
		}
		tiered.WaitRefreshes(c)
		c.WaitL1()
		if loads.Load() != before {
			sawRefresh = true
		}
		clk.Add(step)
		m.FastForward(step)
	}
	s := g.Stats()
	perPeriod := float64(loads.Load()-1) / periods
	t.Logf("loads per expiry period: %.3f; refreshes %d; L1 misses after warm-up %d", perPeriod, s.Refreshes, s.L1Misses-warm.L1Misses)
	if !sawRefresh || s.Refreshes == 0 {
		t.Fatal("no early refresh happened")
	}
	if perPeriod > 1.1 {
		t.Fatalf("loads per expiry period = %.3f; want at most 1.1", perPeriod)
	}
	if miss := s.L1Misses - warm.L1Misses; miss > periods/20 {
		t.Fatalf("%d reads missed L1 in %d periods: values expired before their refresh", miss, periods)
	}
}

// refreshNode is one cache with early refresh forced: every value is due at
// once (the random source always draws the smallest U), on a real Redis.
func refreshNode(t *testing.T, rdb *redis.Client) (*tiered.Cache, *tiered.Group[string]) {
	o := tiered.WithRandom(tiered.Options{Redis: rdb, Namespace: "refresh", EarlyRefreshBeta: 1e9}, func() float64 { return 0.999999 })
	c := newCache(t, o)
	return c, newGroup[string](t, c, "k", tiered.GroupOptions{})
}

// TestRefreshReadersDoNotWait: while a refresh is loading, reads return the
// current value at once; the refreshed value replaces it afterwards.
func TestRefreshReadersDoNotWait(t *testing.T) {
	rdb := newReal(t)
	c, g := refreshNode(t, rdb)
	ctx := context.Background()
	slowLoad := func(context.Context, string) (string, error) { time.Sleep(time.Millisecond); return "v1", nil }
	if v, err := g.Fetch(ctx, "1", slowLoad); err != nil || v != "v1" {
		t.Fatalf("Fetch = %q, %v", v, err)
	}
	c.WaitL1()
	entered, release := make(chan struct{}), make(chan struct{})
	refresh := func(context.Context, string) (string, error) {
		close(entered)
		<-release
		return "v2", nil
	}
	if v, err := g.Fetch(ctx, "1", refresh); err != nil || v != "v1" {
		t.Fatalf("Fetch past the deadline = %q, %v; want v1 at once", v, err)
	}
	<-entered
	for range 10 { // the refresh is blocked: every read is served, none waits
		if v, err := g.Fetch(ctx, "1", refresh); err != nil || v != "v1" {
			t.Fatalf("Fetch during the refresh = %q, %v; want v1", v, err)
		}
	}
	close(release)
	tiered.WaitRefreshes(c)
	c.WaitL1()
	if v, err := g.Get(ctx, "1"); err != nil || v != "v2" {
		t.Fatalf("Get after the refresh = %q, %v; want v2", v, err)
	}
	if s := g.Stats(); s.Refreshes != 1 || s.RefreshErrors != 0 {
		t.Fatalf("Refreshes %d, errors %d; want 1, 0", s.Refreshes, s.RefreshErrors)
	}
}

// TestRefreshLosesToInvalidation: an invalidation that lands while a refresh
// is loading wins: the refreshed (older) value is written nowhere.
func TestRefreshLosesToInvalidation(t *testing.T) {
	rdb := newReal(t)
	c, g := refreshNode(t, rdb)
	ctx := context.Background()
	if _, err := g.Fetch(ctx, "1", func(context.Context, string) (string, error) { time.Sleep(time.Millisecond); return "v1", nil }); err != nil {
		t.Fatal(err)
	}
	c.WaitL1()
	entered, release := make(chan struct{}), make(chan struct{})
	refresh := func(context.Context, string) (string, error) {
		close(entered)
		<-release
		return "v1-reloaded", nil
	}
	if _, err := g.Fetch(ctx, "1", refresh); err != nil {
		t.Fatal(err)
	}
	<-entered
	if err := g.Invalidate(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	close(release)
	tiered.WaitRefreshes(c)
	c.WaitL1()
	if raw, err := rdb.Get(ctx, "refresh:k:1").Result(); err == nil && strings.Contains(raw, "v1") {
		t.Fatalf("Redis holds %q after the invalidation", raw)
	}
	if v, err := g.Get(ctx, "1"); !errors.Is(err, tiered.ErrNotCached) {
		t.Fatalf("Get = %q, %v; want ErrNotCached", v, err)
	}
}

// TestFailedRefreshKeepsTheValue: a refresh whose loader fails changes
// nothing: the old value is served until it expires.
func TestFailedRefreshKeepsTheValue(t *testing.T) {
	rdb := newReal(t)
	c, g := refreshNode(t, rdb)
	ctx := context.Background()
	if _, err := g.Fetch(ctx, "1", func(context.Context, string) (string, error) { time.Sleep(time.Millisecond); return "v1", nil }); err != nil {
		t.Fatal(err)
	}
	c.WaitL1()
	failing := func(context.Context, string) (string, error) { return "", errors.New("database down") }
	if v, err := g.Fetch(ctx, "1", failing); err != nil || v != "v1" {
		t.Fatalf("Fetch = %q, %v", v, err)
	}
	tiered.WaitRefreshes(c)
	if v, err := g.Get(ctx, "1"); err != nil || v != "v1" {
		t.Fatalf("Get after a failed refresh = %q, %v; want v1", v, err)
	}
	if s := g.Stats(); s.RefreshErrors != 1 {
		t.Fatalf("RefreshErrors = %d; want 1", s.RefreshErrors)
	}
}
