package local

import "sync"

// patternRingSize bounds the recent pattern invalidations kept to veto
// late fills.
const patternRingSize = 1024

// patternRing records recent pattern invalidations: a fill whose token
// predates one that matches its key is vetoed. When the ring overflows, a
// fill whose token predates the oldest overwritten record is vetoed too (it
// cannot be told apart), so the ring is bounded and never wrong.
type patternRing struct {
	mu      sync.RWMutex // protects every field
	recs    [patternRingSize]patternRec
	next    int    // where the next record goes
	lostSeq uint64 // the highest sequence number of an overwritten record
}

type patternRec struct {
	seq   uint64
	match func(string) bool
}

// record stores match under the sequence number next returns, drawn under
// the ring's lock so that records stay in sequence order.
func (r *patternRing) record(next func() uint64, match func(string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := next()
	if old := r.recs[r.next]; old.match != nil {
		r.lostSeq = max(r.lostSeq, old.seq)
	}
	r.recs[r.next] = patternRec{seq: seq, match: match}
	r.next = (r.next + 1) % patternRingSize
}

// vetoes reports whether a pattern recorded after sequence number seq
// matches key.
func (r *patternRing) vetoes(key string, seq uint64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.lostSeq > seq {
		return true
	}
	// Records are in sequence order: walk back from the newest.
	for i := 1; i <= patternRingSize; i++ {
		rec := r.recs[(r.next-i+patternRingSize)%patternRingSize]
		if rec.match == nil || rec.seq <= seq {
			return false
		}
		if rec.match(key) {
			return true
		}
	}
	return false
}
