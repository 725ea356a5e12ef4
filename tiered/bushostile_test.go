package tiered_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/glob"
	"github.com/tiercache/tiercache/tiered"
)

// TestForgedTagStamp: one unsigned tags message with a stamp ahead of the
// node's clock (the largest int64, or 50 minutes ahead, for the
// namespace's tag) is not applied: it costs the node a flush, and the
// stamps are learnt again from Redis. Kept, it would make every value
// invalid until then with no TagClockSkew (each read removing the value
// from Redis), and with a skew the largest wrapped around and hid every
// later Clear from the node.
func TestForgedTagStamp(t *testing.T) {
	for _, tc := range []struct {
		skew  time.Duration
		stamp int64
	}{
		{0, math.MaxInt64},
		{time.Millisecond, math.MaxInt64},
		{0, time.Now().Add(50 * time.Minute).UnixMicro()},
	} {
		skew := tc.skew
		t.Run(fmt.Sprintf("skew=%v/stamp=%d", skew, tc.stamp), func(t *testing.T) {
			srv := startRedis(t)
			rdb := srv.Client(t)
			ctx := context.Background()
			o := tiered.Options{TagClockSkew: skew}
			a, b := newHardNode(t, srv.Addr(), o), newHardNode(t, srv.Addr(), o)
			if _, err := a.group.Fetch(ctx, "k", constLoader("v1")); err != nil {
				t.Fatal(err)
			}
			a.cache.WaitL1()
			malformed := a.cache.Stats().BusMalformed
			forged := bus.Encode(bus.Message{Kind: bus.KindTags, Origin: bus.NewNodeID(), Items: []string{fmt.Sprintf("%d:n", tc.stamp)}})
			if err := rdb.Publish(ctx, "hard:tiercache:bus", forged).Err(); err != nil {
				t.Fatal(err)
			}
			if !wait(a.received, 10*time.Second) {
				t.Fatal("node a never applied the forged message")
			}
			if n := a.cache.Stats().BusMalformed - malformed; n != 1 {
				t.Fatalf("%d malformed items counted; want the forged stamp's 1", n)
			}
			for range 3 { // neither L1 nor Redis loses v1 to it
				if v, err := a.group.Fetch(ctx, "k", constLoader("v2")); err != nil || v != "v1" {
					t.Fatalf("after the forged stamp: %q, %v; want v1 still valid", v, err)
				}
				a.cache.WaitL1()
			}
			if err := b.cache.Clear(ctx); err != nil {
				t.Fatal(err)
			}
			if !wait(a.received, 10*time.Second) {
				t.Fatal("node a never applied the Clear")
			}
			if v, err := a.group.Fetch(ctx, "k", constLoader("v2")); err != nil || v != "v2" {
				t.Fatalf("after a Clear that node a applied: %q, %v; want v2 loaded", v, err)
			}
		})
	}
}

// TestFlushDetachesLoads: an invalidation of a key too large for one
// message travels as a flush. A read that begins after node a applied it
// must not join a's load that read the key's old value before: it loads
// anew. With loads in flight kept on a flush (SetNoForget), the read joins
// the old load, which shows the test catches it.
func TestFlushDetachesLoads(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("forgetOff=%v", off), func(t *testing.T) {
			srv := startRedis(t)
			ctx := context.Background()
			a, b := newHardNode(t, srv.Addr(), tiered.Options{}), newHardNode(t, srv.Addr(), tiered.Options{})
			tiered.SetNoForget(a.cache, off)
			id := strings.Repeat("k", 70<<10) // past the bus's MaxMessageBytes
			if _, err := b.group.Fetch(ctx, id, constLoader("v1")); err != nil {
				t.Fatal(err)
			}
			var held atomic.Bool
			blocked, release := make(chan struct{}), make(chan struct{})
			tiered.SetHook(a.cache, func(point string) {
				if point == "read-done" && held.CompareAndSwap(false, true) {
					close(blocked)
					<-release
				}
			})
			first := make(chan string, 1)
			go func() { v, _ := a.group.Fetch(ctx, id, constLoader("x")); first <- v }()
			<-blocked // a's load read v1 and waits
			if err := b.group.Invalidate(ctx, id); err != nil {
				t.Fatal(err)
			}
			if !wait(a.received, 10*time.Second) {
				t.Fatal("node a never applied the flush")
			}
			collapsed := a.group.Stats().Collapsed
			got := make(chan string, 1)
			go func() { v, _ := a.group.Fetch(ctx, id, constLoader("v2")); got <- v }()
			v := readOrJoin(a.group, collapsed, got)
			close(release)
			<-first
			checkDetached(t, off, v, got)
		})
	}
}

