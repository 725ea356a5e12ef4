package main

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// propagation says how a cache under test tells its nodes about an
// invalidation, which decides where the checker looks.
type propagation uint8

const (
	// propNone: the cache applies an invalidation only where the writer's
	// call applies it (the shared Redis, the writer's own memory) and never
	// tells the other nodes. With no message on its way, an invalidation is
	// as applied as it will ever be when the writer's call returns: a later
	// read of the old value on any node is stale, not late.
	propNone propagation = iota
	// propMessages: each node applies invalidations as they reach it (a
	// bus, pub/sub, Redis key-tracking pushes); the node's own log of what
	// reached it, and when, tells stale reads from late ones.
	propMessages
)

// A read is checked by the definitions of docs/guarantees.md (stale and
// late reads). It returned version v of key k
// and began at t0:
//   - fine if no write newer than v had its invalidation return before t0
//     (a write still committing or invalidating is the cache-aside window
//     every cache has);
//   - stale if the reading node had applied an invalidation of a newer
//     version before t0 (issued there, or received);
//   - late otherwise: another node had invalidated it, and the message had
//     not arrived.

// logEntry says that a node applied, at relative time at, an invalidation
// that covers every version of a key below covered+1.
type logEntry struct {
	covered uint64
	at      int64
}

// suspect is a read that returned a superseded value, waiting for its
// node's log to be complete up to when it began. since is when the value
// became stale (staleSince), exact false if that is a lower bound of its
// age.
type suspect struct {
	key   int
	v     uint64
	t0    int64
	since int64
	exact bool
}

// staleAge is the age of a node's stale reads: how long after the
// invalidation that made its value stale each began (from the return of
// that invalidation's call, the moment from which the checker counts a
// read of the old value as stale or late at all).
type staleAge struct {
	hist hist
	max  time.Duration
	// maxLow: some age is a lower bound (the write log had lost the write
	// that made that read's value stale), so max is one too: that read may
	// be older than every exact one.
	maxLow bool
}

func (a *staleAge) record(d time.Duration, exact bool) {
	a.hist.record(d)
	a.max = max(a.max, d)
	a.maxLow = a.maxLow || !exact
}

func (a *staleAge) merge(o *staleAge) {
	a.hist.merge(&o.hist)
	a.max = max(a.max, o.max)
	a.maxLow = a.maxLow || o.maxLow
}

// nodeLog is one node's invalidation log and read verdicts.
type nodeLog struct {
	t    *truth
	node int
	prop propagation

	stale, late, checked atomic.Uint64

	mu    sync.Mutex // protects the fields below
	byKey map[int][]logEntry
	// unknown holds, per key, deliveries whose coverage the write log had
	// lost; covered is then the key's version on receipt, an upper bound.
	unknown map[int][]logEntry
	lagHi   map[int]uint64 // per key, the newest version whose lag was measured here
	lag     hist
	keyLag  hist // lag of the deliveries of keys messages only (not patterns)
	age     staleAge
	pending []suspect
	// With deferred logs (a bus monitor maps deliveries to messages after
	// the fact), recv holds when each delivery was applied and mapped how
	// many are in the log.
	deferred bool
	recv     []int64
	recvLag  []int64
	mapped   int
	broken   string // why deliveries could not be mapped, if they could not
	unsure   uint64 // suspects never classified (the log never caught up, or had lost what a delivery covered)
}

func newNodeLog(t *truth, node int, prop propagation) *nodeLog {
	return &nodeLog{t: t, node: node, prop: prop, byKey: make(map[int][]logEntry), unknown: make(map[int][]logEntry), lagHi: make(map[int]uint64)}
}

// check classifies one read of key k that returned version v and began
// at t0 (relative ns).
func (l *nodeLog) check(k int, v uint64, t0 int64) {
	l.checked.Add(1)
	if v >= l.t.version(k) {
		return
	}
	since, exact, ok := l.t.staleSince(k, v, t0)
	if !ok {
		return
	}
	s := suspect{k, v, t0, since, exact}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prop == propNone {
		l.staleLocked(s)
		return
	}
	if !l.completeLocked(t0) {
		l.pending = append(l.pending, s)
		return
	}
	l.classifyLocked(s)
}

