package tiered

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/glob"
)

// Invalidate removes keys (as [Group.Key] returns them, within the
// namespace) from every tier of every node, in this order: from Redis
// (UNLINK, which also removes a lease, so loads in flight will not fill),
// then from this node's L1 (loads of these keys in flight here will not
// fill it), then by one message on the bus to every other node's L1. On a
// single server (the client is a *redis.Client that carries the bus too),
// unless InvalidateReplicas is set, the UNLINKs (a MaxStale group's stale
// marks) and the message share one pipeline, UNLINKs first: one round
// trip, in the same order. Calls made while another's message is in
// flight share the next one (see bus.Bus.Publish).
//
// If Redis or the publish fails, Invalidate returns the error, and the
// cache retries the whole invalidation in the background until it succeeds
// or the longest group TTL has passed; it never reports success for an
// invalidation that did not reach Redis.
//
// A key of a group with a MaxStale window is not unlinked: its value stays
// in Redis as a stale envelope until the window, counted from this call's
// start, ends (see GroupOptions.MaxStale); a lease it holds is removed all
// the same.
func (c *Cache) Invalidate(ctx context.Context, keys ...string) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	for _, k := range keys {
		if k == "" {
			return errors.New("tiered: invalidate: empty key")
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return c.invalidate(ctx, invalidation{keys: keys}, true)
}

// InvalidatePattern removes, from every tier of every node, the keys that
// match any of patterns (Redis glob syntax: *, ?, [a-z], [^x], \ escapes,
// with exactly Redis's semantics; see [Escape] for putting a literal value
// in a pattern). A pattern matches whole keys as [Group.Key] returns them:
// nothing is appended, so "user_5" matches that key only, not "user_50".
// Patterns never reach outside the namespace: "*" removes this namespace's
// keys and nothing else in the Redis database.
//
// In Redis, each pattern is a SCAN from cursor 0 until it returns 0 (on
// every master of a cluster) whose MATCH is only the pattern's literal
// prefix, filtered exactly here, and UNLINKed in batches. Errors and
// retries are as for [Cache.Invalidate].
//
// A key of a group with a MaxStale window that a pattern matches is not
// unlinked but marked stale, as [Cache.Invalidate] does, its window
// counted from this call's start: one script call per such key, pipelined
// with the batch, instead of one UNLINK.
//
// A pattern longer than MaxPatternBytes or with more than
// MaxPatternWildcards wildcards is refused with an error, and nothing is
// applied (Redis and the bus are untouched). On each node, matching one
// pattern against its L1 is bounded: a pattern that needs more work (a
// long run of wildcards against very long keys) flushes that node's whole
// L1 instead (EventPatternFlush). Other nodes apply patterns apart from
// keys, so a slow pattern never delays a key invalidation.
func (c *Cache) InvalidatePattern(ctx context.Context, patterns ...string) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	if len(patterns) == 0 {
		return nil
	}
	for _, p := range patterns {
		if err := glob.Check(p); err != nil {
			return fmt.Errorf("tiered: invalidate pattern: %w", err)
		}
	}
	return c.invalidate(ctx, invalidation{patterns: patterns}, true)
}

// invalidation is one Invalidate or InvalidatePattern, kept for retries.
type invalidation struct {
	keys     []string
	patterns []string
	tags     []string  // tag ids (see tagIDs)
	deadline time.Time // retries stop after it
	// at is when the call began (Cache.staleNow), set only when a group
	// has a MaxStale window: the windows count from it, retries included.
	at int64
}

// invalidate applies inv in the order Redis, this node, the bus. On failure
// it queues inv for a background retry when retry is set.
func (c *Cache) invalidate(ctx context.Context, inv invalidation, retry bool) error {
	var errs []error
	if inv.at == 0 && c.anyStale.Load() {
		inv.at = c.staleNow()
	}
	if len(inv.tags) > 0 {
		if err := c.stampTags(ctx, inv.tags); err != nil {
			errs = append(errs, err)
		}
	}
	piped := c.pipelines(inv)
	if piped {
		if err := c.invalidateKeysPiped(ctx, inv); err != nil {
			errs = append(errs, err)
		}
	} else if c.store != nil {
		// This node stops serving the keys before Redis changes, so that no
		// read here returns the old value once the invalidation has begun
		// (a read that misses L1 finds Redis either still holding the
		// value, before the UNLINK, or not). The keys are held meanwhile:
		// a read that got the old value from Redis cannot put it in L1.
		// Patterns are cleared before and after (a load that began in
		// between is vetoed by the second pass).
		c.hold(inv.keys)
		c.clearPatterns(inv.patterns)
		if err := c.deleteRemote(ctx, inv); err != nil {
			errs = append(errs, err)
		}
		c.release(inv.keys)
		c.applyLocal(nil, inv.patterns)
	} else {
		c.applyLocal(inv.keys, inv.patterns)
	}
	if c.bus != nil && !piped {
		if err := c.publish(ctx, inv); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		c.stats.record(c.rec, Event{Kind: EventInvalidationSent})
		return nil
	}
	err := errors.Join(errs...)
	c.stats.record(c.rec, Event{Kind: EventRedisError, Err: err})
	if retry {
		c.queueRetry(inv, c.maxTTL())
	}
	return fmt.Errorf("tiered: invalidate: %w", err)
}

