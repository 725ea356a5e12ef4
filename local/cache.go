package local

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Defaults of [Options].
const (
	DefaultMaxCost     = 64 << 20
	DefaultBufferItems = 64
	// expectedItemCost sizes the default NumCounters: about ten counters
	// per item of this many bytes.
	expectedItemCost = 256
	minCounters      = 10000
)

// Options configures a [Cache]. The zero value of every field is its
// documented default.
type Options struct {
	// MaxCost bounds the sum of the costs of the entries (the caller gives
	// each entry's cost: tiercache uses its encoded length in bytes).
	// Default: 64 MiB.
	MaxCost int64
	// NumCounters is Ristretto's number of admission counters. Default:
	// ten per expected item, expecting items of 256 bytes (at least
	// 10,000).
	NumCounters int64
	// BufferItems is Ristretto's Get buffer size. Default: 64.
	BufferItems int64
	// Clock is what entries' expiries are checked against. Default: a
	// [TickingClock] owned by the cache and stopped by Close.
	Clock Clock
	// OnReject, if set, is called with the key of every entry Ristretto's
	// admission policy refused, from Ristretto's goroutine, outside the
	// cache's locks.
	OnReject func(key string)
	// OnEvict, if set, is called with the key of every entry evicted to
	// make room, likewise.
	OnEvict func(key string)
}

// Entry is one value in the cache. It is immutable once installed, except
// for its dead mark; the caller must not modify it.
type Entry[V any] struct {
	Value   V
	Key     string
	Expire  int64 // Clock time (unix ns) from which the entry is invalid
	Born    int64 // Clock time at install
	Refresh int64 // the caller's early-refresh deadline; 0 = none (not interpreted here)
	Absent  bool  // the caller caches "known not to exist"

	epoch uint64
	hash  uint64
	dead  atomic.Bool
}

// Hash returns the entry's key hash: callers may use its bits to spread
// per-hit work (counters) without hashing again.
func (e *Entry[V]) Hash() uint64 { return e.hash }

// Item is what a caller installs; see [Entry] for the fields.
type Item[V any] struct {
	Value   V
	Cost    int64
	Expire  int64
	Refresh int64
	Absent  bool
}

// Token records the invalidation state at the moment a load began; take it
// before the load reads anything.
type Token struct {
	seq   uint64
	epoch uint64
}

const stripeCount = 256 // a power of two

// stripe is one part of the key index.
type stripe[V any] struct {
	mu      sync.Mutex // protects idx and lastInv
	idx     map[string]*Entry[V]
	lastInv uint64 // the sequence number of the last invalidation of a key of this stripe
	keys    *orderedShard
}

// orderedShards is how many ordered indexes the stripes share: few enough
// that a prefix scan seeks few times, many enough that fills rarely
// contend.
const orderedShards = 16

// orderedShard holds the keys of stripeCount/orderedShards stripes in
// order, for prefix scans. Lock order: a stripe's mu, then its shard's mu.
type orderedShard struct {
	mu   sync.Mutex // protects keys
	keys ordered
	_    [40]byte
}

// put and del keep idx and the ordered index in step; the caller holds
// s.mu.
func (s *stripe[V]) put(e *Entry[V]) {
	if _, ok := s.idx[e.Key]; !ok {
		s.keys.mu.Lock()
		s.keys.keys.insert(e.Key)
		s.keys.mu.Unlock()
	}
	s.idx[e.Key] = e
}

func (s *stripe[V]) del(key string) {
	if _, ok := s.idx[key]; ok {
		delete(s.idx, key)
		s.keys.mu.Lock()
		s.keys.keys.remove(key)
		s.keys.mu.Unlock()
	}
}

