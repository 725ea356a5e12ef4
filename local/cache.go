package local

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Cache is an L1 of decoded values: Ristretto v2 with an exact key index,
// an epoch, per-read validity checks and invalidation generations. All its
// methods are safe for concurrent use, except that Close must not overlap
// LookupPrefix or Get (see [Cache.Close]).
type Cache[V any] struct {
	rc       *ristretto.Cache[uint64, *Entry[V]]
	clock    Clock
	now      *atomic.Int64 // the clock's time itself when it is one of ours (one load, no call); else nil
	ownClk   *TickingClock // the clock New started, stopped by Close; nil if given
	splitFn  func(key string) int
	stripes  [stripeCount]stripe[V]
	pats     patternRing
	recheck  func(key string, begin int64, tags []string) bool
	tagGen   atomic.Uint64 // bumped by TagsChanged; entries are rechecked once per value
	seq      atomic.Uint64 // invalidation sequence: bumped by Delete, Set and patterns
	epoch    atomic.Uint64 // bumped by Flush
	maxAge   atomic.Int64  // < 0: not degraded; else the age (ns) from which entries are not served
	onEvict  func(key string)
	onReject func(key string)
	stored   atomic.Uint64 // entries Ristretto took into its Set buffer
	maxCost  int64         // Options.MaxCost
	fixed    int64         // with ChargeMemory: the part of MaxCost taken by the fixed structures; else 0
	charge   bool          // Options.ChargeMemory

	closeMu   sync.RWMutex // held shared around every Ristretto Set, Del and Wait; exclusively to set closed
	closed    atomic.Bool
	closeOnce sync.Once

	afterCheck func()                            // test hook: runs in installIf after the checks passed; nil outside tests
	forced     atomic.Pointer[map[string]uint64] // test hook: key hashes forced by tests; nil outside tests
}

// New returns an empty Cache configured by opts. It validates opts (errors
// are prefixed "local: ") and never panics. The caller must Close the
// cache to stop its goroutines.
func New[V any](opts Options) (*Cache[V], error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	c := &Cache[V]{
		clock: opts.Clock, splitFn: opts.Split, onEvict: opts.OnEvict, onReject: opts.OnReject,
		maxCost: opts.MaxCost, charge: opts.ChargeMemory, recheck: opts.Recheck,
	}
	if c.charge {
		c.fixed = min(FixedBytes(opts), opts.MaxCost/2)
	}
	c.maxAge.Store(-1)
	c.tagGen.Store(1) // new entries (checked 0) are rechecked on their first lookup
	c.rc, err = ristretto.NewCache(&ristretto.Config[uint64, *Entry[V]]{
		NumCounters:        opts.NumCounters,
		MaxCost:            opts.MaxCost - c.fixed,
		BufferItems:        opts.BufferItems,
		IgnoreInternalCost: true,
		KeyToHash:          func(h uint64) (uint64, uint64) { return h, 0 },
		// OnExit runs for every value that leaves Ristretto or never gets
		// in: replaced by a Set of its hash, deleted, evicted, rejected, or
		// dropped by Close. That is where the index lets go of it.
		OnExit:   c.forget,
		OnEvict:  func(it *ristretto.Item[*Entry[V]]) { c.notify(c.onEvict, it.Value) },
		OnReject: func(it *ristretto.Item[*Entry[V]]) { c.notify(c.onReject, it.Value) },
	})
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	if c.clock == nil {
		c.ownClk = NewTickingClock(0)
		c.clock = c.ownClk
	}
	if a, ok := c.clock.(addressedClock); ok {
		c.now = a.nowAddr()
	}
	return c, nil
}

func (c *Cache[V]) stripe(h uint64) *stripe[V] { return &c.stripes[h&(stripeCount-1)] }

// forget takes e out of the index if the index still points at it.
func (c *Cache[V]) forget(e *Entry[V]) {
	if e != nil && !e.isDead() { // Ristretto passes nil for a hash it no longer held
		c.stripe(c.keyHash(e.Key)).forget(e)
	}
}

