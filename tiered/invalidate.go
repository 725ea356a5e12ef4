package tiered

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/glob"
)

// Invalidate removes keys (as [Group.Key] returns them, within the
// namespace) from every tier of every node, in this order: from Redis
// (UNLINK, which also removes a lease, so loads in flight will not fill),
// then from this node's L1 (loads of these keys in flight here will not
// fill it), then by one message on the bus to every other node's L1.
//
// If Redis or the publish fails, Invalidate returns the error, and the
// cache retries the whole invalidation in the background until it succeeds
// or the longest group TTL has passed; it never reports success for an
// invalidation that did not reach Redis.
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
func (c *Cache) InvalidatePattern(ctx context.Context, patterns ...string) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	if len(patterns) == 0 {
		return nil
	}
	return c.invalidate(ctx, invalidation{patterns: patterns}, true)
}

// invalidation is one Invalidate or InvalidatePattern, kept for retries.
type invalidation struct {
	keys     []string
	patterns []string
	deadline time.Time // retries stop after it
}

// invalidate applies inv in the order Redis, this node, the bus. On failure
// it queues inv for a background retry when retry is set.
func (c *Cache) invalidate(ctx context.Context, inv invalidation, retry bool) error {
	var errs []error
	if c.store != nil {
		if err := c.deleteRemote(ctx, inv); err != nil {
			errs = append(errs, err)
		}
	}
	c.applyLocal(inv.keys, inv.patterns)
	if c.bus != nil {
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

func (c *Cache) deleteRemote(ctx context.Context, inv invalidation) error {
	if len(inv.keys) > 0 {
		if err := c.store.Unlink(ctx, inv.keys...); err != nil {
			return err
		}
	}
	for _, p := range inv.patterns {
		if _, err := c.store.DeletePattern(ctx, p); err != nil {
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

// applyLocal removes keys and the keys matching patterns from this node's
// L1, and makes the loads of them in flight here not fill it.
func (c *Cache) applyLocal(keys, patterns []string) {
	c.forgetFlights(keys, patterns)
	if c.l1 == nil {
		return
	}
	removed := 0
	if len(keys) > 0 {
		removed += c.l1.Delete(keys...)
	}
	for _, p := range patterns {
		prefix, _ := glob.LiteralPrefix(p)
		removed += c.l1.DeleteMatching(prefix, glob.Compile(p).Match)
		c.stats.record(c.rec, Event{Kind: EventPatternApplied})
	}
	if removed > 0 {
		c.stats.l1Removed.Add(uint64(removed))
	}
}

// forgetFlights detaches the loads in flight of keys and of the keys that
// match patterns, so that a read that begins after the invalidation does
// not join a load that began before it. (A flush on a bus loss or recovery
// does not: no invalidation was applied, and the loads in flight stay
// collapsed; their fills are vetoed by the flush.)
func (c *Cache) forgetFlights(keys, patterns []string) {
	var match func(string) bool
	if len(patterns) > 0 {
		ms := make([]*glob.Matcher, len(patterns))
		for i, p := range patterns {
			ms[i] = glob.Compile(p)
		}
		match = func(k string) bool {
			for _, m := range ms {
				if m.Match(k) {
					return true
				}
			}
			return false
		}
	}
	c.flights.forget(keys, match)
}

// Escape returns s with every glob metacharacter escaped, so that a pattern
// containing Escape(s) matches s literally: an id of "*" invalidates the key
// with that id, never every key.
func Escape(s string) string { return glob.Escape(s) }
