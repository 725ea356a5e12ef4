package main

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestHistQuantiles checks percentiles of a known distribution against the
// histogram's stated precision.
func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 100000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 100000 * float64(time.Microsecond)
		got := float64(h.quantile(q))
		if math.Abs(got-want)/want > 0.0625 {
			t.Errorf("quantile(%v) = %v; want within 6.25%% of %v", q, time.Duration(got), time.Duration(want))
		}
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Error("quantile of an empty histogram is not 0")
	}
	b, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var back hist
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != h {
		t.Error("histogram changed through JSON")
	}
	if err := json.Unmarshal([]byte(`{"buckets":[5000],"counts":[1]}`), &back); err == nil {
		t.Error("a bucket out of range was accepted")
	}
	var m hist
	m.merge(&h)
	m.merge(&h)
	if m.count() != 2*h.count() || m.quantile(0.5) != h.quantile(0.5) {
		t.Error("merging a histogram twice changed its median or lost samples")
	}
}

// TestHistMeanAndShare checks the mean and the fraction of samples above
// a latency against exact figures: 9,000 reads of 1µs and 1,000 of 2ms.
func TestHistMeanAndShare(t *testing.T) {
	var h hist
	if h.mean() != 0 || h.fracAbove(time.Millisecond) != 0 {
		t.Error("an empty histogram has a mean or a share")
	}
	for range 9000 {
		h.record(time.Microsecond)
	}
	for range 1000 {
		h.record(2 * time.Millisecond)
	}
	within := func(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }
	wantMean := (9000*1e3 + 1000*2e6) / 10000.0
	if got := float64(h.mean()); !within(got, wantMean, 0.04) {
		t.Errorf("mean = %v; want within 4%% of %v", h.mean(), time.Duration(wantMean))
	}
	if got := h.fracAbove(time.Millisecond); got != 0.1 {
		t.Errorf("fracAbove(1ms) = %v; want 0.1", got)
	}
	if got := h.fracAbove(time.Nanosecond); got != 1 {
		t.Errorf("fracAbove(1ns) = %v; want 1", got)
	}
	if got := h.fracAbove(time.Second); got != 0 {
		t.Errorf("fracAbove(1s) = %v; want 0", got)
	}
}
