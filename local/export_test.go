package local

import (
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/internal/memsize"
)

// Test hooks: they reach the states that depend on timing inside Ristretto
// or on hash values.

// PatternRingSize is how many recent patterns can veto a fill.
const PatternRingSize = patternRingSize

// KeyHash returns the Ristretto key of key.
func KeyHash[V any](c *Cache[V], key string) uint64 { return c.keyHash(key) }

// SetWithHash is Set with the key's Ristretto key forced to h: two keys set
// with one h collide.
func SetWithHash[V any](c *Cache[V], key string, h uint64, it Item[V]) { c.set(key, h, it) }

// InvBucket returns the invalidation bucket of key: keys of one bucket veto
// each other's fills.
func InvBucket[V any](c *Cache[V], key string) uint64 {
	h := c.keyHash(key)
	return h&(stripeCount-1)*invBuckets + bucket(h)
}

// InstallIf is SetIf without handing the entry to Ristretto; Store does
// that. Between the two, a test can invalidate the key, as a concurrent
// Delete between SetIf's install and its Ristretto Set would.
func InstallIf[V any](c *Cache[V], key string, tok Token, it Item[V]) *Entry[V] {
	return c.installIf(key, tok, it)
}

// Store hands an installed entry to Ristretto.
func Store[V any](c *Cache[V], e *Entry[V], cost int64) { c.store(e, cost) }

// Dead reports whether e is marked dead.
func Dead[V any](e *Entry[V]) bool { return e.dead.Load() }

// Stored returns the entries Ristretto holds, dead or not.
func Stored[V any](c *Cache[V]) []*Entry[V] {
	var out []*Entry[V]
	c.rc.IterValues(func(e *Entry[V]) bool {
		out = append(out, e)
		return false
	})
	return out
}

// InterleavePattern makes the next SetIf run the first half of
// DeleteMatching(prefix, match) (record the pattern, collect the matching
// keys) right after its invalidation checks passed, before it installs.
// finish runs the second half (kill the collected keys) and returns how
// many it removed.
func InterleavePattern[V any](c *Cache[V], prefix string, match func(string) bool) (finish func() int) {
	var keys []string
	c.afterCheck = func() {
		c.afterCheck = nil
		keys = c.collect(prefix, match)
	}
	return func() int {
		n := 0
		for _, k := range keys {
			if c.remove(k, false) {
				n++
			}
		}
		return n
	}
}

// OrderedKeys returns the keys of the ordered sets (for prefix scans).
func OrderedKeys[V any](c *Cache[V]) []string {
	var keys []string
	for i := range c.ordered {
		keys = c.ordered[i].collect("", func(string) bool { return true }, keys)
	}
	return keys
}

// OrderedBytes returns the heap the ordered key sets' chunks take (their
// arrays of string headers, as the allocator rounds them, and the chunk
// lists), and how many keys they hold.
func OrderedBytes[V any](c *Cache[V]) (bytes int64, keys int) {
	for i := range c.ordered {
		o := &c.ordered[i]
		o.mu.Lock()
		bytes += memsize.Alloc(cap(o.keys.chunks) * 24)
		for _, ch := range o.keys.chunks {
			bytes += memsize.Alloc(cap(ch) * 16)
			keys += len(ch)
		}
		o.mu.Unlock()
	}
	return bytes, keys
}

// ManualClock is a [Clock] that moves only when told. Its zero
// value reads 0 (the unix epoch). It is safe for concurrent use.
type ManualClock struct{ now atomic.Int64 }

// NewManualClock returns a clock that reads t.
func NewManualClock(t time.Time) *ManualClock {
	c := &ManualClock{}
	c.now.Store(t.UnixNano())
	return c
}

// Now returns the clock's time in unix nanoseconds.
func (c *ManualClock) Now() int64 { return c.now.Load() }

// Add moves the clock by d (backwards if d is negative).
func (c *ManualClock) Add(d time.Duration) { c.now.Add(int64(d)) }

// Set sets the clock to t.
func (c *ManualClock) Set(t time.Time) { c.now.Store(t.UnixNano()) }

func (c *ManualClock) nowAddr() *atomic.Int64 { return &c.now }