// readOrJoin returns what a read begun on g delivers on got, or "joined"
// as soon as g counts one more collapsed read than collapsed: the read
// joined a load in flight.
func readOrJoin(g *tiered.Group[string], collapsed uint64, got <-chan string) string {
	for {
		select {
		case v := <-got:
			return v
		default:
			if g.Stats().Collapsed != collapsed {
				return "joined"
			}
			runtime.Gosched()
		}
	}
}

// checkDetached checks v, what a read begun after a flush got (readOrJoin):
// v2 from its own load; with loads kept on a flush (off), the old load
// joined, and then what that read delivers is drained from got.
func checkDetached(t *testing.T, off bool, v string, got <-chan string) {
	t.Helper()
	if off {
		if v != "joined" {
			t.Fatalf("loads kept on a flush: the read got %q; want it to join the old load", v)
		}
		<-got
		return
	}
	if v != "v2" {
		t.Fatalf("a read begun after the flush got %q; want v2 from its own load", v)
	}
}

// TestTagStampAheadDetachesLoads: a tags message whose stamp is ahead of
// the node's clock (Redis's clock runs ahead, or the stamp is forged) is
// not applied but flushes L1, and that flush stands for an invalidation:
// a read that begins after node a handled it must not join a's load that
// read the value before. Here the stamp is real (set in Redis, as an
// InvalidateTags on a server whose clock is a minute ahead would), so the
// read loads v2. With loads in flight kept on a flush (SetNoForget) it
// joins the old load, which shows the test catches it.
func TestTagStampAheadDetachesLoads(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("forgetOff=%v", off), func(t *testing.T) {
			srv := startRedis(t)
			rdb := srv.Client(t)
			ctx := context.Background()
			a, b := newHardNode(t, srv.Addr(), tiered.Options{}), newHardNode(t, srv.Addr(), tiered.Options{})
			tagged := tiered.GroupOptions{Tags: func(string, string) []string { return []string{"t1"} }}
			ga, gb := newGroup[string](t, a.cache, "tg", tagged), newGroup[string](t, b.cache, "tg", tagged)
			tiered.SetNoForget(a.cache, off)
			if _, err := gb.Fetch(ctx, "k", constLoader("v1")); err != nil {
				t.Fatal(err)
			}
			var held atomic.Bool
			blocked, release := make(chan struct{}), make(chan struct{})
			tiered.SetHook(a.cache, func(point string) {
				if point == "read-done" && held.CompareAndSwap(false, true) {
					close(blocked)
					<-release
				}
			})
			first := make(chan string, 1)
			go func() { v, _ := ga.Fetch(ctx, "k", constLoader("x")); first <- v }()
			<-blocked // a's read found v1 and waits
			now, err := rdb.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			stamp := now.Add(time.Minute).UnixMicro()
			if err := rdb.Set(ctx, "hard::tag:t:t1", stamp, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			msg := bus.Encode(bus.Message{Kind: bus.KindTags, Origin: bus.NewNodeID(), Items: []string{fmt.Sprintf("%d:t:t1", stamp)}})
			if err := rdb.Publish(ctx, "hard:tiercache:bus", msg).Err(); err != nil {
				t.Fatal(err)
			}
			if !wait(a.received, 10*time.Second) {
				t.Fatal("node a never handled the tags message")
			}
			collapsed := ga.Stats().Collapsed
			got := make(chan string, 1)
			go func() { v, _ := ga.Fetch(ctx, "k", constLoader("v2")); got <- v }()
			v := readOrJoin(ga, collapsed, got)
			close(release)
			<-first
			checkDetached(t, off, v, got)
		})
	}
}

// TestStampOutlivesFallbacks: a tag's stamp stays in Redis as long as the
// values it invalidated may: with FailSafe, an expired value stays TTL +
// FailSafe as a fallback, and a node that learns the tag's stamp from
// Redis must still find it then (else it would serve that value).
func TestStampOutlivesFallbacks(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	const failSafe = 2 * time.Hour
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "life", TTL: time.Minute})
	g := newGroup[string](t, c, "g", tiered.GroupOptions{TTL: time.Minute, FailSafe: failSafe, Tags: func(string, string) []string { return []string{"user:7"} }})
	if _, err := g.Fetch(ctx, "k", constLoader("v1")); err != nil {
		t.Fatal(err)
	}
	if err := c.InvalidateTags(ctx, "user:7"); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "life*:tag:*user:7").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("stamp keys of user:7: %v, %v; want one", keys, err)
	}
	if pttl := rdb.PTTL(ctx, keys[0]).Val(); pttl < time.Minute+failSafe {
		t.Fatalf("the stamp lives %v; want at least TTL + FailSafe (%v)", pttl, time.Minute+failSafe)
	}
}

