package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// TestOutagePhases: the source of truth's phases follow the time since the
// run's start as the arena holds it, loads fail in the failing phase and
// take ten times the latency in the slow one, and a key counts as cached
// before the outage only if a load of it succeeded before the failing
// phase began.
func TestOutagePhases(t *testing.T) {
	tr, err := newTruth(newMemArena(arenaWords(10)), 10, time.Millisecond, 1)
	if err != nil {
		t.Fatal(err)
	}
	const p = time.Hour // phases far longer than the test: no verdict depends on timing
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	if got := tr.phaseAt(ms(5)); got != phaseNone {
		t.Fatalf("phase without an outage = %d; want none", got)
	}
	tr.setOutage(ms(1000), p)
	for _, tc := range []struct {
		at   int64
		want int
	}{
		{ms(999), phaseNone}, {ms(1000), phaseBefore}, {ms(1000) + int64(p) - 1, phaseBefore},
		{ms(1000) + int64(p), phaseFailing}, {ms(1000) + 2*int64(p), phaseSlow},
		{ms(1000) + 3*int64(p), phaseAfter}, {ms(1000) + 9*int64(p), phaseAfter},
	} {
		if got := tr.phaseAt(tc.at); got != tc.want {
			t.Errorf("phaseAt(%v) = %d; want %d", time.Duration(tc.at), got, tc.want)
		}
	}
	if tr.latencyIn(phaseSlow) != 10*time.Millisecond || tr.latencyIn(phaseBefore) != time.Millisecond || tr.latencyIn(phaseFailing) != time.Millisecond {
		t.Errorf("latencies before/failing/slow %v/%v/%v; want 1ms/1ms/10ms", tr.latencyIn(phaseBefore), tr.latencyIn(phaseFailing), tr.latencyIn(phaseSlow))
	}

	// Loads, with the phases placed around now.
	tr.latency = 0
	ctx := context.Background()
	at := func(phase float64) { tr.setOutage(tr.rel(time.Now())-int64(phase*float64(p)), p) }
	at(0.5) // before
	if _, err := tr.load(ctx, 1); err != nil {
		t.Fatalf("load before the outage: %v", err)
	}
	at(1.5) // failing
	if _, err := tr.load(ctx, 2); !errors.Is(err, errOutage) {
		t.Fatalf("load in the failing phase: %v; want the outage's error", err)
	}
	if tr.loads() != 2 || tr.distinct() != 1 {
		t.Errorf("%d loads, %d distinct; want the failed load counted as a call, not as a value", tr.loads(), tr.distinct())
	}
	first := int64(tr.a.load(tr.keyBase(1) + kFirst))
	if first == 0 || tr.a.load(tr.keyBase(2)+kFirst) != 0 {
		t.Fatalf("first successful loads: key 1 at %d, key 2 at %d; want key 1 stamped, key 2 not", first, tr.a.load(tr.keyBase(2)+kFirst))
	}
	// Place the failing phase's start just after key 1's load, then on it.
	tr.setOutage(first+1-int64(p), p)
	if !tr.cachedBefore(1) || tr.cachedBefore(2) {
		t.Errorf("cached before: key 1 %v, key 2 %v; want true, false", tr.cachedBefore(1), tr.cachedBefore(2))
	}
	tr.setOutage(first-int64(p), p)
	if tr.cachedBefore(1) {
		t.Error("a key first loaded as the failing phase began counts as cached before it")
	}
	at(2.5) // slow
	if _, err := tr.load(ctx, 3); err != nil {
		t.Fatalf("load in the slow phase: %v", err)
	}
	at(3.5)
	if _, err := tr.load(ctx, 2); err != nil {
		t.Errorf("load after the outage: %v", err)
	}
	if stamp := int64(tr.a.load(tr.keyBase(1) + kFirst)); stamp != first {
		t.Errorf("key 1's first load moved from %d to %d", first, stamp)
	}
	tr.reset()
	if tr.phaseAt(tr.rel(time.Now())) != phaseNone {
		t.Error("reset left the outage set")
	}
}