func (l *nodeLog) classifyLocked(s suspect) {
	for _, e := range l.byKey[s.key] {
		if e.covered > s.v && e.at < s.t0 {
			l.staleLocked(s)
			return
		}
	}
	// A delivery that may have covered v, of unknown coverage: the read
	// may be stale or late.
	for _, e := range l.unknown[s.key] {
		if e.covered > s.v && e.at < s.t0 {
			l.unsure++
			return
		}
	}
	l.late.Add(1)
}

// unknownLocked records that this node applied, at relative time at, an
// invalidation of key k that covered no version above upper, but which
// ones the write log could no longer tell.
func (l *nodeLog) unknownLocked(k int, upper uint64, at int64) {
	l.unknown[k] = append(l.unknown[k], logEntry{upper, at})
}

// staleLocked counts s as a stale read, and its age.
func (l *nodeLog) staleLocked(s suspect) {
	l.stale.Add(1)
	l.age.record(time.Duration(s.t0-s.since), s.exact)
}

// completeLocked reports whether the log holds every delivery this node
// applied before t0.
func (l *nodeLog) completeLocked(t0 int64) bool {
	return !l.deferred || l.mapped == len(l.recv) || l.recv[l.mapped] >= t0
}

// applied records that this node applied, at relative time at, an
// invalidation of key k covering versions up to covered; lagV is the
// version whose propagation lag this delivery measures (0: none).
func (l *nodeLog) applied(k int, covered, lagV uint64, at int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.appliedLocked(k, covered, lagV, at)
}

func (l *nodeLog) appliedLocked(k int, covered, lagV uint64, at int64) {
	l.appliedByLocked(k, covered, lagV, at, false)
}

// appliedByLocked is appliedLocked for a delivery of a pattern message
// (byPattern) or of anything else; only the others count in keyLag.
func (l *nodeLog) appliedByLocked(k int, covered, lagV uint64, at int64, byPattern bool) {
	if covered > 0 {
		l.byKey[k] = append(l.byKey[k], logEntry{covered, at})
	}
	if lagV > l.lagHi[k] {
		l.lagHi[k] = lagV
		if w, ok := l.t.entry(k, lagV); ok && w.writer != l.node && at > w.start {
			l.lag.record(time.Duration(at - w.start))
			if !byPattern {
				l.keyLag.record(time.Duration(at - w.start))
			}
		}
	}
}

// received records that this node applied a delivery it cannot yet name
// (a bus message, mapped later by mapNext); lag is what the cache said it
// took.
func (l *nodeLog) received(at int64, lag time.Duration) {
	l.mu.Lock()
	l.recv = append(l.recv, at)
	l.recvLag = append(l.recvLag, int64(lag))
	l.mu.Unlock()
}

// mapNext names the next unmapped delivery: apply is called with its time
// and the lag the cache measured, and adds log entries with appliedLocked.
// It reports false when every delivery so far is mapped.
func (l *nodeLog) mapNext(apply func(at int64, lag time.Duration) error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mapped == len(l.recv) {
		return false
	}
	if l.broken == "" {
		err := apply(l.recv[l.mapped], time.Duration(l.recvLag[l.mapped]))
		if errors.Is(err, errNotYet) {
			return false
		}
		if err != nil {
			l.broken = err.Error()
		}
	}
	l.mapped++
	l.drainLocked(false)
	return true
}

// drainLocked classifies the pending suspects whose log is now complete
// (all of them when final).
func (l *nodeLog) drainLocked(final bool) {
	kept := l.pending[:0]
	for _, s := range l.pending {
		switch {
		case l.completeLocked(s.t0):
			l.classifyLocked(s)
		case final:
			l.unsure++
		default:
			kept = append(kept, s)
		}
	}
	l.pending = kept
}

// finish classifies what is left and returns the verdicts.
func (l *nodeLog) finish() (stale, late, unsure uint64, lag hist, age staleAge, broken string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drainLocked(true)
	return l.stale.Load(), l.late.Load(), l.unsure, l.lag, l.age, l.broken
}

// keyLags returns the lags of the deliveries that were not of patterns.
func (l *nodeLog) keyLags() hist {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.keyLag
}

// caughtUp reports whether every delivery so far is mapped.
func (l *nodeLog) caughtUp() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mapped == len(l.recv)
}