// notify calls a user hook for e, except for the entries Close drops.
func (c *Cache[V]) notify(hook func(string), e *Entry[V]) {
	if hook != nil && e != nil && !c.closed.Load() {
		hook(e.Key)
	}
}

// Prefix returns s with its hash, ready for [Cache.LookupPrefix]. Make it
// once per prefix (a group, a namespace), not once per lookup.
func (c *Cache[V]) Prefix(s string) Prefix { return Prefix{s: s, h: prefixHash(s)} }

// LookupPrefix returns the valid entry stored under the key p+suffix; the
// key comes in two parts so that the caller concatenates nothing, and p
// carries its hash so that a hit hashes only suffix. It finds the key only
// if Options.Split puts the key's boundary at the end of p (otherwise it
// misses). Valid means: stored under exactly that key (a hash collision is
// a miss, never another key's value), installed in the current epoch, not
// dead, accepted by Options.Recheck when tags changed since it was last
// checked, Clock.Now() before its Expire, and, while degraded, younger
// than the degraded maximum age.
//
// LookupPrefix allocates nothing itself, reads no wall clock and takes no
// lock of the cache's: one maphash of suffix, one Ristretto Get and a few
// atomic loads. (Ristretto records the access in a buffer that it replaces,
// 512 bytes, when 64 accesses have filled it: a few bytes a hit, amortized.) The entry is shared: the caller must not modify it. After Close
// it misses.
func (c *Cache[V]) LookupPrefix(p Prefix, suffix string) (*Entry[V], bool) {
	e, ok := c.rc.Get(pairHash(p, suffix))
	if !ok || len(e.Key) != len(p.s)+len(suffix) ||
		e.Key[:len(p.s)] != p.s || e.Key[len(p.s):] != suffix || !c.valid(e) {
		return nil, false
	}
	return e, true
}

// Get returns the valid entry stored under key, like [Cache.LookupPrefix]
// (it splits key with Options.Split and hashes both parts).
func (c *Cache[V]) Get(key string) (*Entry[V], bool) {
	e, ok := c.rc.Get(c.keyHash(key))
	if !ok || e.Key != key || !c.valid(e) {
		return nil, false
	}
	return e, true
}

// GetExpired returns the entry stored under key if it is valid (see
// [Cache.Get]) or expired less than grace (ns) ago (an entry installed with
// a Fallback time: until then): an entry that was deleted, flushed or
// replaced (an invalidation) is never returned, nor one whose tags
// Options.Recheck refuses, nor one past the degraded
// maximum age. It is for fallbacks, off the hit path.
func (c *Cache[V]) GetExpired(key string, grace int64) (*Entry[V], bool) {
	e, ok := c.rc.Get(c.keyHash(key))
	if !ok || e.Key != key || e.epoch != c.epoch.Load() || e.isDead() {
		return nil, false
	}
	if c.recheck != nil && e.checked.Load() != c.tagGen.Load() && !c.recheck(e.Key, e.Begin, e.Tags) {
		return nil, false // a tag of the entry was invalidated: never a fallback
	}
	now := c.Now()
	grace = max(grace, 0) // a negative grace would wrap around
	if f := e.Fallback; (f != 0 && now >= f) || (f == 0 && now-grace >= e.Expire) {
		return nil, false
	}
	age := c.maxAge.Load()
	if age >= 0 && uint64(now-e.Born) >= uint64(age) {
		return nil, false
	}
	return e, true
}

