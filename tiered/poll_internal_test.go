package tiered

import (
	"testing"
	"time"
)

// TestPollLimit: a lease wait polls up to every quarter of the group's
// typical load time, within [firstPoll, lastPoll], and at lastPoll until a
// load time is known; the typical load time follows new loads.
func TestPollLimit(t *testing.T) {
	var l loadTime
	if got := l.pollLimit(); got != lastPoll {
		t.Fatalf("no load time known: limit %v; want %v", got, lastPoll)
	}
	l.add(0) // an injected clock that did not move: ignored
	if got := l.pollLimit(); got != lastPoll {
		t.Fatalf("after a zero load time: limit %v; want %v", got, lastPoll)
	}
	l.add(8 * time.Millisecond)
	if got := l.pollLimit(); got != 2*time.Millisecond {
		t.Fatalf("8ms loads: limit %v; want 2ms", got)
	}
	for range 200 {
		l.add(100 * time.Microsecond)
	}
	if got := l.pollLimit(); got != firstPoll {
		t.Fatalf("100µs loads: limit %v; want the first poll %v", got, firstPoll)
	}
	for range 200 {
		l.add(time.Second)
	}
	if got := l.pollLimit(); got != lastPoll {
		t.Fatalf("1s loads: limit %v; want %v", got, lastPoll)
	}
	for range 200 {
		l.add(12 * time.Millisecond)
	}
	if got := l.pollLimit(); got < 2900*time.Microsecond || got > 3100*time.Microsecond {
		t.Fatalf("12ms loads after 1s ones: limit %v; want about 3ms", got)
	}
}