// Cache is an L1 of decoded values. It is safe for concurrent use.
type Cache[V any] struct {
	rc      *ristretto.Cache[uint64, *Entry[V]]
	clock   Clock
	ownClk  *TickingClock // stopped by Close, when the cache made its clock
	stripes [stripeCount]stripe[V]
	ordered [orderedShards]orderedShard
	seq     atomic.Uint64 // invalidation sequence
	epoch   atomic.Uint64
	maxAge  atomic.Int64 // < 0: not degraded; else entries older than this (ns) are not served
	seed    maphash.Seed
	pats    patternRing
	closed  atomic.Bool
	opts    Options
}

// New returns an empty Cache. It validates opts (errors are prefixed
// "local: ") and never panics.
func New[V any](opts Options) (*Cache[V], error) {
	if opts.MaxCost < 0 || opts.NumCounters < 0 || opts.BufferItems < 0 {
		return nil, errors.New("local: negative MaxCost, NumCounters or BufferItems")
	}
	if opts.MaxCost == 0 {
		opts.MaxCost = DefaultMaxCost
	}
	if opts.NumCounters == 0 {
		opts.NumCounters = max(10*opts.MaxCost/expectedItemCost, minCounters)
	}
	if opts.BufferItems == 0 {
		opts.BufferItems = DefaultBufferItems
	}
	c := &Cache[V]{clock: opts.Clock, opts: opts, seed: maphash.MakeSeed()}
	c.maxAge.Store(-1)
	for i := range c.stripes {
		c.stripes[i].idx = make(map[string]*Entry[V])
		c.stripes[i].keys = &c.ordered[i%orderedShards]
	}
	for i := range c.ordered {
		c.ordered[i].keys.init()
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *Entry[V]]{
		NumCounters:        opts.NumCounters,
		MaxCost:            opts.MaxCost,
		BufferItems:        opts.BufferItems,
		IgnoreInternalCost: true,
		OnEvict:            func(it *ristretto.Item[*Entry[V]]) { c.dropped(it, c.opts.OnEvict) },
		OnReject:           func(it *ristretto.Item[*Entry[V]]) { c.dropped(it, c.opts.OnReject) },
	})
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	c.rc = rc
	if c.clock == nil {
		c.ownClk = NewTickingClock(0)
		c.clock = c.ownClk
	}
	return c, nil
}

// hash is the Ristretto key of a+b (both parts streamed, nothing
// concatenated): maphash's result depends only on the bytes written, so
// hash(a, b) == hash(a+b, "").
func (c *Cache[V]) hash(a, b string) uint64 {
	if b == "" {
		return maphash.String(c.seed, a)
	}
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(a)
	h.WriteString(b)
	return h.Sum64()
}

func (c *Cache[V]) stripe(h uint64) *stripe[V] { return &c.stripes[h&(stripeCount-1)] }

// Lookup returns the valid entry stored under the key prefix+suffix. Valid
// means: stored under exactly that key, installed in the current epoch, not
// dead, Clock.Now() before its Expire, and, while degraded, younger than
// the degraded maximum age. It allocates nothing, takes no lock of the
// cache's, and reads no wall clock.
func (c *Cache[V]) Lookup(prefix, suffix string) (*Entry[V], bool) {
	e, ok := c.rc.Get(c.hash(prefix, suffix))
	if !ok || len(e.Key) != len(prefix)+len(suffix) || e.Key[:len(prefix)] != prefix || e.Key[len(prefix):] != suffix {
		return nil, false
	}
	if !c.valid(e) {
		return nil, false
	}
	return e, true
}

// Get is [Cache.Lookup] with the key in one part.
func (c *Cache[V]) Get(key string) (*Entry[V], bool) { return c.Lookup(key, "") }

func (c *Cache[V]) valid(e *Entry[V]) bool {
	if e.epoch != c.epoch.Load() || e.dead.Load() {
		return false
	}
	now := c.clock.Now()
	if now >= e.Expire {
		return false
	}
	if age := c.maxAge.Load(); age >= 0 && now-e.Born >= age {
		return false
	}
	return true
}

// Begin returns the token a load takes before it reads anything.
func (c *Cache[V]) Begin() Token {
	// The epoch first: a Flush between the two loads then fails the fill.
	ep := c.epoch.Load()
	return Token{seq: c.seq.Load(), epoch: ep}
}

