package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
)

// newTestWatcher returns a watcher that prints to out (JSON with
// jsonOut) and is fed by calling handle.
func newTestWatcher(out *bytes.Buffer, jsonOut bool) *watcher {
	e := &env{stdout: out, jsonOut: jsonOut}
	e.watch.interval = time.Second
	e.watch.messages = true
	w := &watcher{e: e, channel: "ns:tiercache:bus", origins: map[bus.NodeID]*origin{}}
	w.start = time.Now()
	w.last, w.tick, w.all = w.start, newCounts(), newCounts()
	return w
}

// feed hands w one message as the subscription delivers it.
func feed(w *watcher, m bus.Message) {
	w.handle(&redis.Message{Channel: w.channel, Payload: string(bus.Encode(m))})
}

// TestWatchTextShowsTags guards the text form's count of tag messages
// (kind 5): they were left out of the rates and of the totals.
func TestWatchTextShowsTags(t *testing.T) {
	var out bytes.Buffer
	w := newTestWatcher(&out, false)
	origin := bus.NodeID{1}
	feed(w, bus.Message{Kind: bus.KindTags, Origin: origin, Seq: 1, Items: []string{"1796532699130497:t:team:7", "1796532699130497:t:team:8"}})
	feed(w, bus.Message{Kind: bus.KindKeys, Origin: origin, Seq: 2, Items: []string{"user:1"}})
	w.emitTick(w.last.Add(time.Second), true)
	got := out.String()
	for _, want := range []string{
		"tags      origin 01000000000000000000000000000000 seq 1",
		"keys 1 (1 items), patterns 0 (0 items), tags 1 (2 items), flush 0",
		"2 messages (keys 1, patterns 0, tags 1, flush 0, heartbeat 0)",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("watch printed\n%s\nwant a line with %q", got, want)
		}
	}
}

// TestWatchGapRules guards watch's gap rule: it must be the nodes' own
// (bus/seq.go: numbers compared modulo 2^64 within a window of 2^32, a
// number that cannot follow counted once and not adopted, a resync on an
// odd number that the next one follows, 0 never a gap), so that watch
// reports a gap exactly when a node flushes. Its old rule (seq > last+1,
// highest number kept) made every message after a forged 2^64-1 a gap and
// a repeated or earlier number none.
func TestWatchGapRules(t *testing.T) {
	const max = 1<<64 - 1
	type msg struct {
		seq  uint64
		beat bool
		gap  bool // what a node counts
	}
	keys := func(seq uint64, gap bool) msg { return msg{seq: seq, gap: gap} }
	beat := func(seq uint64, gap bool) msg { return msg{seq: seq, beat: true, gap: gap} }
	cases := []struct {
		name string
		msgs []msg
		last uint64 // the number watch shows at the end
	}{
		{"InOrder", []msg{keys(1, false), keys(2, false), keys(3, false)}, 3},
		{"Missing", []msg{keys(1, false), keys(3, true), keys(4, false)}, 4},
		{"ForgedMax", []msg{keys(1, false), keys(max, true), keys(2, false), keys(3, false)}, 3},
		{"ForgedFarAhead", []msg{keys(5, false), keys(5+1<<32, true), keys(6, false)}, 6},
		{"Repeat", []msg{keys(1, false), keys(2, false), keys(2, true), keys(3, false)}, 3},
		{"Behind", []msg{keys(5, false), keys(3, true), keys(6, false)}, 6},
		{"WindowEdge", []msg{keys(1, false), keys(1<<32, true), keys(1<<32+1, false)}, 1<<32 + 1},
		{"Wraps", []msg{keys(max-1, false), keys(max, false), keys(1, true), keys(2, false)}, 2},
		{"Resync", []msg{keys(8, false), keys(1e12, true), keys(1e12+1, false), keys(1e12+2, false), keys(9, true)}, 1e12 + 2},
		{"ResyncWithGap", []msg{keys(8, false), keys(1e12, true), keys(1e12+2, true), keys(1e12+3, false)}, 1e12 + 3},
		{"Heartbeats", []msg{beat(0, false), keys(1, false), beat(1, false), beat(2, true), keys(3, false), beat(3, false)}, 3},
		{"HeartbeatFirst", []msg{beat(5, false), keys(6, false), beat(6, false), keys(8, true)}, 8},
		{"HeartbeatBehind", []msg{keys(5, false), beat(4, true), keys(6, false)}, 6},
		{"Unnumbered", []msg{keys(0, false), keys(0, false), keys(0, false)}, 0},
		{"UnnumberedThenNumbered", []msg{keys(0, false), keys(5, false), keys(0, false), keys(6, false)}, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := newTestWatcher(&out, true)
			origin := bus.NodeID{2}
			for i, m := range tc.msgs {
				kind := bus.KindKeys
				var items []string
				if m.beat {
					kind = bus.KindHeartbeat
				} else {
					items = []string{"k"}
				}
				before := w.all.Gaps
				out.Reset()
				feed(w, bus.Message{Kind: kind, Origin: origin, Seq: m.seq, Items: items})
				if got := w.all.Gaps > before; got != m.gap {
					t.Fatalf("message %d (seq %d, heartbeat %v): gap %v; a node counts %v\n%s", i, m.seq, m.beat, got, m.gap, out.String())
				}
				if m.gap != strings.Contains(out.String(), `"event":"gap"`) {
					t.Fatalf("message %d (seq %d): printed %s; want a gap event: %v", i, m.seq, out.String(), m.gap)
				}
			}
			if got := shownSeq(t, w, origin); got != tc.last {
				t.Fatalf("origin at seq %d after the messages; want %d", got, tc.last)
			}
		})
	}
}

