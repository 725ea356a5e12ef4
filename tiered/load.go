package tiered

import (
	"context"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// load is the miss path of Fetch after Redis was read (leadL2Read), run
// once per key by the flight:
//
//  1. the invalidation state was recorded before Redis was read (tok);
//  2. Redis did not have a value;
//  3. take the lease in one atomic step; if the key was filled
//     meanwhile, use that value; if another node holds the lease, load
//     without filling anything;
//  4. as the lease holder, load, then compare-and-set the value into Redis
//     only if the key still holds our lease, and into L1 only if no
//     invalidation of the key happened since step 1. A failed
//     compare-and-set means an invalidation won: the value is returned to
//     the callers and cached nowhere. A loader error releases the lease.
//
// Without Redis, or when Redis fails, the value comes from the loader.
func (g *Group[V]) load(ctx context.Context, key, id string, tok local.Token, load LoaderFunc[V]) (any, error) {
	c := g.c
	if c.store == nil {
		v, _, err := g.callLoader(ctx, id, load)
		if err != nil {
			return nil, err
		}
		exp := time.Now().Add(c.jitter(g.ttl)).UnixMilli()
		c.fillL1(key, tok, c.l1Item(v, g.size(v), exp))
		return v, nil
	}
	lease, won, found, err := c.store.Acquire(ctx, key, c.leaseTTL())
	if err != nil {
		c.redisFailed(&g.st, g.name, "acquire", key, err)
		return g.loadDegraded(ctx, key, id, tok, load)
	}
	if !won {
		if v, ok := g.fromRecord(ctx, key, found, tok); ok {
			return v, nil
		}
		g.record(Event{Kind: EventLeaseBusy})
		v, _, err := g.callLoader(ctx, id, load)
		return v, err
	}
	g.record(Event{Kind: EventLeaseWon})
	return g.loadAndFill(ctx, lease, id, tok, load)
}

// leadL2Read is the first part of a load, run by the caller that leads it,
// on its own goroutine: it takes the token and reads Redis. On a hit it
// ends the load with the value (no goroutine is started: an L2 hit costs
// one GET); otherwise it starts the rest of the load (lease, loader, fill)
// on a new goroutine and reports false. The read is bounded by
// RedisTimeout and does not observe ctx's cancellation, which the caller's
// wait then reports.
func (g *Group[V]) leadL2Read(ctx context.Context, key string, fl *flight, load LoaderFunc[V]) (v V, hit bool) {
	c := g.c
	tok := c.begin()
	var l2err error
	if c.store != nil {
		defer func() {
			if r := recover(); r != nil { // a codec panic: hand it to every waiter
				c.flights.start(key, fl, func() (any, error) { panic(r) })
			}
		}()
		rec, err := c.store.Get(context.WithoutCancel(ctx), key)
		if err == nil {
			if v, ok := g.fromRecord(ctx, key, rec, tok); ok {
				c.flights.finish(key, fl, v, nil)
				return v, true
			}
		}
		l2err = err
	}
	id := key[len(g.prefix):]
	c.flights.start(key, fl, func() (any, error) {
		lctx, cancel := c.loadContext(ctx)
		defer cancel()
		if l2err != nil {
			c.redisFailed(&g.st, g.name, "get", key, l2err)
			return g.loadDegraded(lctx, key, id, tok, load)
		}
		return g.load(lctx, key, id, tok, load)
	})
	return v, false
}

// loadAndFill runs the loader as the holder of lease and fills both tiers.
func (g *Group[V]) loadAndFill(ctx context.Context, lease remote.Lease, id string, tok local.Token, load LoaderFunc[V]) (any, error) {
	c := g.c
	defer func() {
		if r := recover(); r != nil {
			g.release(ctx, lease)
			panic(r)
		}
	}()
	v, took, err := g.callLoader(ctx, id, load)
	if err != nil {
		g.release(ctx, lease)
		return nil, err
	}
	payload, err := g.codec.Marshal(v)
	if err != nil {
		g.release(ctx, lease)
		return nil, fmt.Errorf("tiered: encode %q: %w", lease.Key, err)
	}
	ttl := c.jitter(g.ttl)
	rec := remote.Record{
		Kind: remote.KindValue, Token: remote.NewToken(), LoadTime: took,
		Expire: time.Now().Add(ttl).UnixMilli(), Payload: payload,
	}
	if c.noCAS {
		return v, g.fillWithoutCAS(ctx, lease.Key, rec, ttl, v)
	}
	filled, err := c.store.Fill(ctx, lease, rec, ttl)
	if err != nil {
		c.redisFailed(&g.st, g.name, "fill", lease.Key, err)
		return v, nil
	}
	if !filled {
		g.record(Event{Kind: EventLeaseLost})
		return v, nil
	}
	c.fillL1(lease.Key, tok, c.l1Item(v, len(payload), rec.Expire))
	return v, nil
}

// fillWithoutCAS is the fill the compare-and-set replaces, kept only so that
// tests can show what goes wrong without it (Cache.noCAS).
func (g *Group[V]) fillWithoutCAS(ctx context.Context, key string, rec remote.Record, ttl time.Duration, v V) error {
	if err := g.c.store.Set(ctx, key, rec, ttl); err != nil {
		return err
	}
	if g.c.l1 != nil {
		g.c.l1.Set(key, g.c.l1Item(v, len(rec.Payload), rec.Expire))
	}
	return nil
}

// loadDegraded serves a read while Redis fails: the loader's value, kept in
// L1 only for DegradedL1TTL (no invalidation could reach a longer-lived
// copy's Redis twin).
func (g *Group[V]) loadDegraded(ctx context.Context, key, id string, tok local.Token, load LoaderFunc[V]) (any, error) {
	v, _, err := g.callLoader(ctx, id, load)
	if err != nil {
		return nil, err
	}
	if !g.c.opts.DisableDegradedL1 {
		g.c.fillL1(key, tok, local.Item[any]{Value: v, Cost: cost(g.size(v)), Expire: g.c.l1Expiry(0, true)})
	}
	return v, nil
}

// fromRecord turns what Redis held into a value, keeping it in L1 (unless an
// invalidation happened since tok). It reports false for anything that is
// not a value: a miss, a lease, a foreign envelope, a corrupt one (which it
// removes), or a payload the codec cannot decode (which it removes).
func (g *Group[V]) fromRecord(ctx context.Context, key string, rec remote.Record, tok local.Token) (V, bool) {
	var v V
	switch rec.Kind {
	case remote.KindValue:
	case remote.KindCorrupt:
		g.discard(ctx, key, rec, fmt.Errorf("not an envelope"))
		return v, false
	default:
		g.record(Event{Kind: EventMiss, Tier: TierL2})
		return v, false
	}
	if err := g.codec.Unmarshal(rec.Payload, &v); err != nil {
		g.discard(ctx, key, rec, err)
		return v, false
	}
	g.record(Event{Kind: EventHit, Tier: TierL2})
	g.c.fillL1(key, tok, g.c.l1Item(v, len(rec.Payload), rec.Expire))
	return v, true
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

// release gives up a lease after a failed load, so the next reader loads at
// once instead of waiting for the lease to expire.
func (g *Group[V]) release(ctx context.Context, lease remote.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.c.opts.RedisTimeout)
	defer cancel()
	if _, err := g.c.store.Release(ctx, lease); err != nil {
		g.c.redisFailed(&g.st, g.name, "release", lease.Key, err)
	}
}

// callLoader runs load and records the call.
func (g *Group[V]) callLoader(ctx context.Context, id string, load LoaderFunc[V]) (V, time.Duration, error) {
	start := time.Now()
	var v V
	var err error
	defer func() {
		took := time.Since(start)
		if r := recover(); r != nil {
			g.record(Event{Kind: EventLoad, Duration: took, Err: fmt.Errorf("tiered: loader panicked: %v", r)})
			panic(r)
		}
		g.record(Event{Kind: EventLoad, Duration: took, Err: err})
	}()
	v, err = load(ctx, id)
	return v, time.Since(start), err
}

// size is the encoded size of v, the cost of an L1-only entry.
func (g *Group[V]) size(v V) int {
	b, err := g.codec.Marshal(v)
	if err != nil {
		return 1
	}
	return len(b)
}

// fillL1 installs it under key unless an invalidation of key happened since
// tok was taken.
func (c *Cache) fillL1(key string, tok local.Token, it local.Item[any]) {
	if c.l1 != nil {
		c.l1.SetIf(key, tok, it)
	}
}
