package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestInterleave: every system once per round, in order, round after
// round.
func TestInterleave(t *testing.T) {
	if got := interleave(3, 2); !slices.Equal(got, []int{0, 1, 2, 0, 1, 2}) {
		t.Errorf("interleave(3, 2) = %v; want A B C A B C", got)
	}
	if got := interleave(2, 1); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("interleave(2, 1) = %v", got)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs       []float64
		m        float64
		min, max float64
	}{
		{[]float64{5}, 5, 5, 5},
		{[]float64{9, 1, 5}, 5, 1, 9},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{7, 7, 1}, 7, 1, 7},
	} {
		in := slices.Clone(tc.xs)
		m, sp := median(tc.xs)
		if m != tc.m || sp != (span{tc.min, tc.max}) {
			t.Errorf("median(%v) = %v, %v; want %v, [%v %v]", tc.xs, m, sp, tc.m, tc.min, tc.max)
		}
		if !slices.Equal(in, tc.xs) {
			t.Errorf("median changed its input: %v", tc.xs)
		}
	}
}

// TestCombineRounds: every figure of the combined result is that figure's
// median over the rounds that ran (the stale ones their highest), nested per-phase figures included, with
// its spread; flags and troubles of any round are kept.
func TestCombineRounds(t *testing.T) {
	mk := func(ops float64, p99 time.Duration, stale uint64, warmErr uint64) *result {
		return &result{Scenario: "outage", Cache: "c", Config: "cfg", Throughput: ops, P99: p99, Stale: stale,
			Timeline: []uint64{uint64(ops)},
			Outage:   &outageResult{WarmErrors: [phases]uint64{0, warmErr, 0, 0}, P99: [phases]time.Duration{p99, 2 * p99, 0, 0}}}
	}
	a, b, c := mk(100, 3*time.Millisecond, 5, 0), mk(300, time.Millisecond, 1, 9), mk(200, 2*time.Millisecond, 9, 4)
	b.StaleAgeLowerBound = true
	c.Broken = []string{"round 3 trouble"}
	skipped := &result{Scenario: "outage", Cache: "c", Skipped: "failed: boom"}
	r := combineRounds([]*result{a, b, skipped, c})
	if r.Throughput != 200 || r.P99 != 2*time.Millisecond || r.Stale != 9 {
		t.Errorf("medians: %v ops/s, p99 %v, %d stale (the highest); want 200, 2ms, 9", r.Throughput, r.P99, r.Stale)
	}
	if r.Outage == nil || r.Outage.WarmErrors[phaseFailing] != 4 || r.Outage.P99[phaseFailing] != 4*time.Millisecond {
		t.Fatalf("per-phase medians: %+v; want 4 errors on keys cached before and p99 4ms in the failing phase", r.Outage)
	}
	if sp := r.Spread["ops_per_sec"]; sp != (span{100, 300}) {
		t.Errorf("spread of ops/s %v; want 100-300", sp)
	}
	if sp := r.Spread["outage.warm_errors[1]"]; sp != (span{0, 9}) {
		t.Errorf("spread of the failing phase's errors on keys cached before %v; want 0-9 (have %v)", sp, r.Spread)
	}
	if r.Rounds != 3 || len(r.Runs) != 4 || r.Cache != "c" || r.Config != "cfg" || r.Skipped != "" {
		t.Errorf("rounds %d, runs %d, cache %q, config %q, skipped %q", r.Rounds, len(r.Runs), r.Cache, r.Config, r.Skipped)
	}
	if !r.StaleAgeLowerBound || !slices.Contains(r.Broken, "round 3 trouble") || !slices.ContainsFunc(r.Broken, func(s string) bool { return strings.Contains(s, "1 of 4 rounds did not run") }) {
		t.Errorf("flags and troubles lost: lower bound %v, broken %q", r.StaleAgeLowerBound, r.Broken)
	}
	if !slices.Equal(r.Timeline, []uint64{200}) {
		t.Errorf("timeline %v; want the median round's", r.Timeline)
	}
	if one := combineRounds([]*result{a}); one != a || one.Spread != nil {
		t.Error("one round is not returned as it is")
	}
	if none := combineRounds([]*result{skipped, skipped}); none.Skipped == "" {
		t.Error("no round ran, yet the result is not skipped")
	}
	cell := spreadCell(r, "ops_per_sec", fmtCount, r.Throughput)
	if cell != "200 (100–300)" {
		t.Errorf("cell %q; want \"200 (100–300)\"", cell)
	}
}

// TestRoundsRun runs two interleaved rounds of two caches and checks that
// each cache has one result holding both rounds, in the report and the
// Markdown.
func TestRoundsRun(t *testing.T) {
	rep, md := runJSON(t, append([]string{"-miniredis", "-rounds", "2"}, quickArgs...)...)
	if rep.Rounds != 2 || len(rep.Results) != 2 {
		t.Fatalf("%d rounds, %d results; want 2 and one per cache", rep.Rounds, len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Skipped != "" {
			t.Fatalf("%s skipped: %s", r.Cache, r.Skipped)
		}
		checkConsistent(t, r)
		if r.Rounds != 2 || len(r.Runs) != 2 || r.Spread["ops_per_sec"].Max < r.Throughput {
			t.Errorf("%s: %d rounds, %d runs, spread %v of %v ops/s", r.Cache, r.Rounds, len(r.Runs), r.Spread["ops_per_sec"], r.Throughput)
		}
	}
	if !strings.Contains(md, "median of 2 interleaved rounds") {
		t.Error("the Markdown does not say its figures are medians")
	}
}

// One round's stale reads are not outvoted by rounds that had none: the
// stale count and ages are the highest over rounds.
func TestRoundsKeepStale(t *testing.T) {
	mk := func(stale uint64, age time.Duration, low bool) *result {
		return &result{Scenario: "zipf", Cache: "tiercache", Throughput: 1, Stale: stale, StaleAgeMax: age, StaleAgeP99: age / 2, StaleAgeLowerBound: low}
	}
	r := combineRounds([]*result{mk(0, 0, false), mk(0, 0, false), mk(7, 80*time.Millisecond, true)})
	if r.Stale != 7 || r.StaleAgeMax != 80*time.Millisecond || r.StaleAgeP99 != 40*time.Millisecond || !r.StaleAgeLowerBound {
		t.Errorf("combined: %d stale, age max %v p99 %v (bound %v); want 7, 80ms, 40ms, a bound", r.Stale, r.StaleAgeMax, r.StaleAgeP99, r.StaleAgeLowerBound)
	}
	if cell := staleAgeCell(r); !strings.HasPrefix(cell, "≥80ms") {
		t.Errorf("age cell %q; want the 80ms of the round that had stale reads", cell)
	}
	if line := leadLine([]*result{r, {Scenario: "zipf", Cache: "peer", Throughput: 1}}); !strings.Contains(line, "7 stale reads") {
		t.Errorf("lead line %q does not give the 7 stale reads", line)
	}
}
