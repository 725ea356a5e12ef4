package tiered

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// failSafe is a group's fail-safe settings (GroupOptions.FailSafe,
// FailSafeThrottle, LoadSoftTimeout).
type failSafe struct {
	window   time.Duration // how long past its expiry a value is kept; 0: off
	throttle time.Duration
	soft     time.Duration // 0: no soft timeout
}

func newFailSafe(o GroupOptions) (failSafe, error) {
	if o.FailSafe < 0 || o.FailSafeThrottle < 0 || o.LoadSoftTimeout < 0 {
		return failSafe{}, fmt.Errorf("negative FailSafe %v, FailSafeThrottle %v or LoadSoftTimeout %v", o.FailSafe, o.FailSafeThrottle, o.LoadSoftTimeout)
	}
	if o.FailSafe > MaxTTL || o.FailSafeThrottle > MaxTTL || o.LoadSoftTimeout > MaxTTL {
		return failSafe{}, fmt.Errorf("FailSafe %v, FailSafeThrottle %v or LoadSoftTimeout %v is longer than MaxTTL (%v)", o.FailSafe, o.FailSafeThrottle, o.LoadSoftTimeout, MaxTTL)
	}
	if o.LoadSoftTimeout > 0 && o.FailSafe == 0 {
		return failSafe{}, errors.New("LoadSoftTimeout needs FailSafe: without it there is no fallback to return")
	}
	fs := failSafe{window: o.FailSafe, throttle: o.FailSafeThrottle, soft: o.LoadSoftTimeout}
	if fs.throttle == 0 {
		fs.throttle = DefaultFailSafeThrottle
	}
	return fs, nil
}

// keep is how long past its TTL Redis keeps a record of kind k.
func (fs failSafe) keep(k remote.Kind) time.Duration {
	if k == remote.KindValue {
		return fs.window
	}
	return 0
}

// expired reports whether rec is a value past its logical expiry that
// fail-safe may fall back on.
func (fs failSafe) expired(c *Cache, rec remote.Record) bool {
	return fs.window > 0 && rec.Kind == remote.KindValue && rec.Expire*int64(time.Millisecond) <= c.clock.Now()
}

// Served tells how [Group.FetchInfo] served a value.
type Served struct {
	// Fallback is true when the value is an expired one that fail-safe
	// served because its load failed, timed out, passed LoadSoftTimeout,
	// or is held back by FailSafeThrottle (see GroupOptions.FailSafe).
	Fallback bool
	// Stale is true when the value is the previous value of an id that
	// was invalidated less than the group's MaxStale ago, served while one
	// load replaces it (see GroupOptions.MaxStale).
	Stale bool
}

// FetchInfo is [Group.Fetch] that also tells whether the value is a
// fail-safe fallback or a stale value served within the MaxStale window. Fetch itself costs nothing more for it: an L1 hit of
// FetchInfo reads one more field of the entry.
func (g *Group[V]) FetchInfo(ctx context.Context, id string, load LoaderFunc[V]) (V, Served, error) {
	if l1 := g.l1; l1 != nil {
		if e, ok := l1.LookupPrefix(g.pfx, id); ok {
			g.l1Hit()
			s := Served{Fallback: e.Fallback != 0}
			if e.Refresh != 0 || e.Absent {
				v, err := g.hitSpecial(ctx, e, id, load)
				return v, s, err
			}
			v, _ := e.Value.(V)
			return v, s, nil
		}
	}
	return g.fetchSlowInfo(ctx, id, load)
}

// fallback is the outcome of a load that ended in a fail-safe fallback, as
// its flight carries it.
type fallback[V any] struct{ v V }

// errThrottled is the Err of an EventFailSafe served because a recent load
// of the id failed (on this node or another) and FailSafeThrottle holds.
var errThrottled = errors.New("tiered: a recent load failed; held back by FailSafeThrottle")

// hookFallback is the point (Cache.at) where a failed reload has set the
// throttle mark and kept its fallback.
const hookFallback = "fail-safe-served"

// errLoadFailed is the Err of an EventFailSafe served when a load on its
// own goroutine (see LoadSoftTimeout) failed before the soft timeout.
var errLoadFailed = errors.New("tiered: the load failed")

// monoNow is the time (ns) soft timeouts and the pattern queue's delay are
// counted in: the monotonic clock (a step of the wall clock moves neither),
// or a test's clock.
func (c *Cache) monoNow() int64 {
	if c.opts.clock != nil {
		return c.clock.Now()
	}
	return int64(time.Since(c.monoStart))
}

// l1Fallback serves, for a Fetch whose load failed with err while Redis
// could not be read (or without Redis), the expired value L1 still keeps
// under key within the fail-safe window, unless an invalidation removed it
// or reached this node since tok. The fallback is kept in L1 for
// FailSafeThrottle, so this node does not call the loader again meanwhile.
func (g *Group[V]) l1Fallback(key string, tok local.Token, out any, err error) (any, error) {
	c := g.c
	if g.fs.window <= 0 || c.l1 == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrClosed) {
		return out, err
	}
	if !c.noFallbackCheck && c.l1.Invalidated(key, tok) {
		return out, err
	}
	e, ok := c.l1.GetExpired(key, int64(g.fs.window))
	if !ok || e.Absent {
		return out, err
	}
	v, ok := e.Value.(V)
	if !ok {
		return out, err
	}
	g.record(Event{Kind: EventFailSafe, Err: err})
	end := e.Fallback
	if end == 0 {
		end = e.Expire + int64(g.fs.window)
	}
	it := local.Item[any]{
		Value: v, Cost: cost(v, g.size(v)), Version: e.Version,
		Expire: min(c.clock.Now()+int64(g.fs.throttle)-c.tick, end), Fallback: end,
		Begin: e.Begin, Tags: e.Tags, // a tag invalidation ends it, as it ends e
	}
	c.fillL1(key, tok, it)
	return fallback[V]{v}, nil
}

// softTimer starts the timer of a soft timeout (tests replace it).
func (c *Cache) softTimer(d time.Duration) *time.Timer {
	if c.softTimeout != nil {
		return c.softTimeout(d)
	}
	return time.NewTimer(d)
}

// flightValue is the value a load's flight carries, a fail-safe fallback
// included (for a FetchMany that joined a Fetch's load).
func flightValue[V any](v any) V {
	switch v := v.(type) {
	case fallback[V]:
		return v.v
	case staleValue[V]:
		return v.v
	}
	r, _ := v.(V)
	return r
}

// rethrow ends the goroutine of a load that ran its loader on another
// goroutine as that loader ended: p is nil (it returned), errGoexit (it
// called runtime.Goexit, which the load's flight turns into an error for
// its callers) or a panic.
func rethrow(p any) {
	switch {
	case p == nil:
	case p == any(errGoexit):
		runtime.Goexit()
	default:
		panic(p)
	}
}
