package tiered

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tagTable is a node's mirror of the tag stamps in Redis: the time of
// each tag's last invalidation, learnt from Redis when a read needs a tag
// it does not know, and kept current by the bus (KindTags messages).
// Whenever a message may have been lost (a gap, a lost subscription) it
// forgets everything (reset) and learns again from Redis.
type tagTable struct {
	mu      sync.RWMutex // protects the fields up to users
	epoch   uint64       // bumped by reset: a fetch begun earlier is not kept
	ns      int64
	nsKnown bool
	groups  map[string]int64 // by encoded group name
	users   map[string]int64 // by tag

	// trusted: the bus is healthy, so a known stamp is current within the
	// bus's lag and a read need not ask Redis. keep: what reads learn may
	// be kept (the bus is healthy, or there is no bus: an L1 entry is then
	// checked against what this node knows).
	trusted atomic.Bool
	keep    atomic.Bool
	// zeroUnknown: there is no Redis; a tag this node never invalidated
	// never was.
	zeroUnknown bool
	skew        int64 // TagClockSkew in microseconds
}

// maxTagTable bounds the user tags, and apart the group tags, a node
// remembers (a bus message may name any): past it the table forgets them
// all and learns again (one more round trip per tag).
const maxTagTable = 1 << 16

type verdict uint8

const (
	tagsValid verdict = iota
	tagsInvalid
	tagsUnknown // a tag's stamp is not known here
)

func newTagTable(skew time.Duration, zeroUnknown bool) *tagTable {
	t := &tagTable{groups: map[string]int64{}, users: map[string]int64{}, zeroUnknown: zeroUnknown, skew: skew.Microseconds()}
	return t
}

// stale reports whether a stamp invalidates a load that began at begin
// (stamp + skew >= begin, written so that no stamp overflows).
func (t *tagTable) stale(stamp, begin int64) bool { return stamp > 0 && stamp >= begin-t.skew }

// check judges an entry of group that began at begin and carries tags
// against what the table knows.
func (t *tagTable) check(group string, begin int64, tags []string) verdict {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := tagsValid
	if !t.nsKnown {
		out = tagsUnknown
	} else if t.stale(t.ns, begin) {
		return tagsInvalid
	}
	if s, ok := t.groups[group]; !ok {
		out = tagsUnknown
	} else if t.stale(s, begin) {
		return tagsInvalid
	}
	for _, tag := range tags {
		if s, ok := t.users[tag]; !ok {
			out = tagsUnknown
		} else if t.stale(s, begin) {
			return tagsInvalid
		}
	}
	if out == tagsUnknown && t.zeroUnknown {
		return tagsValid
	}
	return out
}

// setLocked raises the stamp of id to at least stamp. The caller holds mu.
func (t *tagTable) setLocked(id string, stamp int64) {
	switch {
	case id == nsTag:
		t.ns, t.nsKnown = max(t.ns, stamp), true
	case strings.HasPrefix(id, "g:"):
		if len(t.groups) >= maxTagTable {
			t.resetLocked()
		}
		t.groups[id[2:]] = max(t.groups[id[2:]], stamp)
	case strings.HasPrefix(id, "t:"):
		if len(t.users) >= maxTagTable {
			t.resetLocked()
		}
		t.users[id[2:]] = max(t.users[id[2:]], stamp)
	}
}

// apply records invalidations (this node's, or the bus's).
func (t *tagTable) apply(ids []string, stamps []int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, id := range ids {
		t.setLocked(id, stamps[i])
	}
}

// learn keeps stamps read from Redis by a fetch that began at epoch, if
// nothing since may have made them stale.
func (t *tagTable) learn(epoch uint64, ids []string, stamps []int64) {
	if !t.keep.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.epoch != epoch || !t.keep.Load() {
		return
	}
	for i, id := range ids {
		t.setLocked(id, stamps[i])
	}
}

func (t *tagTable) epochNow() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.epoch
}

// reset forgets every stamp.
func (t *tagTable) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resetLocked()
}

func (t *tagTable) resetLocked() {
	t.epoch++
	t.ns, t.nsKnown = 0, false
	clear(t.groups)
	clear(t.users)
}
