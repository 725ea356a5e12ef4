package bus

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestOwnBeatIsMonotonic: the time of this node's last own heartbeat, from
// which its silence is measured, carries a monotonic reading, so a step of
// the wall clock (NTP, a VM resumed) neither hides three missing heartbeats
// nor reports them when they arrived. Before, it was stored as wall-clock
// Unix nanoseconds: a step back of an hour kept the check off for an hour,
// a step forward made the next check report the subscription lost.
func TestOwnBeatIsMonotonic(t *testing.T) {
	r := receiver{b: &Bus{opts: Options{Heartbeat: time.Second}}, start: time.Now()}
	r.ownBeat()
	// time.Time.String ends in "m=±<value>" if and only if the time has a
	// monotonic clock reading.
	if s := r.lastBeat().String(); !strings.Contains(s, " m=") {
		t.Errorf("last own heartbeat at %s: no monotonic reading", s)
	}
	if r.silent() {
		t.Error("silent right after an own heartbeat")
	}
}

// TestSilentAfterThreeBeats: silence is reported once three heartbeats
// pass without one of this node's own, and not before.
func TestSilentAfterThreeBeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := receiver{b: &Bus{opts: Options{Heartbeat: time.Second}}, start: time.Now()}
		time.Sleep(2 * time.Second)
		r.ownBeat()
		time.Sleep(3 * time.Second)
		if r.silent() {
			t.Error("silent 3s after an own heartbeat; want silent only after more than 3s")
		}
		time.Sleep(time.Millisecond)
		if !r.silent() {
			t.Error("not silent 3.001s after an own heartbeat")
		}
		r.ownBeat()
		if r.silent() {
			t.Error("silent right after an own heartbeat")
		}
	})
}

// TestWaitHealthyGivesUpCleanly: a WaitHealthy whose ctx ends takes its
// channel back, so that calls timing out while the subscription is down
// do not pile up until it comes back.
func TestWaitHealthyGivesUpCleanly(t *testing.T) {
	b := &Bus{ctx: t.Context()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		if err := b.WaitHealthy(ctx); err != context.Canceled {
			t.Fatalf("WaitHealthy(cancelled) = %v", err)
		}
	}
	if n := len(b.waiters); n != 0 {
		t.Fatalf("%d waiters kept after their calls gave up; want 0", n)
	}
}
