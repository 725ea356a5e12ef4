package tiered_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// TestDurationsBeyondMaxTTL: a duration too long for an expiry to be
// computed (TTL: math.MaxInt64, meant as "forever") is refused with an
// error that names MaxTTL, instead of wrapping around into values written
// already expired (every read a load, every key kept in Redis for ages).
func TestDurationsBeyondMaxTTL(t *testing.T) {
	rdb, _ := newMini(t)
	const huge = time.Duration(math.MaxInt64)
	for _, tc := range []struct {
		name string
		opts tiered.Options
	}{
		{"TTL", tiered.Options{TTL: huge}},
		{"L1TTL", tiered.Options{Redis: rdb, L1TTL: huge}},
		{"DegradedL1TTL", tiered.Options{Redis: rdb, DegradedL1TTL: huge}},
		{"LoadTimeout", tiered.Options{Redis: rdb, LoadTimeout: huge}},
		{"RedisTimeout", tiered.Options{Redis: rdb, RedisTimeout: huge}},
		{"LeaseTTL", tiered.Options{Redis: rdb, LeaseTTL: huge}},
		{"LeaseWait", tiered.Options{Redis: rdb, LeaseWait: huge}},
		{"BreakerCooldown", tiered.Options{Redis: rdb, BreakerCooldown: huge}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tiered.New(tc.opts)
			if c != nil {
				c.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "MaxTTL") || !strings.HasPrefix(err.Error(), "tiered: ") {
				t.Fatalf("New(%s: %v) error = %v; want a tiered error naming MaxTTL", tc.name, huge, err)
			}
		})
	}
	c := newCache(t, tiered.Options{Redis: rdb})
	for name, o := range map[string]tiered.GroupOptions{
		"TTL":              {TTL: huge},
		"NegativeTTL":      {NegativeTTL: huge},
		"MaxStale":         {MaxStale: huge},
		"FailSafe":         {FailSafe: huge},
		"FailSafeThrottle": {FailSafe: time.Minute, FailSafeThrottle: huge},
		"LoadSoftTimeout":  {FailSafe: time.Minute, LoadSoftTimeout: huge},
	} {
		if _, err := tiered.NewGroup[User](c, "g"+name, o); err == nil || !strings.Contains(err.Error(), "MaxTTL") {
			t.Errorf("NewGroup(%s: %v) error = %v; want one naming MaxTTL", name, huge, err)
		}
	}
}

// TestMaxTTLIsUsable: the longest TTL accepted, with the longest fail-safe
// window, is written to Redis unexpired and shared: another node reads it
// without loading.
func TestMaxTTLIsUsable(t *testing.T) {
	rdb, m := newMini(t)
	o := tiered.GroupOptions{TTL: tiered.MaxTTL, FailSafe: tiered.MaxTTL}
	c1 := newCache(t, tiered.Options{Redis: rdb})
	c2 := newCache(t, tiered.Options{Redis: rdb})
	g1 := newGroup[User](t, c1, "user", o)
	g2 := newGroup[User](t, c2, "user", o)
	ctx := context.Background()
	var calls atomic.Int64
	if _, err := g1.Fetch(ctx, "1", userLoader(&calls)); err != nil {
		t.Fatalf("Fetch(%q) = %v", "1", err)
	}
	if err := g1.Set(ctx, "2", User{ID: "2"}); err != nil {
		t.Fatalf("Set(%q) = %v", "2", err)
	}
	if _, err := g2.Fetch(ctx, "1", userLoader(&calls)); err != nil || calls.Load() != 1 {
		t.Fatalf("other node's Fetch(%q) = %v with %d loads; want the value from Redis, 1 load", "1", err, calls.Load())
	}
	if _, err := g2.Get(ctx, "2"); err != nil {
		t.Fatalf("other node's Get(%q) = %v; want the value Set wrote", "2", err)
	}
	if ttl := m.TTL("tiercache:user:2"); ttl < tiered.MaxTTL/2 {
		t.Fatalf("Redis TTL of a value Set = %v; want about %v", ttl, 2*tiered.MaxTTL)
	}
}