// SetIf installs it under key unless an invalidation of key happened since
// tok was taken: a Delete or Set of key (or of a key of the same index
// stripe: a rare false positive that only skips an L1 fill), a Flush, or a
// pattern invalidation that matches key. It reports whether it installed.
// Ristretto may still drop the entry (admission); that is not reported:
// L1 is advisory.
func (c *Cache[V]) SetIf(key string, tok Token, it Item[V]) bool {
	if c.closed.Load() {
		return false
	}
	h := c.hash(key, "")
	s := c.stripe(h)
	e := c.newEntry(key, h, it, tok.epoch)
	s.mu.Lock()
	if s.lastInv > tok.seq || tok.epoch != c.epoch.Load() || c.pats.vetoes(key, tok.seq) {
		s.mu.Unlock()
		return false
	}
	c.installLocked(s, e)
	s.mu.Unlock()
	c.store(s, h, e, it.Cost)
	return true
}

// Set installs it under key unconditionally. It counts as an invalidation
// of key: a load of key that began earlier will not overwrite it.
func (c *Cache[V]) Set(key string, it Item[V]) {
	if c.closed.Load() {
		return
	}
	h := c.hash(key, "")
	s := c.stripe(h)
	e := c.newEntry(key, h, it, c.epoch.Load())
	s.mu.Lock()
	s.lastInv = c.seq.Add(1)
	c.installLocked(s, e)
	s.mu.Unlock()
	c.store(s, h, e, it.Cost)
}

func (c *Cache[V]) newEntry(key string, h uint64, it Item[V], epoch uint64) *Entry[V] {
	return &Entry[V]{
		Value: it.Value, Key: key, Expire: it.Expire, Born: c.clock.Now(),
		Refresh: it.Refresh, Absent: it.Absent, epoch: epoch, hash: h,
	}
}

// installLocked points the index at e. The entry it replaces is marked dead,
// so that every live entry Ristretto holds is the one the index points at:
// Ristretto's "two queued Sets of one new key, the first wins and the
// second is rejected" then leaves a dead winner (a miss), never a live entry
// the index does not know (which a pattern could not reach).
func (c *Cache[V]) installLocked(s *stripe[V], e *Entry[V]) {
	if old := s.idx[e.Key]; old != nil {
		old.dead.Store(true)
	}
	s.put(e)
}

// store hands e to Ristretto, outside the stripe lock (Ristretto's goroutine
// takes stripe locks in its callbacks). A Set that Ristretto drops at once
// is taken out of the index again.
func (c *Cache[V]) store(s *stripe[V], h uint64, e *Entry[V], cost int64) {
	if c.rc.Set(h, e, max(cost, 1)) {
		return
	}
	s.mu.Lock()
	if s.idx[e.Key] == e {
		s.del(e.Key)
	}
	s.mu.Unlock()
}

// dropped is Ristretto's eviction and rejection callback: the key leaves the
// index only if the index still points at exactly the dropped entry.
func (c *Cache[V]) dropped(it *ristretto.Item[*Entry[V]], hook func(string)) {
	e := it.Value
	if e == nil {
		return
	}
	s := c.stripe(it.Key)
	s.mu.Lock()
	if s.idx[e.Key] == e {
		s.del(e.Key)
	}
	s.mu.Unlock()
	if hook != nil {
		hook(e.Key)
	}
}

// Delete invalidates keys: loads of them that began earlier will not fill
// (their SetIf fails), and their entries are marked dead (so a Ristretto Set
// that lands late cannot resurrect them), removed from the index and
// deleted from Ristretto. It returns how many entries it removed.
func (c *Cache[V]) Delete(keys ...string) (removed int) {
	for _, key := range keys {
		h := c.hash(key, "")
		s := c.stripe(h)
		s.mu.Lock()
		s.lastInv = c.seq.Add(1)
		e := s.idx[key]
		if e != nil {
			e.dead.Store(true)
			s.del(key)
		}
		s.mu.Unlock()
		if e != nil {
			removed++
			if !c.closed.Load() {
				c.rc.Del(h)
			}
		}
	}
	return removed
}