// TestPatternBudgetAfterApplied: L1 keeps a pattern it applied to veto the
// fills of loads that began before it, and those checks draw on the
// pattern's work budget. Once they spent it, a fill of a key the pattern
// matches is still vetoed: the load's old value never enters L1. Without a
// budget (unbounded) the same holds, which is the behaviour to keep.
func TestPatternBudgetAfterApplied(t *testing.T) {
	for _, unbounded := range []bool{false, true} {
		t.Run(fmt.Sprintf("unbounded=%v", unbounded), func(t *testing.T) {
			srv := startRedis(t)
			ctx := context.Background()
			key, p := "g:long", "g:l*"
			_, used, _ := glob.Compile(p).MatchSteps(key, 1<<40)
			// Enough for the pattern's own pass over a's L1 (empty) and
			// flights (one key), not for the fill's check after it.
			o := tiered.WithPatternBudget(tiered.Options{}, 2*used-1, unbounded)
			a, b := newHardNode(t, srv.Addr(), o), newHardNode(t, srv.Addr(), o)
			if _, err := b.group.Fetch(ctx, "long", constLoader("v1")); err != nil {
				t.Fatal(err)
			}
			var held atomic.Bool
			blocked, release := make(chan struct{}), make(chan struct{})
			tiered.SetHook(a.cache, func(point string) {
				if point == "read-done" && held.CompareAndSwap(false, true) {
					close(blocked)
					<-release
				}
			})
			done := make(chan string, 1)
			go func() { v, _ := a.group.Fetch(ctx, "long", constLoader("x")); done <- v }()
			<-blocked // a's load read v1 before the pattern
			if err := b.cache.InvalidatePattern(ctx, p); err != nil {
				t.Fatal(err)
			}
			if !wait(a.received, 10*time.Second) { // counted once applied
				t.Fatal("node a never applied the pattern")
			}
			close(release)
			<-done
			a.cache.WaitL1()
			if v, err := a.group.Fetch(ctx, "long", constLoader("v2")); err != nil || v != "v2" {
				t.Fatalf("a read after node a applied the pattern: %q, %v; want v2", v, err)
			}
		})
	}
}

// TestPatternQueueDelayFlushes: a pattern that waited in node a's queue
// longer than a Heartbeat (the one before it held in its application) is
// not applied late: a flushes its L1 in its place, so no invalidation
// waits behind patterns longer than the bound of a missed message. Without
// the delay (the clock not moved), the pattern is applied and nothing is
// flushed, which shows the flush is the delay's doing.
func TestPatternQueueDelayFlushes(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", late), func(t *testing.T) {
			srv := startRedis(t)
			ctx := context.Background()
			clk := newManualClock(time.Now())
			started, release := make(chan struct{}, 1), make(chan struct{})
			o := tiered.WithPatternHook(tiered.Options{}, func(p string) {
				if p == "g:p1*" {
					started <- struct{}{}
					<-release
				}
			})
			a, b := newHardNode(t, srv.Addr(), tiered.WithClock(o, clk)), newHardNode(t, srv.Addr(), tiered.Options{})
			queued := make(chan struct{}, 8)
			tiered.SetHook(a.cache, func(point string) {
				if point == "pattern-queued" {
					queued <- struct{}{}
				}
			})
			for _, id := range []string{"p2x", "other"} {
				if _, err := a.group.Fetch(ctx, id, constLoader("v1")); err != nil {
					t.Fatal(err)
				}
			}
			a.cache.WaitL1()
			if err := b.cache.InvalidatePattern(ctx, "g:p1*"); err != nil {
				t.Fatal(err)
			}
			<-queued
			<-started // a applies p1, held
			if err := b.cache.InvalidatePattern(ctx, "g:p2*"); err != nil {
				t.Fatal(err)
			}
			<-queued // p2 waits behind p1
			if late {
				clk.Add(2 * tiered.DefaultHeartbeat)
			}
			close(release)
			for range 2 {
				if !wait(a.received, 10*time.Second) {
					t.Fatal("node a never applied both patterns")
				}
			}
			checkLatePattern(t, a, late)
		})
	}
}

// checkLatePattern checks node a once it applied g:p2*, which removes
// p2x: when the pattern was late, a flush stood in for it (other went too);
// else it was applied (other stayed) and nothing was flushed.
func checkLatePattern(t *testing.T, a *hardNode, late bool) {
	t.Helper()
	if _, ok := a.group.Peek("p2x"); ok {
		t.Fatal("node a still serves p2x from L1")
	}
	_, kept := a.group.Peek("other")
	select {
	case err := <-a.flushed:
		if !late || !strings.Contains(fmt.Sprint(err), "Heartbeat") {
			t.Fatalf("a flush (%v) with late=%v; want one only for the late pattern", err, late)
		}
		if kept {
			t.Fatal("the flush left other in L1")
		}
	default:
		if late {
			t.Fatal("the late pattern was applied; want a flush in its place")
		}
		if !kept {
			t.Fatal("applying p2 removed other from L1")
		}
	}
}

