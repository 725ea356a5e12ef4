package tiered

import (
	"context"
	"fmt"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/remote"
)

// Set writes v as the value of id, with the tags GroupOptions.Tags gives
// it (counted from the Redis time at the call; an error wrapping ErrBadTag
// writes nothing): to Redis (with a fresh jittered TTL,
// replacing whatever the key held, a lease included, so a load in flight
// will not overwrite it), then to this process's L1. A load of id that
// began before Set never installs its result. If Redis fails, Set returns
// the error, removes id from this process's L1, and invalidates id in the
// background like a failed [Cache.Invalidate] (the write may have reached
// Redis, or, with InvalidateReplicas, may not survive a failover).
// GroupOptions.Tags and TTLOf run on the caller's goroutine: a panic of
// theirs reaches the caller as it is (a load's reaches its callers as a
// *[PanicError]), before anything is written.
func (g *Group[V]) Set(ctx context.Context, id string, v V) error {
	if err := g.c.checkOpen(); err != nil {
		return err
	}
	if id == "" {
		return errEmptyID
	}
	key := g.prefix + id
	tags, err := g.tagsOf(id, v)
	if err != nil {
		return err
	}
	payload, err := g.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("tiered: encode %q: %w", key, err)
	}
	// The value's tags count from now, in Redis's clock.
	begin := g.c.localMicros()
	if g.c.store != nil {
		if begin, err = g.c.store.Time(ctx, key); err != nil {
			g.record(Event{Kind: EventRedisError, Err: err})
			return fmt.Errorf("tiered: set %q: %w", key, err)
		}
	}
	ttl := g.c.jitter(g.valueTTL(id, v))
	rec := remote.Record{Kind: remote.KindValue, Token: remote.NewToken(), Expire: msAfter(g.c.clock.Now(), ttl), Payload: payload, Begin: begin, Tags: tags}
	// The old value leaves this node before Redis changes, and the new one
	// enters L1 only if no other write or invalidation of the key came in
	// between (which would otherwise leave L1 and Redis disagreeing).
	keys := []string{key}
	g.c.hold(keys)
	tok := g.c.begin()
	if g.c.store != nil {
		if err := g.c.store.Set(ctx, key, rec, ttl+g.fs.window); err != nil {
			g.c.release(keys)
			g.c.queueRetry(invalidation{keys: keys}, g.ttl)
			g.record(Event{Kind: EventRedisError, Err: err})
			return fmt.Errorf("tiered: set %q: %w", key, err)
		}
	}
	if g.c.l1 != nil {
		it := g.c.l1Item(v, len(payload), rec.Expire)
		it.Version, it.Begin, it.Tags = rec.Token, begin, tags
		// The L1 entry is served once this node knows its tags' stamps (a
		// round trip only for stamps it does not know yet, and only when
		// it may keep them).
		ok := true
		if g.c.tags.keep.Load() {
			var err error
			if ok, err = g.c.tagsValid(ctx, key, begin, tags); err != nil {
				ok = false
			}
		}
		if ok {
			g.c.l1.ReleaseSet(key, tok, it)
		} else {
			g.c.l1.Release(key)
		}
	}
	if g.c.bus != nil {
		if err := g.c.bus.Publish(ctx, bus.KindKeys, key); err != nil {
			g.c.queueRetry(invalidation{keys: []string{key}}, g.ttl)
			return fmt.Errorf("tiered: set %q: the other nodes were not told: %w", key, err)
		}
	}
	return nil
}

// Invalidate removes ids after the source of truth changed: from Redis
// (leases included, so loads in flight will not fill), from this node's L1,
// and from every other node's L1 through the bus, as [Cache.Invalidate] does
// with errors and retries alike. With GroupOptions.MaxStale, Redis keeps
// each value as a stale envelope for that window instead. An empty id is an error and nothing is
// invalidated.
func (g *Group[V]) Invalidate(ctx context.Context, ids ...string) error {
	if err := g.c.checkOpen(); err != nil {
		return err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		if id == "" {
			return errEmptyID
		}
		keys[i] = g.prefix + id
	}
	if len(keys) == 0 {
		return nil
	}
	return g.c.invalidate(ctx, invalidation{keys: keys}, true)
}