// DeleteMatching invalidates every key for which match returns true, like
// Delete: it records match (in a bounded ring of recent patterns) so that
// loads that began earlier and fill later are vetoed, then removes the
// matching index entries. Only keys that start with prefix are considered
// (match must be false for any other key): with a non-empty prefix the cost
// grows with the keys that share it, not with the size of the cache. match
// must be safe for concurrent use and must not call back into the cache.
func (c *Cache[V]) DeleteMatching(prefix string, match func(key string) bool) (removed int) {
	c.pats.record(func() uint64 { return c.seq.Add(1) }, match)
	if prefix == "" {
		for i := range c.stripes {
			removed += c.deleteInStripe(&c.stripes[i], func(yield func(string) bool) {
				for k := range c.stripes[i].idx {
					if !yield(k) {
						return
					}
				}
			}, match)
		}
		return removed
	}
	var keys []string
	for i := range c.ordered {
		o := &c.ordered[i]
		o.mu.Lock()
		o.keys.ascendPrefix(prefix, func(k string) bool {
			if match(k) {
				keys = append(keys, k)
			}
			return true
		})
		o.mu.Unlock()
	}
	for _, k := range keys {
		removed += c.Delete(k)
	}
	return removed
}

// deleteInStripe marks dead and removes the keys of s that keys yields and
// match accepts.
func (c *Cache[V]) deleteInStripe(s *stripe[V], keys func(yield func(string) bool), match func(string) bool) int {
	var hits []string
	s.mu.Lock()
	for k := range keys {
		if match(k) {
			hits = append(hits, k)
		}
	}
	for _, k := range hits {
		s.idx[k].dead.Store(true)
		s.del(k)
	}
	s.mu.Unlock()
	if !c.closed.Load() {
		for _, k := range hits {
			c.rc.Del(c.hash(k, ""))
		}
	}
	return len(hits)
}

// Flush invalidates every entry at once by bumping the epoch: current
// entries are invalid on read, and loads that began earlier will not fill.
// The index keeps the old entries until they are replaced, deleted or
// evicted (Len counts them). Safe under live traffic.
func (c *Cache[V]) Flush() {
	c.epoch.Add(1)
	c.seq.Add(1)
}

// SetDegraded makes Lookup serve only entries younger than maxAge (none
// when maxAge is 0) until ClearDegraded.
func (c *Cache[V]) SetDegraded(maxAge time.Duration) { c.maxAge.Store(int64(max(maxAge, 0))) }

// ClearDegraded ends SetDegraded.
func (c *Cache[V]) ClearDegraded() { c.maxAge.Store(-1) }

// Degraded reports whether the cache is degraded.
func (c *Cache[V]) Degraded() bool { return c.maxAge.Load() >= 0 }

// Len returns the number of entries in the key index.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.stripes {
		s := &c.stripes[i]
		s.mu.Lock()
		n += len(s.idx)
		s.mu.Unlock()
	}
	return n
}

// Keys calls fn for every key in the index until fn returns false. fn runs
// under an index lock: it must not call the cache.
func (c *Cache[V]) Keys(fn func(key string) bool) {
	for i := range c.stripes {
		s := &c.stripes[i]
		s.mu.Lock()
		for k := range s.idx {
			if !fn(k) {
				s.mu.Unlock()
				return
			}
		}
		s.mu.Unlock()
	}
}

// Wait blocks until the Sets made so far are applied (visible to Lookup
// unless dropped). Tests use it instead of sleeping.
func (c *Cache[V]) Wait() {
	if !c.closed.Load() {
		c.rc.Wait()
	}
}

// Close releases the cache and stops its goroutines. Later Lookups miss and
// later Sets do nothing. It is idempotent.
func (c *Cache[V]) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.rc.Close()
	if c.ownClk != nil {
		c.ownClk.Stop()
	}
}
