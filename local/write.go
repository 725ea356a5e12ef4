package local

import "iter"

// SetIf installs it under key unless an invalidation of key happened since
// tok was taken ([Cache.Begin]): a Delete or Set of key, a Flush, or a
// DeleteMatching whose match accepts key. It reports whether it installed.
//
// It errs only on the side of not installing: an invalidation of another
// key that shares key's hash bucket (1 key in 4096) also vetoes it, and so
// does running out of the ring of recent patterns (more than 1024
// DeleteMatching calls since tok). Ristretto may still refuse the entry
// (admission, a full Set buffer); that is not reported: L1 is advisory.
func (c *Cache[V]) SetIf(key string, tok Token, it Item[V]) bool {
	e, h := c.installIf(key, tok, it)
	if e == nil {
		return false
	}
	c.store(e, h, it.Cost)
	return true
}

// Invalidated reports whether an invalidation of key itself happened since
// tok was taken, or one is in progress: a Delete or Set of key, a Hold of
// it, or a DeleteMatching whose match accepts key (with the same
// conservative errors as SetIf). A Flush does not count: it says nothing
// about key, only that this cache may have missed something, which
// [Cache.Flushed] reports. SetIf refuses to install when either does.
func (c *Cache[V]) Invalidated(key string, tok Token) bool {
	h := c.keyHash(key)
	s := c.stripe(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vetoedLocked(h, tok) || c.pats.vetoes(key, tok.seq)
}

// Flushed reports whether a [Cache.Flush] happened since tok was taken.
func (c *Cache[V]) Flushed(tok Token) bool { return tok.epoch != c.epoch.Load() }

// vetoedLocked reports whether the key of hash h was invalidated since tok,
// or is held. The caller holds s.mu.
func (s *stripe[V]) vetoedLocked(h uint64, tok Token) bool {
	b := bucket(h)
	return s.inv[b] > tok.seq || s.held[b] > 0
}

// Hold begins the invalidation of keys whose slow part (a round trip to
// the shared tier) lies ahead: like Delete, it removes their entries and
// vetoes the fills of loads that began earlier; until the matching Release
// or ReleaseSet, it also vetoes every fill of them, so that a load that
// read the old value from the shared tier before it changed cannot put it
// back in the meantime. Holds nest. It returns how many entries it removed.
func (c *Cache[V]) Hold(keys ...string) (removed int) {
	for _, key := range keys {
		if c.hold(key, 1) {
			removed++
		}
	}
	return removed
}

// Release ends a Hold of keys: it removes their entries again and vetoes
// the fills of loads that began before it.
func (c *Cache[V]) Release(keys ...string) (removed int) {
	for _, key := range keys {
		if c.hold(key, -1) {
			removed++
		}
	}
	return removed
}

// ReleaseSet ends a Hold of key by installing it: unless another
// invalidation of key began since tok (taken after the Hold), or another
// Hold of it is in progress, in which case it only releases. It reports
// whether it installed.
func (c *Cache[V]) ReleaseSet(key string, tok Token, it Item[V]) bool {
	if c.closed.Load() {
		return false
	}
	h := c.keyHash(key)
	s := c.stripe(h)
	b := bucket(h)
	s.mu.Lock()
	s.held[b] = max(s.held[b]-1, 0) // an unpaired release does not disarm a later Hold
	ok := s.inv[b] <= tok.seq && s.held[b] == 0 && tok.epoch == c.epoch.Load() && !c.pats.vetoes(key, tok.seq)
	s.inv[b] = c.seq.Add(1)
	var e, old *Entry[V]
	if ok {
		e = c.newEntry(key, it, tok.epoch)
		s.installLocked(e)
	} else {
		old = s.killLocked(key)
	}
	s.mu.Unlock()
	if old != nil {
		c.del(h)
	}
	if e != nil {
		c.store(e, h, it.Cost)
	}
	return ok
}

// hold adds d to key's hold count, bumps its invalidation sequence and
// removes its entry; it reports whether there was one.
func (c *Cache[V]) hold(key string, d int32) bool { return c.change(key, d, true) }

// installIf is SetIf's index half: it installs an entry for it unless an
// invalidation of key happened since tok, and returns it (nil if not) with
// the key's hash.
//
// The checks and the install hold the stripe's lock, which a
// DeleteMatching's scan of the stripe takes too, and a DeleteMatching
// records its pattern before it scans: either the scan comes after the
// install and finds the key, or the pattern was recorded before the
// checks, which see it.
func (c *Cache[V]) installIf(key string, tok Token, it Item[V]) (*Entry[V], uint64) {
	h := c.keyHash(key)
	if c.closed.Load() {
		return nil, h
	}
	s := c.stripe(h)
	e := c.newEntry(key, it, tok.epoch)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vetoedLocked(h, tok) || c.pats.vetoes(key, tok.seq) || tok.epoch != c.epoch.Load() {
		return nil, h
	}
	if c.afterCheck != nil {
		c.afterCheck()
	}
	s.installLocked(e)
	return e, h
}

// Set installs it under key unconditionally. It counts as an invalidation
// of key: a load of key that began earlier will not overwrite it with an
// older value. After Close it does nothing.
//
// Like any install, it may not be visible at once (Ristretto applies a Set
// of a new key asynchronously; see [Cache.Wait]) and may be refused; a Set
// replacing a stored entry is visible at once. If two installs of one new
// key are pending together, Ristretto keeps the first, which is dead
// (replaced), and refuses the second: the key then misses until its next
// install, and is never served the older value.
func (c *Cache[V]) Set(key string, it Item[V]) {
	c.set(key, c.keyHash(key), it)
}

// set is Set with the key's hash given (tests force collisions with it).
func (c *Cache[V]) set(key string, h uint64, it Item[V]) {
	if c.closed.Load() {
		return
	}
	s := c.stripe(h)
	e := c.newEntry(key, it, c.epoch.Load())
	s.mu.Lock()
	s.inv[bucket(h)] = c.seq.Add(1)
	s.installLocked(e)
	s.mu.Unlock()
	c.store(e, h, it.Cost)
}

func (c *Cache[V]) newEntry(key string, it Item[V], epoch uint64) *Entry[V] {
	return &Entry[V]{
		Value: it.Value, Key: key, Expire: it.Expire, Born: c.clock.Now(),
		Refresh: it.Refresh, Absent: it.Absent, Version: it.Version, Fallback: it.Fallback, epoch: epoch,
		Begin: it.Begin, Tags: it.Tags,
	}
}

// store hands an installed entry of key hash h to Ristretto, outside the stripe lock
// (Ristretto's goroutine takes stripe locks in its callbacks, and a Set of
// a stored hash calls OnExit on the caller's goroutine). A Set that
// Ristretto drops at once calls no callback: the index lets go here.
//
// An entry that costs more than the whole budget is refused whether or not
// its key is stored (see below).
func (c *Cache[V]) store(e *Entry[V], h uint64, cost int64) {
	cost = max(cost, 1)
	if c.charge {
		cost += EntryBytes[V](e.Key) + TagBytes(e.Tags)
	}
	if cost > c.maxCost-c.fixed {
		// Ristretto refuses a new key this costly, but would replace a
		// stored one in place: delete the stored value (dead already)
		// first, so that this Set is a new key's and is refused.
		c.del(h)
	}
	c.closeMu.RLock()
	ok := !c.closed.Load() && c.rc.Set(h, e, cost)
	c.closeMu.RUnlock()
	if !ok {
		c.stripe(h).forget(e)
		return
	}
	c.stored.Add(1)
}

// Delete invalidates keys: loads of them that began earlier will not fill
// (their SetIf fails), and their entries are marked dead (so that a
// Ristretto Set landing late cannot resurrect them), removed from the
// index and deleted from Ristretto. It returns how many entries it
// removed from the index. After Close it removes nothing.
func (c *Cache[V]) Delete(keys ...string) (removed int) {
	for _, key := range keys {
		if c.remove(key, true) {
			removed++
		}
	}
	return removed
}

// remove kills key's indexed entry, if any, and deletes it from Ristretto;
// with bump, it also vetoes the fills of key whose token predates it.
func (c *Cache[V]) remove(key string, bump bool) bool { return c.change(key, 0, bump) }

// change adds held to key's hold count, bumps its invalidation sequence
// (with bump), kills its indexed entry if any and deletes it from
// Ristretto; it reports whether there was one.
func (c *Cache[V]) change(key string, held int32, bump bool) bool {
	h := c.keyHash(key)
	s := c.stripe(h)
	b := bucket(h)
	s.mu.Lock()
	s.held[b] = max(s.held[b]+held, 0) // an unpaired release does not disarm a later Hold
	if bump {
		s.inv[b] = c.seq.Add(1)
	}
	e := s.killLocked(key)
	s.mu.Unlock()
	if e == nil {
		return false
	}
	c.del(h)
	return true
}

// del deletes the killed entry of key hash h from Ristretto, to free its
// room at once.
func (c *Cache[V]) del(h uint64) {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if !c.closed.Load() {
		c.rc.Del(h)
	}
}

// DeleteMatching invalidates every key that match accepts, like Delete:
// it records match in a bounded ring of recent patterns, so that loads
// that began earlier and fill later are vetoed, then removes the matching
// entries from the index and Ristretto. It returns how many it removed.
//
// Only the indexed keys that start with prefix are offered to match, so
// match must reject every key without it ("" offers every key); with a
// non-empty prefix the cost grows with the keys that share it, not with
// the size of the cache. match is called under the cache's locks, from
// this call and from later SetIf calls: it must be safe for concurrent
// use, must not panic and must not call the cache.
func (c *Cache[V]) DeleteMatching(prefix string, match func(key string) bool) (removed int) {
	for _, key := range c.collect(prefix, match) {
		// No generation bump: the ring vetoes the fills of these keys.
		if c.remove(key, false) {
			removed++
		}
	}
	return removed
}

// collect is DeleteMatching's first half: it records the pattern, then
// collects the matching keys. The order matters: a fill checks and
// installs under its stripe's lock, which the scan of the stripe takes, so
// either its checks see this record (and veto it), or its key is indexed
// before the scan of its stripe (and is removed).
func (c *Cache[V]) collect(prefix string, match func(string) bool) []string {
	c.pats.record(&c.seq, match)
	return c.scan(prefix, match)
}

// scan returns the indexed keys that start with prefix and satisfy match.
func (c *Cache[V]) scan(prefix string, match func(string) bool) []string {
	var keys []string
	for i := range c.stripes {
		keys = c.stripes[i].collect(prefix, match, keys)
	}
	return keys
}

// Len returns the number of entries in the key index: the entries
// Ristretto holds or is about to apply, including those no longer valid
// (expired, or of an earlier epoch) that were not yet replaced, deleted or
// evicted.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.stripes {
		s := &c.stripes[i]
		s.mu.Lock()
		n += s.idx.n
		s.mu.Unlock()
	}
	return n
}

// All returns an iterator over the key index: each indexed key and its
// entry, valid or not (Get tells), in no particular order. It copies one
// stripe at a time and holds no lock while it yields, so the loop body
// may call the cache; an entry installed or removed meanwhile may or may
// not be seen.
func (c *Cache[V]) All() iter.Seq2[string, *Entry[V]] {
	return func(yield func(string, *Entry[V]) bool) {
		var buf []*Entry[V]
		for i := range c.stripes {
			buf = c.stripes[i].snapshot(buf[:0])
			for _, e := range buf {
				if !yield(e.Key, e) {
					return
				}
			}
		}
	}
}
