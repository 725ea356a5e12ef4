package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// watchProc is one watch process run with --json, read event by event.
type watchProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

// startWatch starts watch with --json and args, and returns once it
// printed its subscription. It is killed, if still running, when the test
// ends.
func startWatch(t *testing.T, args ...string) *watchProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bin, append([]string{"watch", "--json"}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watchProc{t: t, cmd: cmd, lines: bufio.NewScanner(stdout)}
	w.lines.Buffer(nil, 1<<20)
	t.Cleanup(func() {
		cancel()
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	})
	if ev := w.next(); ev["event"] != "subscribed" {
		t.Fatalf("watch printed %v first; want its subscription", ev)
	}
	return w
}

// next returns the next event; the test fails if watch ended.
func (w *watchProc) next() map[string]any {
	w.t.Helper()
	if !w.lines.Scan() {
		w.t.Fatalf("watch ended early: %v", w.lines.Err())
	}
	var ev map[string]any
	if err := json.Unmarshal(w.lines.Bytes(), &ev); err != nil {
		w.t.Fatalf("watch printed %q: %v", w.lines.Text(), err)
	}
	return ev
}

// until returns the first event for which match holds, and the events
// before it.
func (w *watchProc) until(match func(map[string]any) bool) (map[string]any, []map[string]any) {
	w.t.Helper()
	var before []map[string]any
	for {
		ev := w.next()
		if match(ev) {
			return ev, before
		}
		before = append(before, ev)
	}
}

// interrupt sends watch SIGINT and returns its end event.
func (w *watchProc) interrupt() map[string]any {
	w.t.Helper()
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		w.t.Fatal(err)
	}
	end, _ := w.until(func(ev map[string]any) bool { return ev["event"] == "end" })
	return end
}

// isMessageFrom matches the message event of origin with seq.
func isMessageFrom(origin bus.NodeID, seq uint64) func(map[string]any) bool {
	return func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["origin"] == origin.String() && ev["seq"] == float64(seq)
	}
}

// TestWatchTags guards watch's knowledge of tag messages (kind 5, what
// InvalidateTags and Group.Clear send): they printed as "unknown(5)" and
// were left out of the rates and of the text totals.
func TestWatchTags(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns = "watchtags"
	n := newNode(t, rdb, ns, "user")
	w := startWatch(t, "-p", strconv.Itoa(srv.Port()), "--namespace", ns, "--messages", "--interval", "1h")
	ctx := context.Background()
	if err := n.c.InvalidateTags(ctx, "team:7"); err != nil {
		t.Fatal(err)
	}
	if err := n.g.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	// A last message, from an origin of the test's own, marks the end of
	// what the node sent.
	last := bus.NodeID{7}
	if err := rdb.Publish(ctx, tiered.BusChannel(ns), bus.Encode(bus.Message{Kind: bus.KindKeys, Origin: last, Seq: 1, Items: []string{"k"}})).Err(); err != nil {
		t.Fatal(err)
	}
	_, before := w.until(isMessageFrom(last, 1))
	tags := 0
	for _, ev := range before {
		if ev["event"] == "message" && ev["kind"] != "heartbeat" {
			if ev["kind"] != "tags" {
				t.Fatalf("watch printed %v; want kind tags", ev)
			}
			tags++
		}
	}
	if tags != 2 {
		t.Fatalf("watch printed %d tag messages; want 2 (InvalidateTags, Clear)", tags)
	}
	end := w.interrupt()
	totals := end["totals"].(map[string]any)
	if got := totals["messages"].(map[string]any)["tags"]; got != 2.0 {
		t.Fatalf("end totals %v; want 2 tag messages", totals)
	}
	if _, ok := end["per_second"].(map[string]any)["tags"]; !ok {
		t.Fatalf("end per_second %v; want a rate for tags", end["per_second"])
	}

}