// TestPatternLateWithinMessage: the delay bound holds for each pattern, not
// only for each message: one message carries every pattern of a call (a
// call may pass hundreds), and when the first ones take their whole budgets,
// the rest are replaced by a flush once they have waited longer than a
// Heartbeat. Without the delay (the clock not moved), the second pattern is
// applied and nothing is flushed, which shows the flush is the delay's
// doing.
func TestPatternLateWithinMessage(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", late), func(t *testing.T) {
			srv := startRedis(t)
			ctx := context.Background()
			clk := newManualClock(time.Now())
			started, release := make(chan struct{}, 1), make(chan struct{})
			o := tiered.WithPatternHook(tiered.Options{}, func(p string) {
				if p == "g:p1*" {
					started <- struct{}{}
					<-release
				}
			})
			a, b := newHardNode(t, srv.Addr(), tiered.WithClock(o, clk)), newHardNode(t, srv.Addr(), tiered.Options{})
			for _, id := range []string{"p2x", "other"} {
				if _, err := a.group.Fetch(ctx, id, constLoader("v1")); err != nil {
					t.Fatal(err)
				}
			}
			a.cache.WaitL1()
			if err := b.cache.InvalidatePattern(ctx, "g:p1*", "g:p2*"); err != nil {
				t.Fatal(err)
			}
			<-started // a applies p1, held; p2 waits in the same message
			if late {
				clk.Add(2 * tiered.DefaultHeartbeat)
			}
			close(release)
			if !wait(a.received, 10*time.Second) {
				t.Fatal("node a never applied the message")
			}
			checkLatePattern(t, a, late)
		})
	}
}

// TestPatternLateFlushKeepsNewer: the flush that stands in for late
// patterns covers those queued before it, not one that arrives while it
// runs: that one is applied as usual, and the value it invalidated leaves
// node a's L1.
func TestPatternLateFlushKeepsNewer(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	clk := newManualClock(time.Now())
	started, release := make(chan struct{}, 1), make(chan struct{})
	flushing, flushed := make(chan struct{}, 1), make(chan struct{})
	received := make(chan struct{}, 64)
	var held atomic.Bool
	o := tiered.WithPatternHook(tiered.Options{}, func(p string) {
		if p == "g:p1*" {
			started <- struct{}{}
			<-release
		}
	})
	rdb := srv.Client(t)
	o.Redis, o.Namespace = rdb, "hard"
	o.Recorder = tiered.RecorderFunc(func(e tiered.Event) {
		switch e.Kind {
		case tiered.EventInvalidationReceived:
			received <- struct{}{}
		case tiered.EventPatternFlush:
			if held.CompareAndSwap(false, true) {
				flushing <- struct{}{}
				<-flushed // hold the late patterns' flush until p3 has come
			}
		}
	})
	a := newCache(t, tiered.WithClock(o, clk))
	ag := newGroup[string](t, a, "g", tiered.GroupOptions{})
	b := newHardNode(t, srv.Addr(), tiered.Options{})
	queued := make(chan struct{}, 8)
	tiered.SetHook(a, func(point string) {
		if point == "pattern-queued" {
			queued <- struct{}{}
		}
	})
	if err := b.cache.InvalidatePattern(ctx, "g:p1*"); err != nil {
		t.Fatal(err)
	}
	<-queued
	<-started // p1 held in its application
	if err := b.cache.InvalidatePattern(ctx, "g:p2*"); err != nil {
		t.Fatal(err)
	}
	<-queued
	clk.Add(2 * tiered.DefaultHeartbeat) // p2 is late
	close(release)
	<-flushing // L1 flushed in place of p2, its count not yet given
	if _, err := ag.Fetch(ctx, "p3x", constLoader("v1")); err != nil {
		t.Fatal(err)
	}
	a.WaitL1()
	if err := b.cache.InvalidatePattern(ctx, "g:p3*"); err != nil {
		t.Fatal(err)
	}
	<-queued // p3 arrived after the flush
	close(flushed)
	for range 3 {
		if !wait(received, 10*time.Second) {
			t.Fatal("node a never counted the three patterns applied")
		}
	}
	if v, ok := ag.Peek("p3x"); ok {
		t.Fatalf("node a still serves p3x = %q after counting g:p3* applied", v)
	}
}
