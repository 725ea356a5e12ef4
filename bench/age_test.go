package main

import (
	"strings"
	"testing"
	"time"
)

// The oldest stale age is a lower bound as soon as any age is: the read
// whose write the log lost may be far older than the oldest exact one.
func TestStaleAgeAnyBound(t *testing.T) {
	tr, err := newTruth(newMemArena(arenaWords(10)), 10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	l := newNodeLog(tr, 0, propNone)
	const a, b = 1, 2
	tr.issuedAt(a, tr.commitAt(a, 1, relMs(950)), relMs(960)) // key a: stale for 40ms, exactly
	tr.issuedAt(b, tr.commitAt(b, 1, relMs(100)), relMs(110)) // key b: stale since 110ms (890ms)...
	for i := range int64(ringSize) {                          // ...but later writes push that write out of the log
		tr.issuedAt(b, tr.commitAt(b, 1, relMs(980)+i*1000), relMs(981)+i*1000)
	}
	l.check(a, 0, relMs(1000))
	l.check(b, 0, relMs(1000))
	stale, _, _, _, age, _ := l.finish()
	r := &result{Stale: stale, StaleAgeMax: age.max, StaleAgeP99: age.hist.quantile(0.99), StaleAgeLowerBound: age.maxLow}
	if cell := staleAgeCell(r); stale != 2 || !strings.HasPrefix(cell, "≥") {
		t.Errorf("%d stale, age cell %q; want 2, and the oldest age marked as a lower bound", stale, cell)
	}
	// Merging keeps the mark, whichever side has it.
	var m staleAge
	m.record(time.Duration(relMs(50)), true)
	m.merge(&age)
	if !m.maxLow {
		t.Error("merging lost the lower-bound mark")
	}
}
