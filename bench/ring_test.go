package main

import (
	"testing"
	"time"

	"github.com/tiercache/tiercache/bus"
)

// A delivery is judged by what the write log said when the monitor
// received its message, not when the monitor mapped it: on a hot key the
// ring has turned over by then. If it had turned over before the message
// even arrived, reads it might have made stale are unclassified rather
// than guessed.
func TestMonitorRingTurnover(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after int // writes of the key before the monitor receives the message, and after
		stale, unsure uint64
	}{
		{"quiet key", 0, 0, 1, 0},
		{"ring turns over before mapping", 0, ringSize, 1, 0},
		{"ring turns over many times before mapping", 0, 5 * ringSize, 1, 0},
		{"ring turned over before the message arrived", ringSize, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := newTruth(newMemArena(arenaWords(10)), 10, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			const k = 3
			l := newNodeLog(tr, 0, propMessages)
			l.deferred = true
			self, other := bus.NodeID{1}, bus.NodeID{2}
			m := &monitor{t: tr, nodes: map[int]*nodeLog{0: l}, origins: map[bus.NodeID]int{self: 0, other: 1},
				cursor: map[int]int{}, changed: make(chan struct{})}
			hot := func(n int, from int64) { // node 1 writes k n times, 10µs apart
				for i := range int64(n) {
					at := from + i*10_000
					tr.issuedAt(k, tr.commitAt(k, 1, at), at+5_000)
				}
			}

			v1 := tr.commitAt(k, 1, relMs(100)) // node 1 writes k
			msg := bus.Message{Kind: bus.KindKeys, Origin: other, Seq: 1, Sent: tr.abs(relMs(105)).UnixNano(), Items: []string{"v:" + keyID(k)}}
			tr.issuedAt(k, v1, relMs(110))
			hot(tc.before, relMs(106))
			m.add(msg)
			l.received(relMs(112), 7*time.Millisecond) // node 0 applied it at 112ms
			l.check(k, 0, relMs(120))                  // then read version 0 at 120ms
			hot(tc.after, relMs(130))
			m.sync(0)
			stale, late, unsure, _, _, broken := l.finish()
			if stale != tc.stale || unsure != tc.unsure || late != 0 || broken != "" {
				t.Errorf("stale %d, late %d, unclassified %d, broken %q; want stale %d, late 0, unclassified %d",
					stale, late, unsure, broken, tc.stale, tc.unsure)
			}
		})
	}
}

// relMs is n milliseconds as a relative time.
func relMs(n int64) int64 { return n * int64(time.Millisecond) }

// jetcache-go's event names the write its Delete was for, however many
// writes of the key its handler runs behind.
func TestJetcacheCarriedWrite(t *testing.T) {
	tr, err := newTruth(newMemArena(arenaWords(10)), 10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	const k = 4
	n := &jetcacheNode{ne: &nodeEnv{idx: 0, t: tr, keys: []string{keyID(k)}}}
	v1 := tr.commitAt(k, 0, relMs(100))
	key := n.track(keyID(k), k, v1)
	tr.issuedAt(k, v1, relMs(101))
	for i := range int64(2 * ringSize) { // node 0 writes k again before the handler runs
		tr.issuedAt(k, tr.commitAt(k, 0, relMs(102+i)), relMs(102+i)+1)
	}
	if got := n.carried([]string{key}); got[0] != v1 {
		t.Errorf("the event of the Delete for version %d carries %d", v1, got[0])
	}
	if _, ok := n.untrack(key); ok {
		t.Error("a carried key is still tracked")
	}
}
