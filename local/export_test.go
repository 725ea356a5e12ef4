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

// PairHash returns the Ristretto key LookupPrefix(p, suffix) reads.
func PairHash(p Prefix, suffix string) uint64 { return pairHash(p, suffix) }

// SetWithHash is Set with the key's Ristretto key forced to h: two keys set
// with one h collide. The key keeps that hash for the cache's life.
func SetWithHash[V any](c *Cache[V], key string, h uint64, it Item[V]) {
	m := map[string]uint64{key: h}
	if old := c.forced.Load(); old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	c.forced.Store(&m)
	c.set(key, h, it)
}

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
	e, _ := c.installIf(key, tok, it)
	return e
}

// Store hands an installed entry to Ristretto.
func Store[V any](c *Cache[V], e *Entry[V], cost int64) { c.store(e, c.keyHash(e.Key), cost) }

// Dead reports whether e is marked dead.
func Dead[V any](e *Entry[V]) bool { return e.isDead() }

// Stored returns the entries Ristretto holds, dead or not.
func Stored[V any](c *Cache[V]) []*Entry[V] {
	var out []*Entry[V]
	c.rc.IterValues(func(e *Entry[V]) bool {
		out = append(out, e)
		return false
	})
	return out
}

// InterleavePattern makes the next SetIf record the pattern of
// DeleteMatching(prefix, match) right after its invalidation checks
// passed, before it installs. finish runs the rest (scan for the matching
// keys, which waits for the install, and kill them) and returns how many
// it removed.
func InterleavePattern[V any](c *Cache[V], prefix string, match func(string) bool) (finish func() int) {
	c.afterCheck = func() {
		c.afterCheck = nil
		c.pats.record(&c.seq, match)
	}
	return func() int {
		n := 0
		for _, k := range c.scan(prefix, match) {
			if c.remove(k, false) {
				n++
			}
		}
		return n
	}
}

// OrderedKeys returns the keys of the index in the stripes' key order.
func OrderedKeys[V any](c *Cache[V]) []string {
	return c.scan("", func(string) bool { return true })
}

// OrderedBytes returns the heap the index's chunks take (their arrays of
// entry pointers, as the allocator rounds them, and the chunk lists), and
// how many entries they hold.
func OrderedBytes[V any](c *Cache[V]) (bytes int64, keys int) {
	for i := range c.stripes {
		s := &c.stripes[i]
		s.mu.Lock()
		bytes += memsize.Alloc(cap(s.idx.chunks) * 24)
		for _, ch := range s.idx.chunks {
			bytes += memsize.Alloc(cap(ch) * 8)
			keys += len(ch)
		}
		s.mu.Unlock()
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