// TestWatchGapsMatchNode guards watch's gap count against a node's: the
// same stream of numbers, forged ones included, must make watch report
// exactly as many gaps as the node flushes. With its old rule (seq >
// last+1, the highest number kept), 1, 2^64-1, 2, 3, 3 gave 4 gaps where a
// node flushes twice.
func TestWatchGapsMatchNode(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns = "watchgaps"
	n := newNode(t, rdb, ns, "user")
	w := startWatch(t, "-p", strconv.Itoa(srv.Port()), "--namespace", ns, "--messages", "--interval", "1h")
	ctx := context.Background()
	origin := bus.NewNodeID()
	publish := func(m bus.Message) {
		t.Helper()
		if err := rdb.Publish(ctx, tiered.BusChannel(ns), bus.Encode(m)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	type msg struct {
		seq  uint64
		beat bool
	}
	stream := []msg{{1, false}, {1<<64 - 1, false}, {2, false}, {3, false}, {3, false}, {5, false}, {4, false},
		{6, false}, {6, true}, {7, true}, {8, false}, {1e12, false}, {1e12 + 1, false}, {1e12 + 3, false}, {9, false}}
	for _, m := range stream {
		if m.beat {
			publish(bus.Message{Kind: bus.KindHeartbeat, Origin: origin, Seq: m.seq, Sent: time.Now().UnixNano()})
			continue // not applied: the next message waits for it
		}
		publish(bus.Message{Kind: bus.KindKeys, Origin: origin, Seq: m.seq, Sent: time.Now().UnixNano(), Items: []string{"user:x"}})
		n.waitReceived(t)
	}
	last := bus.NodeID{8}
	publish(bus.Message{Kind: bus.KindKeys, Origin: last, Seq: 1, Items: []string{"k"}})
	n.waitReceived(t)
	_, before := w.until(isMessageFrom(last, 1))
	gaps := 0
	for _, ev := range before {
		if ev["event"] == "gap" {
			gaps++
		}
	}
	flushes := n.flushes.Load()
	if flushes != 8 {
		t.Fatalf("the node flushed %d times; the stream was meant to make it flush 8 times", flushes)
	}
	if int64(gaps) != flushes {
		t.Fatalf("watch reported %d gaps; the node flushed %d times", gaps, flushes)
	}
}

// TestWatchShardedFailover guards watch --sharded across a failover of the
// channel's shard: the old master ends the subscription with a
// sunsubscribe notice, which watch ignored, staying subscribed to nothing
// and showing no message again. It must report the loss, subscribe again,
// and show what is published next.
func TestWatchShardedFailover(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	const ns = "watchshard"
	ch := tiered.BusChannel(ns)
	w := startWatch(t, "--cluster", strings.Join(cl.Addrs(), ","), "--namespace", ns, "--sharded", "--messages",
		"--interval", "100ms", "--timeout", "1s", "--for", "1m")
	cl.Failover(t, cl.ReplicaOf(t, cl.MasterOf(t, ch)))
	notTick := func(ev map[string]any) bool { return ev["event"] != "tick" }
	if ev, _ := w.until(notTick); ev["event"] != "lost" || !strings.Contains(ev["error"].(string), "sunsubscribe") {
		t.Fatalf("after the failover, watch printed %v; want the subscription lost (sunsubscribe)", ev)
	}
	if ev, _ := w.until(notTick); ev["event"] != "restored" {
		t.Fatalf("watch printed %v; want the subscription restored", ev)
	}
	// Publish a message at each tick until watch shows one: the new
	// subscription may have gone to a node that learns of the failover
	// later.
	ctx := context.Background()
	origin := bus.NodeID{6}
	for seq := uint64(1); ; seq++ {
		m := bus.Message{Kind: bus.KindKeys, Origin: origin, Seq: seq, Items: []string{"k"}}
		if err := rdb.SPublish(ctx, ch, bus.Encode(m)).Err(); err != nil {
			t.Fatal(err)
		}
		ev, _ := w.until(func(ev map[string]any) bool { return ev["event"] != "restored" && ev["event"] != "lost" })
		switch ev["event"] {
		case "message":
			if ev["origin"] != origin.String() {
				t.Fatalf("watch printed %v; want a message of origin %s", ev, origin)
			}
			return
		case "tick":
		default:
			t.Fatalf("watch printed %v; want the messages published after the failover", ev)
		}
	}
}
