package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
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