func (c *Cache[V]) valid(e *Entry[V]) bool {
	if e.epoch != c.epoch.Load() || e.isDead() {
		return false
	}
	if g := c.tagGen.Load(); e.checked.Load() != g && c.recheck != nil {
		if !c.recheck(e.Key, e.Begin, e.Tags) {
			return false
		}
		e.checked.Store(g) // g was read first: a later TagsChanged rechecks again
	}
	var now int64
	if c.now != nil {
		now = c.now.Load()
	} else {
		now = c.clock.Now()
	}
	if now >= e.Expire {
		return false
	}
	// Unsigned: an age of 0 (serve nothing) rejects every entry, and an
	// entry born after now (the clock stepped back) counts as very old.
	age := c.maxAge.Load()
	return age < 0 || uint64(now-e.Born) < uint64(age)
}

// Now returns the cache's Clock time (unix ns), the time entries are
// checked against: callers compare their own deadlines (such as
// Entry.Refresh) with it, at the cost of one atomic load.
func (c *Cache[V]) Now() int64 {
	if c.now != nil {
		return c.now.Load()
	}
	return c.clock.Now()
}

// Begin returns the token a load takes before it reads anything (before
// L2): [Cache.SetIf] with it installs the load's result only if no
// invalidation of the key happened since.
func (c *Cache[V]) Begin() Token {
	return Token{seq: c.seq.Load(), epoch: c.epoch.Load()}
}

// TagsChanged makes every entry go through Options.Recheck once more on
// its next lookup: the owner calls it after it learnt of a tag
// invalidation, once the invalidation is visible to Recheck. It costs one
// atomic add; an entry that is not looked up is never rechecked.
func (c *Cache[V]) TagsChanged() { c.tagGen.Add(1) }

// Flush invalidates every entry at once by bumping the epoch: the current
// entries are invalid on read from then on, and loads whose token was
// taken earlier will not fill (SetIf refuses them; [Cache.Flushed] reports
// it, [Cache.Invalidated] does not, as no key was invalidated). It is safe under live traffic (unlike
// ristretto.Clear) and costs one atomic add. The key index keeps the
// old-epoch entries until they are replaced, deleted or evicted; Len counts
// them.
func (c *Cache[V]) Flush() { c.epoch.Add(1) }

// SetDegraded makes LookupPrefix and Get serve only entries younger than
// maxAge (by their Born time on the Clock) until ClearDegraded; a maxAge
// of 0 or less serves nothing. A later call replaces the maximum age.
func (c *Cache[V]) SetDegraded(maxAge time.Duration) { c.maxAge.Store(int64(max(maxAge, 0))) }

// ClearDegraded ends SetDegraded: entries are served whatever their age.
func (c *Cache[V]) ClearDegraded() { c.maxAge.Store(-1) }

// Degraded reports whether the cache is degraded (SetDegraded is in force).
func (c *Cache[V]) Degraded() bool { return c.maxAge.Load() >= 0 }

// Wait blocks until the Sets made so far are applied: each is then
// visible to LookupPrefix and Get, or was refused by Ristretto and left
// the index. Tests use it instead of sleeping. After Close it returns at
// once.
func (c *Cache[V]) Wait() {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if !c.closed.Load() {
		c.rc.Wait()
	}
}

// Close stops the cache's goroutines (Ristretto's and the clock New
// started) and drops its entries, without calling OnEvict or OnReject. It
// is idempotent; a concurrent second call waits for the first. Later calls
// are safe: LookupPrefix and Get miss, Set, SetIf, Delete and
// DeleteMatching do nothing (SetIf reports false), Wait returns.
//
// Set, SetIf, Delete, DeleteMatching and Wait may run concurrently with
// Close. LookupPrefix and Get must not: Ristretto's Close is not safe
// against a concurrent Get (which may send on a channel Close has closed,
// and races on a plain bool), and guarding the hit path would cost every
// hit an atomic write. The owner stops its readers first.
func (c *Cache[V]) Close() {
	c.closeOnce.Do(func() {
		c.closeMu.Lock()
		c.closed.Store(true)
		c.closeMu.Unlock()
		c.rc.Close() // drops every entry: OnExit empties the index
		if c.ownClk != nil {
			c.ownClk.Stop()
		}
	})
}
