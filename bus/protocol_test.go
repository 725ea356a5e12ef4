package bus_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
)

// messageVector is one entry of testdata/protocol/messages.json, the test
// vectors of docs/protocol.md.
type messageVector struct {
	Name    string   `json:"name"`
	Hex     string   `json:"hex"`
	Version int      `json:"version"`
	Kind    string   `json:"kind"`
	Origin  string   `json:"origin"`
	Seq     uint64   `json:"seq"`
	SentNs  int64    `json:"sent_ns"`
	Items   []string `json:"items"`
}

var kinds = map[string]bus.Kind{"keys": bus.KindKeys, "patterns": bus.KindPatterns, "heartbeat": bus.KindHeartbeat, "flush": bus.KindFlush, "tags": bus.KindTags}

func readVectors(t *testing.T, name string, into any) {
	t.Helper()
	b, err := os.ReadFile("../testdata/protocol/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestMessageVectors checks the message layout of docs/protocol.md in both
// directions: each vector's meaning encodes to its bytes, and its bytes
// decode to its meaning.
func TestMessageVectors(t *testing.T) {
	var vs []messageVector
	readVectors(t, "messages.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no message vectors")
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			kind, ok := kinds[v.Kind]
			if !ok || v.Version != 1 {
				t.Fatalf("kind %q version %d: not a kind of version 1", v.Kind, v.Version)
			}
			var origin bus.NodeID
			if b, err := hex.DecodeString(v.Origin); err != nil || len(b) != len(origin) {
				t.Fatalf("origin %q: want 32 hex digits", v.Origin)
			} else {
				copy(origin[:], b)
			}
			want := bus.Message{Kind: kind, Origin: origin, Seq: v.Seq, Sent: v.SentNs, Items: v.Items}
			if enc := hex.EncodeToString(bus.Encode(want)); enc != v.Hex {
				t.Fatalf("Encode(%+v) = %s; want %s", want, enc, v.Hex)
			}
			raw, _ := hex.DecodeString(v.Hex)
			got, err := bus.Decode(raw)
			if err != nil {
				t.Fatalf("Decode(%s): %v", v.Hex, err)
			}
			if got.Kind != want.Kind || got.Origin != want.Origin || got.Seq != want.Seq || got.Sent != want.Sent ||
				!slices.Equal(got.Items, want.Items) || len(got.Items) != len(v.Items) {
				t.Fatalf("Decode(%s) = %+v; want %+v", v.Hex, got, want)
			}
		})
	}
}

// TestMalformedVectors checks that the malformed vectors are refused, each
// for the reason the vector gives.
func TestMalformedVectors(t *testing.T) {
	var vs []struct{ Name, Hex, Error string }
	readVectors(t, "malformed.json", &vs)
	for _, v := range vs {
		raw, _ := hex.DecodeString(v.Hex)
		_, err := bus.Decode(raw)
		if !errors.Is(err, bus.ErrMalformed) || !strings.Contains(err.Error(), v.Error) {
			t.Errorf("%s: Decode(%s) = %v; want ErrMalformed saying %q", v.Name, v.Hex, err, v.Error)
		}
	}
}

// TestSenderWithoutSequence checks what docs/protocol.md promises a foreign
// writer that numbers nothing: messages that all carry sequence number 0,
// and heartbeats of 0 if any, are applied and never taken for a gap (a gap
// would reach the handler before the next apply).
func TestSenderWithoutSequence(t *testing.T) {
	srv := redistest.Start(t)
	rb := newRecorder()
	newBus(t, srv.Addr(), rb, bus.Options{})
	rb.expect(t, "restored")
	rdb := srv.Client(t)
	x := bus.NewNodeID()
	publishRaw(t, rdb,
		bus.Message{Kind: bus.KindKeys, Origin: x, Items: []string{"a"}},
		bus.Message{Kind: bus.KindPatterns, Origin: x, Items: []string{"b*"}},
		bus.Message{Kind: bus.KindHeartbeat, Origin: x},
		bus.Message{Kind: bus.KindKeys, Origin: x, Items: []string{"c"}},
	)
	for range 3 {
		rb.expect(t, "apply")
	}
	rb.none(t)
}