// pipelines reports whether inv is an invalidation of keys whose UNLINKs
// (or stale marks) can travel with its message (see invalidateKeysPiped):
// keys only, on a single server that also carries the bus, and no test
// hook on the publishing.
func (c *Cache) pipelines(inv invalidation) bool {
	return c.pipeInvalidations && !c.noPipe && len(inv.keys) > 0 && len(inv.patterns) == 0 && len(inv.tags) == 0 &&
		c.holdPublish == nil && !c.dropNext.Load()
}

// invalidateKeysPiped is the Redis and bus part of invalidating inv's keys
// in one round trip: the UNLINKs (for a group with a MaxStale window, the
// stale marks) and the message go in one pipeline, those first, so that a
// node that receives the message finds the keys gone or stale, as when the
// message followed their replies. The keys are held here meanwhile, as for
// the writes alone. It returns the writes' and the publish's errors,
// joined.
func (c *Cache) invalidateKeysPiped(ctx context.Context, inv invalidation) error {
	keys := inv.keys
	c.hold(keys)
	defer c.release(keys)
	var delErr error
	ran := false
	pubErr := c.bus.PublishAfter(ctx, func(ctx context.Context, p redis.Pipeliner) func() {
		ran = true
		var written func() error
		if c.anyStale.Load() {
			// One breaker entry for every key: a probe lets all of them
			// through or none, never the message without some of them.
			ends := c.staleEnds(inv)
			written = c.store.InvalidateIn(ctx, p, keys, ends, c.staleNow()/int64(time.Millisecond))
		} else {
			written = c.store.UnlinkIn(ctx, p, keys)
		}
		return func() { delErr = written() }
	}, bus.KindKeys, keys...)
	if !ran {
		// The bus ran nothing (it closed meanwhile, or ctx ended before the
		// turn to publish came): write alone; a failure queues the retry.
		delErr = c.deleteRemote(ctx, invalidation{keys: keys, at: inv.at})
	}
	return errors.Join(delErr, pubErr)
}

func (c *Cache) deleteRemote(ctx context.Context, inv invalidation) error {
	if keys := inv.keys; len(keys) > 0 {
		if c.anyStale.Load() {
			var err error
			if keys, err = c.markStale(ctx, inv); err != nil {
				return err
			}
		}
		if err := c.store.Unlink(ctx, keys...); err != nil {
			return err
		}
	}
	var markStale func(context.Context, []string) ([]string, error)
	if len(inv.patterns) > 0 && c.anyStale.Load() && !c.noPatternStale {
		markStale = func(ctx context.Context, keys []string) ([]string, error) {
			return c.markStale(ctx, invalidation{keys: keys, at: inv.at})
		}
	}
	for _, p := range inv.patterns {
		if _, err := c.store.DeletePatternWith(ctx, p, markStale); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cache) publish(ctx context.Context, inv invalidation) error {
	if len(inv.keys) > 0 {
		if err := c.bus.Publish(ctx, bus.KindKeys, inv.keys...); err != nil {
			return err
		}
	}
	if len(inv.patterns) > 0 {
		return c.bus.Publish(ctx, bus.KindPatterns, inv.patterns...)
	}
	return nil
}

// hold begins the local part of invalidating keys (see local.Cache.Hold):
// their entries go, their loads in flight are detached and will not fill,
// and no fill of them is installed until release.
func (c *Cache) hold(keys []string) {
	c.flights.forget(keys)
	if c.l1 != nil && len(keys) > 0 {
		c.stats.l1Removed.Add(uint64(c.l1.Hold(keys...)))
	}
}

// release ends hold.
func (c *Cache) release(keys []string) {
	c.flights.forget(keys)
	if c.l1 != nil && len(keys) > 0 {
		c.stats.l1Removed.Add(uint64(c.l1.Release(keys...)))
	}
}

// applyLocal removes keys and the keys matching patterns from this node's
// L1, makes the loads of them in flight here not fill it, and detaches
// those loads so that a read starting from now on starts a new load
// instead of joining one that may return the old value.
func (c *Cache) applyLocal(keys, patterns []string) {
	c.flights.forget(keys)
	if c.l1 != nil && len(keys) > 0 {
		c.stats.l1Removed.Add(uint64(c.l1.Delete(keys...)))
	}
	c.clearPatterns(patterns)
	if c.l1 != nil {
		for range patterns {
			c.stats.record(c.rec, Event{Kind: EventPatternApplied})
		}
	}
}

// clearPatterns is applyLocal for patterns, without counting them as
// applied.
func (c *Cache) clearPatterns(patterns []string) {
	for _, p := range patterns {
		c.clearPattern(p)
	}
}

// Escape returns s with every glob metacharacter escaped, so that a pattern
// containing Escape(s) matches s literally: an id of "*" invalidates the key
// with that id, never every key.
func Escape(s string) string { return glob.Escape(s) }
