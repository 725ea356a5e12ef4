package bus

import (
	"log/slog"
	"testing"
)

// TestPeersTableIsBounded: messages numbered 1 under ever new origins (what
// anyone who can publish on an unsigned bus may send) grow the table of
// origins only up to maxPeers. The origin that finds it full empties it and
// counts a gap, and so does the next message of an origin heard before (a
// message of it lost meanwhile cannot be told from none). Before, every
// origin stayed for the bus's lifetime and none of this was a gap.
func TestPeersTableIsBounded(t *testing.T) {
	b := &Bus{opts: Options{Logger: slog.New(slog.DiscardHandler)}, peers: make(map[NodeID]*peer)}
	r := receiver{b: b, peers: b.peers}
	node := NewNodeID()
	keys := func(origin NodeID, seq uint64) Message {
		return Message{Kind: KindKeys, Origin: origin, Seq: seq, Items: []string{"k"}}
	}
	if r.gap(keys(node, 1)) || r.gap(keys(node, 2)) {
		t.Fatal("gap on a real node's first messages")
	}
	for i := 1; i < maxPeers; i++ {
		if r.gap(keys(NewNodeID(), 1)) {
			t.Fatalf("gap at new origin %d of %d; want none before the table is full", i, maxPeers)
		}
	}
	if n := len(r.peers); n != maxPeers {
		t.Fatalf("%d origins kept; want %d", n, maxPeers)
	}
	if !r.gap(keys(NewNodeID(), 1)) {
		t.Error("no gap when a new origin found the table full")
	}
	if n := len(r.peers); n > maxPeers {
		t.Fatalf("%d origins kept; want at most %d", n, maxPeers)
	}
	// 3 is lost: this node must not take 4 for the real node's first.
	if !r.gap(keys(node, 4)) {
		t.Error("no gap at a real node's next message after the table was emptied")
	}
	if r.gap(keys(node, 5)) || r.gap(Message{Kind: KindHeartbeat, Origin: node, Seq: 5}) {
		t.Error("gap while the real node follows on")
	}
}
