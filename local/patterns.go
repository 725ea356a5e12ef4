package local

import (
	"sync"
	"sync/atomic"
)

// patternRingSize bounds the recent pattern invalidations kept to veto
// late fills.
const patternRingSize = 1024

// patternRing records recent pattern invalidations: a fill whose token
// predates one that matches its key is vetoed. When the ring overflows, a
// fill whose token predates the newest overwritten record is vetoed too (it
// cannot be told apart), so the ring stays bounded and is never wrong, only
// conservative.
type patternRing struct {
	// newest is the sequence number of the newest record (0: none), read
	// without mu so that fills skip the ring when nothing is newer than
	// their token. It is stored before DeleteMatching scans the index.
	newest atomic.Uint64

	mu   sync.RWMutex // protects recs, next and lost
	recs [patternRingSize]patternRec
	next int    // where the next record goes
	lost uint64 // the highest sequence number of an overwritten record
}

type patternRec struct {
	seq   uint64
	match func(string) bool
}

// record stores match under a sequence number drawn from seq under the
// ring's lock, so that records stay in sequence order.
func (r *patternRing) record(seq *atomic.Uint64, match func(string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := seq.Add(1)
	if old := r.recs[r.next]; old.match != nil {
		r.lost = max(r.lost, old.seq)
	}
	r.recs[r.next] = patternRec{seq: s, match: match}
	r.next = (r.next + 1) % patternRingSize
	r.newest.Store(s)
}

// vetoes reports whether a pattern recorded after sequence number since
// matches key, or may have (it was overwritten).
func (r *patternRing) vetoes(key string, since uint64) bool {
	if r.newest.Load() <= since {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.lost > since {
		return true
	}
	// Records are in sequence order: walk back from the newest.
	for i := 1; i <= patternRingSize; i++ {
		rec := r.recs[(r.next-i+patternRingSize)%patternRingSize]
		if rec.match == nil || rec.seq <= since {
			return false
		}
		if rec.match(key) {
			return true
		}
	}
	return false
}
