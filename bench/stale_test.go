package main

import (
	"context"
	"sync"
	"testing"
	"time"
)

// newScriptHost sets up a two-node fleet of the named cache on miniredis,
// for a scripted sequence of reads and writes.
func newScriptHost(t *testing.T, cache string) (*host, *truth) {
	t.Helper()
	cfg, err := parseFlags(append([]string{"-nodes", "2"}, smokeArgs...), nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEnv("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	tr, err := newTruth(newMemArena(arenaWords(cfg.maxKeys())), cfg.maxKeys(), 0, 16)
	if err != nil {
		t.Fatal(err)
	}
	h := &host{cfg: cfg, env: e, t: tr, spec: runSpec{Scenario: "zipf", System: cache, Prefix: "script"}}
	ctx := context.Background()
	if err := h.setup(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.close(); err != nil {
			t.Error(err)
		}
	})
	if err := h.hello(ctx); err != nil {
		t.Fatal(err)
	}
	return h, tr
}

// warmL1 reads key k on node hn until the read is an L1 hit, so that the
// node's memory holds the current version. L1 is advisory (a fill may be
// dropped), so it retries, a bounded number of times.
func warmL1(t *testing.T, hn *hostedNode, k int) {
	t.Helper()
	for range 100 {
		before := hn.node.tiers().L1Hits
		if _, err := hn.node.get(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		if hn.node.tiers().L1Hits > before {
			return
		}
		if w, ok := hn.node.(interface{ waitL1() }); ok {
			w.waitL1()
		}
	}
	t.Fatalf("node %d never served key %d from L1", hn.ne.idx, k)
}

// scriptedInvalidation is the sequence that makes a node without the bus
// serve a stale value, every time: node 0 holds key k in L1; node 1 writes
// k (version 1) and invalidates it; once the invalidation has reached node
// 0 (at once without a bus: there is nothing to wait for), node 0 reads k.
// byPattern invalidates k's group by pattern instead of by key.
func scriptedInvalidation(t *testing.T, cache string, byPattern bool) (*partial, value) {
	h, tr := newScriptHost(t, cache)
	ctx := context.Background()
	reader, writer := h.nodes[0], h.nodes[1]
	const k = 7
	warmL1(t, reader, k)

	w := &worker{hn: writer}
	if byPattern {
		w.write(ctx, groupKeys(k/groupSize, tr.keys), k/groupSize)
	} else {
		w.write(ctx, []int{k}, -1)
	}
	w.done()
	if tr.version(k) != 1 {
		t.Fatalf("version of key %d = %d after one write; want 1", k, tr.version(k))
	}
	if h.mon != nil {
		// Wait for the event, not for time: the reader's log must show the
		// invalidation applied.
		deadline := time.Now().Add(10 * time.Second)
		for !appliedOn(reader.log, k, 1) {
			if time.Now().After(deadline) {
				t.Fatal("the invalidation never reached node 0")
			}
			h.mon.sync(50 * time.Millisecond)
		}
	}
	r := &worker{hn: reader}
	t0 := time.Now()
	v, err := reader.node.get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	r.p.Reads++
	reader.log.check(k, v.Version, tr.rel(t0))
	r.done()
	return h.finish(), v
}

func appliedOn(l *nodeLog, k int, v uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.byKey[k] {
		if e.covered >= v {
			return true
		}
	}
	return false
}

// TestNoBusServesStale shows that the checker catches the stale read the
// bus prevents: without it, node 0 serves the old version from L1 after
// the write's invalidation returned; with it, never.
func TestNoBusServesStale(t *testing.T) {
	for _, byPattern := range []bool{false, true} {
		name := map[bool]string{false: "key", true: "pattern"}[byPattern]
		t.Run(name+"/no bus", func(t *testing.T) {
			p, v := scriptedInvalidation(t, "tiercache, no bus", byPattern)
			if v.Version != 0 || p.Stale != 1 || p.Late != 0 {
				t.Fatalf("read version %d, %d stale, %d late; want version 0 from L1 counted as 1 stale read", v.Version, p.Stale, p.Late)
			}
		})
		t.Run(name+"/bus", func(t *testing.T) {
			p, v := scriptedInvalidation(t, "tiercache", byPattern)
			if v.Version != 1 || p.Stale != 0 || p.Late != 0 || len(p.Broken) > 0 {
				t.Fatalf("read version %d, %d stale, %d late, broken %v; want version 1, no stale or late read", v.Version, p.Stale, p.Late, p.Broken)
			}
			if p.Lag.count() == 0 {
				t.Errorf("no propagation lag measured")
			}
		})
	}
}

// TestCheckerVerdicts drives the checker through each verdict (fine, stale,
// late) as docs/guarantees.md defines them.
func TestCheckerVerdicts(t *testing.T) {
	tr, err := newTruth(newMemArena(arenaWords(10)), 10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	now := func() int64 { return tr.rel(time.Now()) }
	const k = 3
	l := newNodeLog(tr, 0, propMessages)
	none := newNodeLog(tr, 0, propNone)

	before := now()
	v := tr.commit(k, 1) // committed by node 1, invalidation in progress
	l.check(k, 0, now())
	none.check(k, 0, now())
	if l.stale.Load()+l.late.Load()+none.stale.Load() != 0 {
		t.Fatal("a read during the write's own invalidation call was counted")
	}
	tr.issued(k, v)
	l.check(k, 0, before) // began before the invalidation returned
	if l.stale.Load()+l.late.Load() != 0 {
		t.Fatal("a read that began before the invalidation returned was counted")
	}
	l.check(k, 0, now())
	if l.late.Load() != 1 || l.stale.Load() != 0 {
		t.Fatalf("old value, not yet delivered: %d late, %d stale; want 1 late", l.late.Load(), l.stale.Load())
	}
	none.check(k, 0, now())
	if none.stale.Load() != 1 {
		t.Fatalf("old value from a cache that never tells other nodes: %d stale; want 1", none.stale.Load())
	}
	l.applied(k, v, v, now())
	l.check(k, 0, now())
	if l.stale.Load() != 1 {
		t.Fatalf("old value after the node applied the invalidation: %d stale; want 1", l.stale.Load())
	}
	l.check(k, v, now())
	if l.stale.Load() != 1 || l.late.Load() != 1 {
		t.Fatal("a read of the current version was counted")
	}

	// A deferred log (a bus monitor): a read after an unmapped delivery
	// waits for it, then is judged with it.
	d := newNodeLog(tr, 0, propMessages)
	d.deferred = true
	d.received(now(), time.Microsecond)
	d.check(k, 0, now())
	if got := d.stale.Load() + d.late.Load(); got != 0 || len(d.pending) != 1 {
		t.Fatalf("read judged (%d) before its log was complete", got)
	}
	if !d.mapNext(func(at int64, lag time.Duration) error {
		d.appliedLocked(k, v, v, at)
		return nil
	}) {
		t.Fatal("mapNext found nothing to map")
	}
	if d.stale.Load() != 1 {
		t.Fatalf("after mapping: %d stale; want 1", d.stale.Load())
	}
}

// TestWriteLogRing checks the write log's lookups against the times the
// writes were made.
func TestWriteLogRing(t *testing.T) {
	tr, err := newTruth(newMemArena(arenaWords(10)), 10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	const k = 5
	v1 := tr.commit(k, 2)
	sent := tr.rel(time.Now())
	tr.issued(k, v1)
	after := tr.rel(time.Now())
	if got := tr.sentBy(k, 2, sent); got != v1 {
		t.Errorf("sentBy(writer 2, during the call) = %d; want %d", got, v1)
	}
	if got := tr.sentBy(k, 1, sent); got != 0 {
		t.Errorf("sentBy(writer 1) = %d; want 0", got)
	}
	if got := tr.issuedBy(k, after); got != v1 {
		t.Errorf("issuedBy(after) = %d; want %d", got, v1)
	}
	if got := tr.claimOldest(k, 2); got != v1 {
		t.Errorf("claimOldest = %d; want %d", got, v1)
	}
	if got := tr.claimOldest(k, 2); got != 0 {
		t.Errorf("second claimOldest = %d; want 0 (claimed)", got)
	}
	for range 2 * ringSize {
		tr.issued(k, tr.commit(k, 0))
	}
	if _, ok := tr.entry(k, v1); ok {
		t.Error("an entry older than the ring is still found")
	}
	if !tr.supersededBefore(k, v1, tr.rel(time.Now())) {
		t.Error("a version older than the ring is not taken as superseded")
	}
	for _, id := range []int{0, 9, 10, 12345} {
		if got := parseKeyID("prefix:" + keyID(id)); got != id {
			t.Errorf("parseKeyID(keyID(%d)) = %d", id, got)
		}
	}
	if got := parseGroupPattern("v:" + groupPattern(42)); got != 42 {
		t.Errorf("parseGroupPattern = %d; want 42", got)
	}
}

// joinedFlightRead runs the sequence that decides whether a Fetch that
// starts after its node applied an invalidation can receive the value of
// a load that began before it: node 0 starts loading key k (the source
// read version 0 and the load is held), node 1 writes version 1 and
// invalidates k, node 0 applies it, then a second Fetch of k starts on
// node 0 while the first load is still held. It returns that second read's
// verdicts and the version it got.
func joinedFlightRead(t *testing.T) (*partial, value) {
	h, tr := newScriptHost(t, "tiercache")
	ctx := context.Background()
	reader, writer := h.nodes[0], h.nodes[1]
	const k = 3
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tr.gate = func(key int) {
		if key == k {
			once.Do(func() { close(entered); <-release })
		}
	}
	first := make(chan error, 1)
	go func() {
		_, err := reader.node.get(ctx, k)
		first <- err
	}()
	<-entered

	w := &worker{hn: writer}
	w.write(ctx, []int{k}, -1)
	w.done()
	deadline := time.Now().Add(10 * time.Second)
	for !appliedOn(reader.log, k, 1) {
		if time.Now().After(deadline) {
			t.Fatal("the invalidation never reached node 0")
		}
		h.mon.sync(50 * time.Millisecond)
	}

	second := make(chan value, 1)
	t0 := time.Now()
	go func() {
		v, err := reader.node.get(ctx, k)
		if err != nil {
			t.Error(err)
		}
		second <- v
	}()
	// Let the second read either join the held load or start its own: wait
	// until one of the two shows in the node's counters.
	tn := reader.node.(*tieredNode)
	for tn.c.Stats().Collapsed == 0 && tr.keyLoads(k) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the second read neither joined the held load nor started one")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	v := <-second
	r := &worker{hn: reader}
	r.p.Reads++
	reader.log.check(k, v.Version, tr.rel(t0))
	r.done()
	return h.finish(), v
}

// TestNoStaleReadThroughJoinedFlight: a read that begins after its node
// applied an invalidation must not get the value of a load that began
// before it (the invalidation detaches the load in flight); if it did, it
// would return version 0, a stale read by the definition in
// docs/guarantees.md, which the harness's checker must then count.
func TestNoStaleReadThroughJoinedFlight(t *testing.T) {
	p, v := joinedFlightRead(t)
	switch {
	case v.Version == 1 && p.Stale == 0:
	case v.Version == 0 && p.Stale == 1:
		t.Fatal("a read that began after the invalidation joined the load that began before it: a stale read")
	default:
		t.Fatalf("read version %d with %d stale reads: the checker and the value disagree", v.Version, p.Stale)
	}
}

// TestStaleAge drives the checker through a write log whose times are
// known, so that every stale read's age is known: the read's start less
// the return of the invalidation call that made its value stale (the
// oldest such, if several newer writes returned before the read).
func TestStaleAge(t *testing.T) {
	tr, err := newTruth(newMemArena(arenaWords(10)), 10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	const k = 3
	v1 := tr.commitAt(k, 1, ms(100))
	tr.issuedAt(k, v1, ms(110))

	l := newNodeLog(tr, 0, propMessages)
	l.applied(k, v1, 0, ms(115))
	l.check(k, 0, ms(160)) // stale, 50ms after the invalidation returned
	l.check(k, 0, ms(130)) // stale, 20ms
	l.check(k, 0, ms(105)) // during the write's own call: not counted
	v2 := tr.commitAt(k, 1, ms(200))
	tr.issuedAt(k, v2, ms(210))
	l.applied(k, v2, 0, ms(215))
	l.check(k, 0, ms(300))  // stale since v1's invalidation: 190ms
	l.check(k, v1, ms(300)) // stale since v2's: 90ms
	late := newNodeLog(tr, 0, propMessages)
	late.check(k, 0, ms(300)) // nothing applied here: late, no age

	stale, lateN, _, _, age, _ := l.finish()
	if stale != 4 || lateN != 0 {
		t.Fatalf("%d stale, %d late; want 4 stale", stale, lateN)
	}
	if age.max != 190*time.Millisecond || age.maxLow || age.hist.count() != 4 {
		t.Fatalf("oldest stale read %v (lower bound %v) of %d; want exactly 190ms of 4", age.max, age.maxLow, age.hist.count())
	}
	if p := age.hist.quantile(0.99); p < 178*time.Millisecond || p > 190*time.Millisecond {
		t.Errorf("p99 of the ages %v; want 190ms within the histogram's 6%%", p)
	}
	if p := age.hist.quantile(0.5); p < 84*time.Millisecond || p > 90*time.Millisecond {
		t.Errorf("median of the ages %v; want 90ms within 6%%", p)
	}
	if _, n, _, _, a, _ := late.finish(); n != 1 || a.hist.count() != 0 {
		t.Errorf("a late read: %d late, %d ages; want 1 late and no age", n, a.hist.count())
	}

	// A cache that never tells other nodes: its stale reads have ages too.
	none := newNodeLog(tr, 1, propNone)
	none.check(k, 0, ms(135))
	if s, _, _, _, a, _ := none.finish(); s != 1 || a.max != 25*time.Millisecond {
		t.Errorf("no propagation: %d stale, age %v; want 1 of 25ms", s, a.max)
	}

	// A deferred log judges the read later, with the age of when it began.
	d := newNodeLog(tr, 0, propMessages)
	d.deferred = true
	d.received(ms(112), time.Millisecond)
	d.check(k, 0, ms(170))
	d.mapNext(func(at int64, lag time.Duration) error {
		d.appliedLocked(k, v2, 0, at)
		return nil
	})
	if s, _, _, _, a, _ := d.finish(); s != 1 || a.max != 60*time.Millisecond {
		t.Errorf("deferred: %d stale, age %v; want 1 of 60ms", s, a.max)
	}

	// Once the ring has lost the write that made a value stale, the age is
	// a lower bound, from the oldest write the ring still holds.
	const k2 = 5
	w1 := tr.commitAt(k2, 1, ms(100))
	tr.issuedAt(k2, w1, ms(110))
	for i := range int64(2 * ringSize) {
		tr.issuedAt(k2, tr.commitAt(k2, 1, ms(200+10*i)), ms(201+10*i))
	}
	oldest := int64(-1)
	for u := tr.version(k2); u > 0; u-- {
		if w, ok := tr.entry(k2, u); ok {
			oldest = w.issued
		}
	}
	r := newNodeLog(tr, 1, propNone)
	r.check(k2, 0, ms(1000))
	if _, _, _, _, a, _ := r.finish(); !a.maxLow || a.max != time.Duration(ms(1000)-oldest) {
		t.Errorf("after the ring wrapped: age %v (lower bound %v); want at least %v", a.max, a.maxLow, time.Duration(ms(1000)-oldest))
	}

	// Merging keeps the oldest, and whether it is a bound.
	var m staleAge
	m.record(10*time.Millisecond, true)
	other := staleAge{}
	other.record(30*time.Millisecond, false)
	m.merge(&other)
	if m.max != 30*time.Millisecond || !m.maxLow || m.hist.count() != 2 {
		t.Errorf("merged: max %v lower bound %v of %d; want 30ms, a bound, of 2", m.max, m.maxLow, m.hist.count())
	}
}
