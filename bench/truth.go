package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// value is what the source of truth holds per key, and what every cache
// under test stores: the version lets each read be checked.
type value struct {
	ID      string `json:"id" msgpack:"id"`
	Version uint64 `json:"version" msgpack:"version"`
	Body    string `json:"body" msgpack:"body"`
}

// Keys are numbered 0..keys-1 and named "g<group>_<member>", groupSize
// keys to a group, so that the glob "g<group>_*" matches exactly one
// group's keys: a write by pattern bumps and invalidates a whole group.
const groupSize = 10

func keyID(k int) string { return "g" + strconv.Itoa(k/groupSize) + "_" + strconv.Itoa(k%groupSize) }

// groupPattern is the glob that matches the ids of group g.
func groupPattern(g int) string { return "g" + strconv.Itoa(g) + "_*" }

// parseKeyID returns the key number of an id made by keyID, found at the
// end of s (after any prefix), or -1.
func parseKeyID(s string) int {
	i := strings.LastIndexByte(s, 'g')
	if i < 0 {
		return -1
	}
	g, m, ok := strings.Cut(s[i+1:], "_")
	if !ok {
		return -1
	}
	gi, err1 := strconv.Atoi(g)
	mi, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || mi < 0 || mi >= groupSize || gi < 0 {
		return -1
	}
	return gi*groupSize + mi
}

// parseGroupPattern returns the group of a pattern made by groupPattern,
// found at the end of s, or -1.
func parseGroupPattern(s string) int {
	if !strings.HasSuffix(s, "_*") {
		return -1
	}
	s = s[:len(s)-2]
	i := strings.LastIndexByte(s, 'g')
	if i < 0 {
		return -1
	}
	g, err := strconv.Atoi(s[i+1:])
	if err != nil || g < 0 {
		return -1
	}
	return g
}

// The arena's layout. Header words, then per-node progress counters, then
// the load timeline, then one block per key.
const (
	hMagic    = 0
	hKeys     = 1
	hBase     = 2  // wall-clock ns that relative times count from
	hLoads    = 3  // loader calls
	hDistinct = 4  // (key, version) pairs loaded for the first time
	hOrigin   = 5  // relative ns where the load timeline starts
	hWrites   = 6  // writes committed
	hInflight = 7  // loads that have not returned
	hOutageAt = 8  // relative ns where the outage scenario's phases start (its run's start)
	hPhaseLen = 9  // ns of each outage phase; 0: no outage
	hNodeOps  = 10 // maxNodes words: operations per node, for progress

	maxNodes       = 256
	timelineWidth  = 25 * time.Millisecond
	timelineLen    = 4096 // 102 s
	timelineOffset = hNodeOps + maxNodes
	keysOffset     = timelineOffset + timelineLen

	// Per key: version, loads, highest version loaded, when it was first
	// loaded; then the write log ring.
	kVersion  = 0
	kLoads    = 1
	kLoadedHi = 2
	kFirst    = 3 // relative ns when a load of the key first succeeded
	// ringSize is the writes each key's log keeps: 2 KiB a key, 20 MiB for
	// the zipf scenario's 10,000 keys. A bus message's coverage is read
	// from it when the monitor receives the message, a few ms after the
	// write at most, so a hot key rarely turns it over in between; when it
	// has, the monitor says so rather than guess (see coverage).
	ringSize = 64
	entryLen = 4
	keyWords = 4 + ringSize*entryLen

	arenaMagic = 0x7469657263616368 // "tiercach"
)

func arenaWords(keys int) int { return keysOffset + keys*keyWords }

// truth is the source of truth that stands in for the database: versioned
// values, a load latency, a count of every load, and a log of the recent
// writes of each key (who wrote it, when its invalidation began and when it
// returned), which the read checker and the bus monitors consult. It is
// safe for concurrent use, across processes too.
type truth struct {
	a       *arena
	keys    int
	base    int64
	latency time.Duration
	body    string
	ids     []string // every key's id, made once so that a read formats none
	// gate, if set, is called by every load after it read the version;
	// tests use it to hold a load in flight.
	gate func(k int)
}

// newTruth lays a fresh source of truth over a (keys must fit).
func newTruth(a *arena, keys int, latency time.Duration, valueSize int) (*truth, error) {
	if err := a.checkSize(arenaWords(keys)); err != nil {
		return nil, err
	}
	a.zero(0, arenaWords(keys))
	base := time.Now().Add(-time.Second).UnixNano()
	a.store(hKeys, uint64(keys))
	a.store(hBase, uint64(base))
	a.store(hMagic, arenaMagic)
	return withIDs(&truth{a: a, keys: keys, base: base, latency: latency, body: strings.Repeat("x", valueSize)}), nil
}