// TestTTLOfBeyondMaxTTL: a TTLOf answer too long to be an expiry counts as
// MaxTTL; it does not wrap around into a value written already expired.
func TestTTLOfBeyondMaxTTL(t *testing.T) {
	rdb, _ := newMini(t)
	o := tiered.GroupOptions{TTLOf: func(string, any) time.Duration { return math.MaxInt64 }}
	c1 := newCache(t, tiered.Options{Redis: rdb})
	c2 := newCache(t, tiered.Options{Redis: rdb})
	g1 := newGroup[User](t, c1, "user", o)
	g2 := newGroup[User](t, c2, "user", o)
	ctx := context.Background()
	var calls atomic.Int64
	if _, err := g1.Fetch(ctx, "1", userLoader(&calls)); err != nil {
		t.Fatalf("Fetch(%q) = %v", "1", err)
	}
	if _, err := g2.Fetch(ctx, "1", userLoader(&calls)); err != nil || calls.Load() != 1 {
		t.Fatalf("other node's Fetch(%q) = %v with %d loads; want the value from Redis, 1 load", "1", err, calls.Load())
	}
	if err := g1.Set(ctx, "2", User{ID: "2"}); err != nil {
		t.Fatalf("Set(%q) = %v", "2", err)
	}
	if _, err := g2.Get(ctx, "2"); err != nil {
		t.Fatalf("other node's Get(%q) = %v; want the value Set wrote", "2", err)
	}
}

// TestClosedCacheCalls: WaitBus and NewGroup on a closed cache return
// ErrClosed, as every other call does, rather than report a healthy bus or
// a group that can do nothing.
func TestClosedCacheCalls(t *testing.T) {
	rdb, _ := newMini(t)
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBus(context.Background()); err != nil {
		t.Fatalf("WaitBus on an open cache: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBus(context.Background()); !errors.Is(err, tiered.ErrClosed) {
		t.Fatalf("WaitBus after Close = %v; want ErrClosed", err)
	}
	if g, err := tiered.NewGroup[string](c, "late", tiered.GroupOptions{}); g != nil || !errors.Is(err, tiered.ErrClosed) {
		t.Fatalf("NewGroup after Close: a group %v, %v; want none, ErrClosed", g != nil, err)
	}
}

// TestGroupNameNotUTF8: a group name that is not valid UTF-8 is refused
// with an error, since it labels metrics (an invalid label fails a whole
// Prometheus scrape) and log lines; any valid UTF-8 name works, and the
// refused name stays free.
func TestGroupNameNotUTF8(t *testing.T) {
	rdb, _ := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb})
	if _, err := tiered.NewGroup[User](c, "bad\xff", tiered.GroupOptions{}); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("NewGroup(%q) error = %v; want one saying it is not UTF-8", "bad\xff", err)
	}
	g, err := tiered.NewGroup[User](c, "usuários:ü", tiered.GroupOptions{})
	if err != nil {
		t.Fatalf("NewGroup of a UTF-8 name: %v", err)
	}
	if g.Name() != "usuários:ü" {
		t.Fatalf("Name() = %q", g.Name())
	}
	if _, err := tiered.NewGroup[User](c, "bad", tiered.GroupOptions{}); err != nil {
		t.Fatalf("NewGroup(\"bad\") after the refused name: %v", err)
	}
}

// TestBreakersOpenGauge: Cache.BreakersOpen reports the breaker that a
// dead server opened, and 0 without Redis.
func TestBreakersOpenGauge(t *testing.T) {
	rdb, m := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb, BreakerFailures: 1, BreakerCooldown: time.Hour})
	g, err := tiered.NewGroup[User](c, "u", tiered.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := c.BreakersOpen(); n != 0 {
		t.Fatalf("BreakersOpen() before any failure = %d; want 0", n)
	}
	m.SetError("LOADING Redis is loading the dataset in memory")
	_, _ = g.Fetch(context.Background(), "1", func(context.Context, string) (User, error) { return User{}, nil })
	if n := c.BreakersOpen(); n != 1 {
		t.Fatalf("BreakersOpen() after the server failed = %d; want 1", n)
	}
	local := newCache(t, tiered.Options{})
	if n := local.BreakersOpen(); n != 0 {
		t.Fatalf("BreakersOpen() without Redis = %d; want 0", n)
	}
}
