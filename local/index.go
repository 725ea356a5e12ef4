package local

import "sync"

// The key index is split into stripes by key hash. A stripe's lock
// serializes every change to its keys: the install of a fill (after its
// invalidation checks), an invalidation, the removal of an entry that
// left Ristretto, and a pattern's scan of its keys. So there is no
// check-then-act window between SetIf and Delete of one key, nor between
// SetIf and DeleteMatching.
const (
	stripeCount = 256 // a power of two; a key's stripe is hash & (stripeCount-1)
	// invBuckets splits a stripe's invalidation sequence numbers by the
	// next hash bits, so that an invalidation vetoes the in-flight fills of
	// 1/(stripeCount*invBuckets) of the keys, not 1/stripeCount.
	invBuckets = 16
)

// stripe is one part of the key index.
type stripe[V any] struct {
	mu sync.Mutex // protects idx, inv and held
	// idx holds each indexed key's entry, in key order. Invariants: an
	// indexed entry is not dead; every entry Ristretto holds that is not
	// dead is indexed (once the pending Sets are applied).
	idx ordered[V]
	// inv holds, per bucket, the sequence number of the last invalidation
	// (Delete or Set) of a key of that bucket. It never grows.
	inv [invBuckets]uint64
	// held counts, per bucket, the Holds in progress: while it is not 0,
	// no fill of a key of that bucket is installed.
	held [invBuckets]int32
	_    [24]byte // keeps neighbouring stripes' locks off one cache line
}

func bucket(h uint64) uint64 { return (h / stripeCount) % invBuckets }

// installLocked points the index at e and marks the entry it replaces
// dead. Consequence: every entry Ristretto holds that is not dead is the
// one the index points at. Ristretto's "two queued Sets of one new key:
// the first is stored, the second rejected although the key is live" then
// leaves a dead first entry (a miss) and takes the second out of the index
// on its rejection; no live entry escapes the index, where a pattern could
// not reach it. The caller holds s.mu.
func (s *stripe[V]) installLocked(e *Entry[V]) {
	if old := s.idx.put(e); old != nil {
		old.kill()
	}
}

// killLocked removes key's entry from the index, marks it dead and
// returns it; nil if key is not indexed. The caller holds s.mu.
func (s *stripe[V]) killLocked(key string) *Entry[V] {
	e := s.idx.remove(key)
	if e != nil {
		e.kill()
	}
	return e
}

// forget removes e from the index if the index still points at exactly e:
// e left Ristretto, or never got in. An entry that was replaced or deleted
// is already dead and out of the index, and never removes its successor.
// (A live entry leaves Ristretto at most once, so the pointer comparison
// only guards against that ever changing.)
func (s *stripe[V]) forget(e *Entry[V]) {
	if e.isDead() { // dead entries are never indexed: nothing to do
		return
	}
	s.mu.Lock()
	if s.idx.get(e.Key) == e {
		s.idx.remove(e.Key)
	}
	s.mu.Unlock()
}

// collect appends the keys of the stripe that start with prefix and
// satisfy match.
func (s *stripe[V]) collect(prefix string, match func(string) bool, keys []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idx.ascendPrefix(prefix, func(e *Entry[V]) bool {
		if match(e.Key) {
			keys = append(keys, e.Key)
		}
		return true
	})
	return keys
}

// snapshot appends the stripe's indexed entries to buf.
func (s *stripe[V]) snapshot(buf []*Entry[V]) []*Entry[V] {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.idx.chunks {
		buf = append(buf, c...)
	}
	return buf
}
