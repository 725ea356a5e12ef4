package tiered

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// leadL2Read is the first part of a Fetch's load, run by the caller that
// leads it, on its own goroutine: it takes the token, then reads Redis and
// takes the key's lease in one step (remote.Store.AcquireAt, a script that
// also returns the server's time when it takes the lease; a GET on servers
// that refuse SET NX GET, see [run.exec]). On a hit (a value, or a cached
// "not found") it ends the load: no goroutine is started, and an L2 hit
// costs one command; so it does for another node's lease carrying a stale
// value that may be served (MaxStale; served says so). Otherwise it starts the rest of the load (the wait for
// another node's lease, the loader, the fill; see [run]) on a new
// goroutine and reports false. The read is bounded by RedisTimeout and
// does not observe ctx's cancellation, which the caller's wait then
// reports.
func (g *Group[V]) leadL2Read(ctx context.Context, key string, fl *flight, load LoaderFunc[V]) (v V, served Served, err error, done bool) {
	c := g.c
	tok := c.begin()
	var l2err error
	// The read: with acquired, a lease taking that read the key (Found is
	// empty when the lease was won: a miss).
	var a remote.Acquired
	acquired := false
	if c.store != nil {
		defer func() {
			if r := recover(); r != nil { // a codec panic: hand it to every waiter
				c.flights.start(key, fl, func() (any, error) { panic(r) })
			}
		}()
		c.at(hookRead)
		var began int64 // when the read began, what LoadSoftTimeout counts from
		if g.fs.soft > 0 {
			began = c.monoNow()
		}
		rctx := ctx
		if ctx.Done() != nil {
			rctx = context.WithoutCancel(ctx)
		}
		if c.store.LeaseByScript() {
			a.Found, l2err = c.store.Get(rctx, key)
		} else {
			acquired = true
			// AcquireAt: a lease taken here carries the Redis time its load
			// begins at, which saves the run a TIME round trip.
			a.Lease, a.Won, a.Found, l2err = c.store.AcquireAt(rctx, key, c.opts.LeaseTTL)
		}
		if l2err == nil {
			c.at(hookReadDone)
			switch v, st := g.fromRecord(rctx, key, a.Found, tok, load); st {
			case foundValue:
				if !c.flights.endUnwaited(key, fl) {
					c.flights.finish(key, fl, v, nil)
				}
				return v, served, nil, true
			case foundAbsent:
				c.flights.finish(key, fl, nil, ErrNotFound)
				return v, served, ErrNotFound, true
			case foundGone:
				acquired = false // the lease was not taken: take it now
			case foundNone:
				if g.fs.expired(c, a.Found) {
					g.startExpired(ctx, key, fl, load, a.Found, tok, began)
					return v, served, nil, false
				}
				if g.maxStale > 0 && !c.noStaleAtRead {
					if v, ok := g.servedStale(rctx, key, fl, a.Found); ok {
						return v, Served{Stale: true}, nil, true
					}
				}
			}
		}
	}
	if g.maxStale > 0 {
		g.startStale(ctx, key, fl, load, tok, l2err, acquired, a)
		return v, served, nil, false
	}
	// Fresh variables, so that only a miss moves them to the heap.
	id, readErr, read, acq := key[len(g.prefix):], l2err, acquired, a
	c.flights.lead(ctx, key, fl, func() (any, error) {
		rctx, cancel := c.runContext(ctx)
		defer cancel()
		var res struct { // one allocation, where two variables cost two
			v   any
			err error
		}
		r := g.newRun(rctx, tok, single(load), func(_ string, v V, err error) { res.v, res.err = v, err })
		switch {
		case readErr != nil:
			r.redisFailed("get", []string{id}, readErr)
		case read:
			r.proceed([]string{id}, []remote.Acquired{acq}, true, false)
		default:
			r.exec([]string{id}, false)
		}
		if res.err != nil && (readErr != nil || c.store == nil) {
			return g.l1Fallback(key, tok, res.v, res.err)
		}
		return res.v, res.err
	})
	return v, served, nil, false
}

// single adapts a loader of one id to the batch form the load engine runs.
// A "not found" answer becomes an id left out of the map; its error is
// kept in the *notFound the engine returns to the callers.
func single[V any](load LoaderFunc[V]) BatchLoaderFunc[V] {
	return func(ctx context.Context, ids []string) (map[string]V, error) {
		v, err := load(ctx, ids[0])
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, &notFound{err}
			}
			return nil, err
		}
		return map[string]V{ids[0]: v}, nil
	}
}

// notFound carries a loader's own "not found" error through the batch
// form, so that Fetch returns the loader's error, not a bare ErrNotFound.
type notFound struct{ err error }

func (n *notFound) Error() string { return n.err.Error() }
func (n *notFound) Unwrap() error { return n.err }

// found says what a record read from Redis turned out to hold.
type found uint8

const (
	foundNone   found = iota // a miss, a lease, or something unusable
	foundValue               // a value, decoded
	foundAbsent              // a cached "not found"
	foundGone                // bytes that do not decode, now removed: the key is free
)

