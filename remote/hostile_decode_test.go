package remote_test

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/remote"
)

// TestParseWakeForgedLength: a notice whose key length is near the int
// maximum is malformed. The bounds check used to add the identity's length
// to it, which wrapped around, and the slice that followed panicked: any
// client allowed to publish on the wake channel (which is not signed)
// could end every node's process.
func TestParseWakeForgedLength(t *testing.T) {
	for _, n := range []int64{math.MaxInt64, math.MaxInt64 - 5, math.MaxInt64 - 11} {
		p := "\x00" + strconv.FormatInt(n, 10) + ":" + strings.Repeat("x", 20)
		if _, _, _, _, ok := remote.ParseWake(p); ok {
			t.Errorf("ParseWake with key length %d ok; want malformed", n)
		}
	}
}

// TestStaleOfNothingButAValue: a stale envelope keeps a version 2 value,
// as the protocol says; anything else after its header is corrupt. That
// also ends the recursion that nested stale headers caused: corrupt bytes
// of a million headers used to overflow the stack, which no recover
// catches.
func TestStaleOfNothingButAValue(t *testing.T) {
	value := remote.Encode(remote.Record{Kind: remote.KindValue, Token: 3, Expire: 99, Payload: []byte("v")})
	if r := remote.Decode(remote.EncodeStale(9, 10, value)); r.Kind != remote.KindStale {
		t.Fatalf("a stale envelope of a value decodes as %v; want stale", r.Kind)
	}
	lease := remote.Encode(remote.Record{Kind: remote.KindLease, Token: 3, Expire: 99})
	stale := remote.EncodeStale(9, 10, nil)
	for name, raw := range map[string][]byte{
		"a version 1 lease":  remote.EncodeStale(9, 10, lease),
		"nothing":            stale,
		"a stale envelope":   remote.EncodeStale(9, 10, remote.EncodeStale(8, 10, value)),
		"a million headers":  bytes.Repeat(stale, 1_000_000),
		"a truncated value":  remote.EncodeStale(9, 10, value[:1]),
		"another magic byte": remote.EncodeStale(9, 10, append([]byte{0}, value[1:]...)),
	} {
		if r := remote.Decode(raw); r.Kind != remote.KindCorrupt {
			t.Errorf("%s after a stale header decodes as %v; want corrupt", name, r.Kind)
		}
	}
}