// shownSeq returns the sequence number that w's next tick shows for origin.
func shownSeq(t *testing.T, w *watcher, origin bus.NodeID) uint64 {
	t.Helper()
	out := w.e.stdout.(*bytes.Buffer)
	out.Reset()
	w.emitTick(time.Now(), false)
	var tick struct {
		Origins []struct {
			Origin string
			Seq    uint64
		}
	}
	if err := json.Unmarshal(out.Bytes(), &tick); err != nil {
		t.Fatalf("tick %q: %v", out.String(), err)
	}
	for _, o := range tick.Origins {
		if o.Origin == origin.String() {
			return o.Seq
		}
	}
	t.Fatalf("tick %s does not show origin %s", out.String(), origin)
	return 0
}

// lineWriter is watch's stdout in a test: it keeps what watch prints and
// closes printed once a line containing want was written.
type lineWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	want    string
	printed chan struct{}
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.want != "" && strings.Contains(l.buf.String(), l.want) {
		l.want = ""
		close(l.printed)
	}
	return len(p), nil
}

func (l *lineWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestWatchEndsWhenCancelled guards the prompt end of watch on Ctrl-C or
// SIGTERM (its ctx cancelled): go-redis bounds a receive by a ctx's
// deadline but not by its cancellation, so watch waited for the end of
// the current --interval (here an hour, on a bus where nothing comes). The
// subscription must be closed as soon as ctx ends, and watch print its
// totals and exit 0.
func TestWatchEndsWhenCancelled(t *testing.T) {
	srv := redistest.Start(t)
	out := &lineWriter{want: `"event":"subscribed"`, printed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"watch", "-p", strconv.Itoa(srv.Port()), "--namespace", "quiet", "--json",
			"--interval", "1h", "--timeout", "1h"}, out, io.Discard, func(string) string { return "" })
	}()
	select {
	case <-out.printed:
	case code := <-done:
		t.Fatalf("watch ended before it subscribed: exit %d, printed %q", code, out.String())
	case <-time.After(time.Minute):
		t.Fatal("watch did not subscribe within a minute")
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK || !strings.Contains(out.String(), `"event":"end"`) {
			t.Fatalf("watch cancelled: exit %d, printed %q; want exit 0 after its totals", code, out.String())
		}
	case <-time.After(time.Minute):
		// The failing run leaves watch waiting out its hour: the test
		// binary ends it.
		t.Fatal("watch still running a minute after its ctx was cancelled (--interval 1h)")
	}
}