// openTruth attaches to a source of truth another process laid out.
func openTruth(a *arena, latency time.Duration, valueSize int) (*truth, error) {
	if a.load(hMagic) != arenaMagic {
		return nil, errors.New("shared arena not initialised")
	}
	keys := int(a.load(hKeys))
	if err := a.checkSize(arenaWords(keys)); err != nil {
		return nil, err
	}
	return withIDs(&truth{a: a, keys: keys, base: int64(a.load(hBase)), latency: latency, body: strings.Repeat("x", valueSize)}), nil
}

func withIDs(t *truth) *truth {
	t.ids = make([]string, t.keys)
	for k := range t.ids {
		t.ids[k] = keyID(k)
	}
	return t
}

// id returns key k's id.
func (t *truth) id(k int) string { return t.ids[k] }

// reset forgets every version, load and write: a new run starts.
func (t *truth) reset() {
	t.a.zero(hLoads, arenaWords(t.keys))
}

// rel returns wall-clock time tm as ns since the arena's base (always > 0).
func (t *truth) rel(tm time.Time) int64 { return tm.UnixNano() - t.base }

// abs turns a relative time back into a time.
func (t *truth) abs(rel int64) time.Time { return time.Unix(0, t.base+rel) }

func (t *truth) keyBase(k int) int { return keysOffset + k*keyWords }

// version is the current version of key k.
func (t *truth) version(k int) uint64 { return t.a.load(t.keyBase(k) + kVersion) }

// load is the loader every cache under test calls: it counts the call,
// waits the load latency (or ctx), and returns the current version.
func (t *truth) load(ctx context.Context, k int) (value, error) {
	if k < 0 || k >= t.keys {
		return value{}, fmt.Errorf("no key %d", k)
	}
	kb := t.keyBase(k)
	t.a.add(hInflight, 1)
	defer t.a.add(hInflight, ^uint64(0))
	t.a.add(hLoads, 1)
	t.a.add(kb+kLoads, 1)
	if b := (t.rel(time.Now()) - int64(t.a.load(hOrigin))) / int64(timelineWidth); b >= 0 && b < timelineLen {
		t.a.add(timelineOffset+int(b), 1)
	}
	// The database reads the row, then the answer takes the load latency to
	// come back: a write committed meanwhile is not in it. During an outage
	// (the phase the load starts in decides) the answer is an error, or
	// comes ten times slower.
	ph := t.phaseAt(t.rel(time.Now()))
	v := t.version(k)
	if t.gate != nil {
		t.gate(k)
	}
	if latency := t.latencyIn(ph); latency > 0 {
		tm := time.NewTimer(latency)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return value{}, ctx.Err()
		}
	}
	if ph == phaseFailing {
		return value{}, errOutage
	}
	if t.a.load(kb+kFirst) == 0 {
		t.a.cas(kb+kFirst, 0, uint64(t.rel(time.Now())))
	}
	for {
		hi := t.a.load(kb + kLoadedHi)
		if hi >= v+1 {
			break
		}
		if t.a.cas(kb+kLoadedHi, hi, v+1) {
			t.a.add(hDistinct, 1)
			break
		}
	}
	return value{ID: t.ids[k], Version: v, Body: t.body}, nil
}

// The phases of the outage scenario, each phaseLen long from its run's
// start: loads work, then fail, then answer slowFactor times slower, then
// work again. The times live in the arena, so that every process of a run
// agrees on them.
const (
	phaseNone    = -1 // no outage set, or before the run's start
	phaseBefore  = 0
	phaseFailing = 1
	phaseSlow    = 2
	phaseAfter   = 3
	phases       = 4
	slowFactor   = 10
)

var phaseNames = [phases]string{"before", "failing", "slow", "after"}

// errOutage is what every load returns during the failing phase.
var errOutage = errors.New("source of truth unavailable (outage scenario, failing phase)")

// latencyIn is the load latency in outage phase ph.
func (t *truth) latencyIn(ph int) time.Duration {
	if ph == phaseSlow {
		return slowFactor * t.latency
	}
	return t.latency
}

// setOutage makes the phases start at relative time at, each phaseLen
// long; phaseLen 0 lifts the outage.
func (t *truth) setOutage(at int64, phaseLen time.Duration) {
	t.a.store(hOutageAt, uint64(at))
	t.a.store(hPhaseLen, uint64(phaseLen))
}

