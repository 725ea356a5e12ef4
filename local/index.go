package local

import "sync"

// The key index is split into stripes by key hash. A stripe's lock
// serializes every change to its keys: the install of a fill (after its
// invalidation checks), an invalidation, and the removal of an entry that
// left Ristretto. So there is no check-then-act window between SetIf and
// Delete of one key.
//
// The keys are also kept in order, for prefix scans, in orderedShards
// sorted sets that the stripes share (stripe i uses set i%orderedShards):
// few enough that a pattern seeks few times, many enough that new keys
// rarely contend.
const (
	stripeCount   = 256 // a power of two; a key's stripe is hash & (stripeCount-1)
	orderedShards = 16
	// invBuckets splits a stripe's invalidation sequence numbers by the
	// next hash bits, so that an invalidation vetoes the in-flight fills of
	// 1/(stripeCount*invBuckets) of the keys, not 1/stripeCount.
	invBuckets = 16
)

// stripe is one part of the key index.
type stripe[V any] struct {
	mu sync.Mutex // protects idx and inv
	// idx maps each indexed key to its entry. Invariants: an indexed entry
	// is not dead; every entry Ristretto holds that is not dead is indexed
	// (once the pending Sets are applied); ord holds idx's keys (outside
	// mu's critical sections).
	idx map[string]*Entry[V]
	// inv holds, per bucket, the sequence number of the last invalidation
	// (Delete or Set) of a key of that bucket. It never grows.
	inv [invBuckets]uint64
	// held counts, per bucket, the Holds in progress: while it is not 0,
	// no fill of a key of that bucket is installed.
	held [invBuckets]int32
	ord  *orderedShard // shared with other stripes; lock order: mu, then ord.mu
	_    [40]byte      // keeps neighbouring stripes' locks off one cache line
}

// orderedShard holds the keys of stripeCount/orderedShards stripes in
// byte order.
type orderedShard struct {
	mu   sync.Mutex // protects keys
	keys ordered
	_    [48]byte
}

func (o *orderedShard) insert(key string) {
	o.mu.Lock()
	o.keys.insert(key)
	o.mu.Unlock()
}

func (o *orderedShard) remove(key string) {
	o.mu.Lock()
	o.keys.remove(key)
	o.mu.Unlock()
}

// collect appends the keys that start with prefix and satisfy match.
func (o *orderedShard) collect(prefix string, match func(string) bool, keys []string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keys.ascendPrefix(prefix, func(k string) bool {
		if match(k) {
			keys = append(keys, k)
		}
		return true
	})
	return keys
}

func bucket(h uint64) uint64 { return (h / stripeCount) % invBuckets }

// reserveLocked puts key in the ordered set unless it is indexed (and so
// there already), and reports whether it was indexed. The caller holds
// s.mu, and installs an entry for key or calls unreserveLocked before
// releasing it.
func (s *stripe[V]) reserveLocked(key string) (indexed bool) {
	if _, indexed = s.idx[key]; !indexed {
		s.ord.insert(key)
	}
	return indexed
}

// unreserveLocked undoes reserveLocked. The caller holds s.mu.
func (s *stripe[V]) unreserveLocked(key string, indexed bool) {
	if !indexed {
		s.ord.remove(key)
	}
}

// installLocked points the index at e, whose key is reserved, and
// marks the entry it replaces dead. Consequence: every entry Ristretto
// holds that is not dead is the one the index points at. Ristretto's "two
// queued Sets of one new key: the first is stored, the second rejected
// although the key is live" then leaves a dead first entry (a miss) and
// takes the second out of the index on its rejection; no live entry
// escapes the index, where a pattern could not reach it. The caller holds
// s.mu.
func (s *stripe[V]) installLocked(e *Entry[V]) {
	if old := s.idx[e.Key]; old != nil {
		old.dead.Store(true)
	}
	s.idx[e.Key] = e
}

// killLocked marks e dead and removes it from the index; e is indexed. The
// caller holds s.mu.
func (s *stripe[V]) killLocked(e *Entry[V]) {
	e.dead.Store(true)
	delete(s.idx, e.Key)
	s.ord.remove(e.Key)
}

// forget removes e from the index if the index still points at exactly e:
// e left Ristretto, or never got in. An entry that was replaced or deleted
// is already dead and out of the index, and never removes its successor.
// (A live entry leaves Ristretto at most once, so the pointer comparison
// only guards against that ever changing.)
func (s *stripe[V]) forget(e *Entry[V]) {
	if e.dead.Load() { // dead entries are never indexed: nothing to do
		return
	}
	s.mu.Lock()
	if s.idx[e.Key] == e {
		delete(s.idx, e.Key)
		s.ord.remove(e.Key)
	}
	s.mu.Unlock()
}

// snapshot appends the stripe's indexed entries to buf.
func (s *stripe[V]) snapshot(buf []*Entry[V]) []*Entry[V] {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.idx {
		buf = append(buf, e)
	}
	return buf
}