// fromRecord turns what Redis held into a value, keeping it in L1 (unless
// an invalidation happened since tok). A value past its logical expiry, a
// lease and a foreign envelope are foundNone; a corrupt envelope and a
// payload the codec cannot decode are removed (compare-and-delete) and
// are foundGone. With load set
// and early refresh on, a value past its refresh deadline starts a
// background refresh.
func (g *Group[V]) fromRecord(ctx context.Context, key string, rec remote.Record, tok local.Token, load LoaderFunc[V]) (V, found) {
	var zero V // v, below, escapes to the codec: a miss does not allocate it
	c := g.c
	now := c.clock.Now()
	switch rec.Kind {
	case remote.KindValue, remote.KindAbsent:
		if rec.Expire*int64(time.Millisecond) <= now {
			g.record(Event{Kind: EventMiss, Tier: TierL2})
			return zero, foundNone
		}
	case remote.KindCorrupt:
		g.discard(ctx, key, rec, errors.New("not an envelope"))
		return zero, foundGone
	default:
		g.record(Event{Kind: EventMiss, Tier: TierL2})
		return zero, foundNone
	}
	switch ok, err := c.tagsValid(ctx, key, rec.Begin, rec.Tags); {
	case err != nil:
		c.redisFailed(&g.st, g.name, "tag stamps", key, err)
		g.record(Event{Kind: EventMiss, Tier: TierL2})
		return zero, foundNone
	case !ok:
		g.dropInvalidated(ctx, key, rec)
		return zero, foundGone
	}
	if rec.Kind == remote.KindAbsent {
		g.record(Event{Kind: EventHit, Tier: TierL2})
		c.fillL1(key, tok, local.Item[any]{Cost: 1, Expire: c.l1Expiry(rec.Expire, false), Absent: true, Version: rec.Token, Begin: rec.Begin, Tags: rec.Tags})
		return zero, foundAbsent
	}
	var v V
	if err := g.codec.Unmarshal(rec.Payload, &v); err != nil {
		g.discard(ctx, key, rec, err)
		return zero, foundGone
	}
	g.record(Event{Kind: EventHit, Tier: TierL2})
	refresh := g.refreshAt(rec)
	if refresh != 0 && refresh <= now && load != nil {
		g.startRefresh(ctx, key, rec.Token, load)
	}
	if c.l1 != nil {
		it := c.l1Item(v, len(rec.Payload), rec.Expire)
		it.Version, it.Refresh, it.Begin, it.Tags = rec.Token, refresh, rec.Begin, rec.Tags
		c.fillL1(key, tok, it)
	}
	return v, foundValue
}

// refreshAt draws the early-refresh deadline (L1 clock, ns) of a value:
// expiry + loadTime*beta*ln(U), U uniform in (0, 1]; 0 with early refresh
// off.
func (g *Group[V]) refreshAt(rec remote.Record) int64 {
	if g.beta <= 0 {
		return 0
	}
	u := 1 - g.c.random() // (0, 1]
	early := float64(rec.LoadTime) * g.beta * math.Log(u)
	return rec.Expire*int64(time.Millisecond) + int64(early)
}

// discard removes a value that does not decode, with a compare-and-delete so
// that a newer value written meanwhile stays.
func (g *Group[V]) discard(ctx context.Context, key string, rec remote.Record, why error) {
	g.record(Event{Kind: EventDecodeError})
	g.record(Event{Kind: EventMiss, Tier: TierL2})
	g.c.log.Warn("tiered: removing a value that does not decode", "group", g.name, "key", key, "err", why)
	if _, err := g.c.store.Discard(ctx, key, rec); err != nil {
		g.c.redisFailed(&g.st, g.name, "discard", key, err)
	}
}

// dropInvalidated removes a value (or "not found" answer) that a tag
// invalidated (a compare-and-delete, so that a newer value written
// meanwhile stays): tag invalidations leave Redis lazily, here or by TTL.
func (g *Group[V]) dropInvalidated(ctx context.Context, key string, rec remote.Record) {
	g.record(Event{Kind: EventMiss, Tier: TierL2})
	if _, err := g.c.store.Discard(ctx, key, rec); err != nil {
		g.c.redisFailed(&g.st, g.name, "discard", key, err)
	}
}

// size is the encoded size of v, for the cost of an L1-only entry; 0 for a
// string or a []byte, whose cost does not depend on it (see [cost]), which
// are not encoded for it.
func (g *Group[V]) size(v V) int {
	switch any(v).(type) {
	case string, []byte:
		return 0
	}
	b, err := g.codec.Marshal(v)
	if err != nil {
		return 1
	}
	return len(b)
}

// fillL1 installs it under key unless an invalidation of key happened since
// tok was taken.
func (c *Cache) fillL1(key string, tok local.Token, it local.Item[any]) {
	switch {
	case c.l1 == nil:
	case c.noCAS:
		c.l1.Set(key, it)
	default:
		c.l1.SetIf(key, tok, it)
	}
}

// Points of a load where tests stop it (Cache.hook).
const (
	hookRead     = "read"      // the token is taken; Redis is about to be read
	hookReadDone = "read-done" // Redis answered; nothing is in L1 yet
	hookFilled   = "filled"    // the compare-and-set into Redis succeeded; L1 is next
)

// at runs the test hook, if any, at point.
func (c *Cache) at(point string) {
	if c.hook != nil {
		c.hook(point)
	}
}

// errLeaseWait ends a wait for another node's lease that saw no value.
var errLeaseWait = errors.New("tiered: no value arrived while waiting for another node's lease")

// encodeErr wraps a codec failure of key.
func encodeErr(key string, err error) error { return fmt.Errorf("tiered: encode %q: %w", key, err) }