// failingNode is a cacheNode whose reads of the keys in fail fail.
type failingNode struct {
	cacheNode
	fail map[int]bool
}

func (n failingNode) get(ctx context.Context, k int) (value, error) {
	if n.fail[k] {
		return value{}, errors.New("down")
	}
	return value{ID: keyID(k)}, nil
}

// TestOutageAccounting: each read lands in the phase it began in, errors
// and latencies split by whether the key was cached before the outage; an
// error of a read the run's end cut short is not counted; the figures
// cross processes as JSON and merge.
func TestOutageAccounting(t *testing.T) {
	tr, err := newTruth(newMemArena(arenaWords(10)), 10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	const p = time.Hour
	ctx := context.Background()
	// Key 1 was first loaded long before the outage (phases an hour long
	// reach before the arena's base: relative times are negative there).
	tr.a.store(tr.keyBase(1)+kFirst, uint64(tr.rel(time.Now())-10*int64(p)))
	tr.setOutage(tr.rel(time.Now())-int64(p/2), p) // the before phase
	hn := &hostedNode{ne: &nodeEnv{t: tr}, log: newNodeLog(tr, 0, propNone),
		node: failingNode{fail: map[int]bool{1: true, 2: true}}}
	w := &worker{hn: hn}
	w.read(ctx, 3)                                   // before: a read that works
	tr.setOutage(tr.rel(time.Now())-int64(p+p/2), p) // failing
	w.read(ctx, 1)                                   // an error on a key cached before
	w.read(ctx, 2)                                   // an error on a key never loaded
	w.read(ctx, 3)
	cut, cancel := context.WithCancel(ctx)
	cancel()
	w.read(cut, 2)                                     // the run ended under it: not counted
	tr.setOutage(tr.rel(time.Now())-int64(3*p+p/2), p) // after
	w.read(ctx, 1)
	w.done()

	o := hn.acc.Outage
	if o == nil {
		t.Fatal("no outage figures recorded")
	}
	want := [phases][4]uint64{{1, 0, 0, 0}, {3, 2, 1, 1}, {0, 0, 0, 0}, {1, 1, 1, 1}} // reads, errors, warm reads, warm errors
	for i, ph := range o.Phases {
		got := [4]uint64{ph.Reads, ph.Errors, ph.WarmReads, ph.WarmErrors}
		if got != want[i] || ph.Lat.count() != ph.Reads || ph.WarmLat.count() != ph.WarmReads {
			t.Errorf("phase %s: reads, errors, warm reads, warm errors = %v (latencies %d, %d); want %v", phaseNames[i], got, ph.Lat.count(), ph.WarmLat.count(), want[i])
		}
	}
	if hn.acc.Errors != 3 || hn.acc.Reads != 2 {
		t.Errorf("%d errors, %d reads in all; want 3 and 2", hn.acc.Errors, hn.acc.Reads)
	}

	b, err := json.Marshal(&hn.acc)
	if err != nil {
		t.Fatal(err)
	}
	var back partial
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var sum partial
	sum.merge(&back)
	sum.merge(&hn.acc)
	cfg, err := parseFlags(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newOutageResult(cfg, sum.Outage, 7)
	if r.Errors != [phases]uint64{0, 4, 0, 2} || r.WarmErrors != [phases]uint64{0, 2, 0, 2} || r.warmErrorsAll() != 4 || r.Fallbacks != 7 {
		t.Errorf("merged twice: errors %v, on keys cached before %v (%d in all); want [0 4 0 2], [0 2 0 2], 4", r.Errors, r.WarmErrors, r.warmErrorsAll())
	}
	if r.SoftTimeout != 2*cfg.latency {
		t.Errorf("soft timeout %v; want twice the load latency", r.SoftTimeout)
	}
}