// phaseAt returns the outage phase at relative time at (phaseNone without
// an outage, or before its first phase).
func (t *truth) phaseAt(at int64) int {
	n := int64(t.a.load(hPhaseLen))
	if n == 0 {
		return phaseNone
	}
	d := at - int64(t.a.load(hOutageAt))
	if d < 0 {
		return phaseNone
	}
	return int(min(d/n, phaseAfter))
}

// cachedBefore reports whether a load of key k had succeeded before the
// outage's failing phase began: whether a cache could hold a value of it.
func (t *truth) cachedBefore(k int) bool {
	first := int64(t.a.load(t.keyBase(k) + kFirst))
	return first != 0 && first < int64(t.a.load(hOutageAt))+int64(t.a.load(hPhaseLen))
}

// markOrigin starts the load timeline now.
func (t *truth) markOrigin() { t.a.store(hOrigin, uint64(t.rel(time.Now()))) }

// settle waits until no load is running (or ctx ends): counts read after
// it are final.
func (t *truth) settle(ctx context.Context) error {
	for t.a.load(hInflight) != 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d loads still running: %w", t.a.load(hInflight), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// loads returns the loader calls so far, in all and of key k.
func (t *truth) loads() uint64         { return t.a.load(hLoads) }
func (t *truth) keyLoads(k int) uint64 { return t.a.load(t.keyBase(k) + kLoads) }
func (t *truth) distinct() uint64      { return t.a.load(hDistinct) }

// timeline returns the loads per timelineWidth since markOrigin, up to d.
func (t *truth) timeline(d time.Duration) []uint64 {
	n := min(int(d/timelineWidth)+1, timelineLen)
	out := make([]uint64, n)
	for i := range out {
		out[i] = t.a.load(timelineOffset + i)
	}
	return out
}

func (t *truth) addNodeOps(node int, n uint64) {
	if node < maxNodes {
		t.a.add(hNodeOps+node, n)
	}
}

// resetOps zeroes the progress counters.
func (t *truth) resetOps() { t.a.zero(hNodeOps, hNodeOps+maxNodes) }

func (t *truth) nodeOps() uint64 {
	var n uint64
	for i := range maxNodes {
		n += t.a.load(hNodeOps + i)
	}
	return n
}

// write is one entry of a key's write log.
type write struct {
	version uint64
	writer  int   // node index
	start   int64 // relative ns: the write was committed and its invalidation began
	issued  int64 // relative ns: its invalidation returned; 0 while it runs
	claimed bool
}

const tagMask = 1<<24 - 1

// commit bumps key k's version as node writer does, logs the write, and
// returns the new version. The caller invalidates, then calls issued.
func (t *truth) commit(k, writer int) uint64 { return t.commitAt(k, writer, t.rel(time.Now())) }

// commitAt is commit at relative time at (tests give the times).
func (t *truth) commitAt(k, writer int, at int64) uint64 {
	kb := t.keyBase(k)
	v := t.a.add(kb+kVersion, 1)
	t.a.add(hWrites, 1)
	e := kb + 4 + int(v%ringSize)*entryLen
	// A seqlock: readers accept the entry only if its version word is the
	// same before and after they read the rest.
	t.a.store(e, 0)
	t.a.store(e+1, uint64(writer+1)<<48|uint64(at))
	t.a.store(e+2, 0)
	t.a.store(e+3, 0)
	t.a.store(e, v)
	return v
}

// issued records that the invalidation of version v of key k returned.
func (t *truth) issued(k int, v uint64) { t.issuedAt(k, v, t.rel(time.Now())) }

// issuedAt is issued at relative time at (tests give the times).
func (t *truth) issuedAt(k int, v uint64, at int64) {
	e := t.keyBase(k) + 4 + int(v%ringSize)*entryLen
	if t.a.load(e) == v {
		t.a.store(e+2, uint64(at)<<24|v&tagMask)
	}
}

// entry returns the log entry of version v of key k, if the ring still
// holds it.
func (t *truth) entry(k int, v uint64) (write, bool) {
	e := t.keyBase(k) + 4 + int(v%ringSize)*entryLen
	v1 := t.a.load(e)
	ws := t.a.load(e + 1)
	is := t.a.load(e + 2)
	cl := t.a.load(e + 3)
	if v1 != v || t.a.load(e) != v || v == 0 {
		return write{}, false
	}
	w := write{version: v, writer: int(ws>>48) - 1, start: int64(ws & (1<<48 - 1)), claimed: cl != 0}
	if is != 0 && is&tagMask == v&tagMask {
		w.issued = int64(is >> 24)
	}
	return w, true
}

// claim marks version v of key k as carried by a message; it reports
// false if another message already carried it.
func (t *truth) claim(k int, v uint64) bool {
	e := t.keyBase(k) + 4 + int(v%ringSize)*entryLen
	if t.a.load(e) != v {
		return false
	}
	return t.a.cas(e+3, 0, 1)
}

// supersededBefore reports whether a write of key k newer than version v
// had its invalidation return before relative time t0. A version that
// has left the ring is taken as invalidated long ago.
func (t *truth) supersededBefore(k int, v uint64, t0 int64) bool {
	_, _, ok := t.staleSince(k, v, t0)
	return ok
}

// staleSince returns when version v of key k became stale for a read that
// began at relative time t0: the earliest time a write of k newer than v
// had its invalidation return, among those that returned before t0 (ok is
// false if none did). A version whose successor has left the ring was
// invalidated earlier than the ring can tell: since is then the earliest
// time the ring still holds (t0 if it holds none), a lower bound of the
// age, and exact is false.
func (t *truth) staleSince(k int, v uint64, t0 int64) (since int64, exact, ok bool) {
	latest := t.version(k)
	since, exact = t0, true
	for u := v + 1; u <= latest; u++ {
		w, found := t.entry(k, u)
		if !found {
			if latest-u >= ringSize-1 {
				ok, exact = true, false
			}
			continue
		}
		if w.issued != 0 && w.issued < t0 && w.issued < since {
			since, ok = w.issued, true
		}
	}
	return since, exact, ok
}

// issuedBy returns the newest version of key k whose invalidation had
// returned by relative time at (0 if none): what any message that arrives
// at that time has certainly been preceded by.
func (t *truth) issuedBy(k int, at int64) uint64 {
	latest := t.version(k)
	lo := uint64(1)
	if latest > ringSize {
		lo = latest - ringSize + 1
	}
	var best uint64
	for u := lo; u <= latest; u++ {
		if w, ok := t.entry(k, u); ok && w.issued != 0 && w.issued <= at {
			best = max(best, u)
		}
	}
	return best
}

// sentBy returns the version of key k whose invalidation, by node writer,
// was running at relative time sent (the oldest such, if several): the
// write that a message sent then carries. 0 if none is found.
func (t *truth) sentBy(k, writer int, sent int64) uint64 {
	latest := t.version(k)
	lo := uint64(1)
	if latest > ringSize {
		lo = latest - ringSize + 1
	}
	for u := lo; u <= latest; u++ {
		w, ok := t.entry(k, u)
		if ok && w.writer == writer && w.start <= sent && (w.issued == 0 || w.issued >= sent) {
			return u
		}
	}
	return 0
}

// coverage returns what a message of node writer, sent at relative time
// sent, covers of key k: the write it carries (sentBy) or, if newer, the
// newest write whose invalidation had returned before it left (issuedBy).
// ok is false if the log no longer reaches back to sent: a write that has
// left the ring might be the answer. It does when the oldest write it
// keeps had its invalidation return by sent, since every older write is
// then covered too.
func (t *truth) coverage(k, writer int, sent int64) (covered uint64, ok bool) {
	covered = max(t.sentBy(k, writer, sent), t.issuedBy(k, sent))
	// Checked after the lookups, so that writes that turned the ring over
	// during them are seen.
	if latest := t.version(k); latest > ringSize {
		lo := latest - ringSize + 1
		w, found := t.entry(k, lo)
		if !found || w.issued == 0 || w.issued > sent {
			return 0, false
		}
		covered = max(covered, lo)
	}
	return covered, true
}

// claimOldest claims the oldest unclaimed write of key k by node writer
// and returns its version (0 if none): the write that the next message
// of writer about k carries, when messages leave in write order.
func (t *truth) claimOldest(k, writer int) uint64 {
	latest := t.version(k)
	lo := uint64(1)
	if latest > ringSize {
		lo = latest - ringSize + 1
	}
	for u := lo; u <= latest; u++ {
		w, ok := t.entry(k, u)
		if ok && w.writer == writer && !w.claimed && t.claim(k, u) {
			return u
		}
	}
	return 0
}

// startedBy returns the newest version of key k whose invalidation had
// begun by relative time at (0 if none).
func (t *truth) startedBy(k int, at int64) uint64 {
	latest := t.version(k)
	lo := uint64(1)
	if latest > ringSize {
		lo = latest - ringSize + 1
	}
	var best uint64
	for u := lo; u <= latest; u++ {
		if w, ok := t.entry(k, u); ok && w.start <= at {
			best = max(best, u)
		}
	}
	return best
}
