package bus

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: KindKeys, Origin: NewNodeID(), Seq: 1, Sent: 42, Items: []string{"a", "", "user:42", "\x00\xff"}},
		{Kind: KindPatterns, Origin: NewNodeID(), Seq: 1 << 60, Sent: -1, Items: []string{"user_*", `a\*`}},
		{Kind: KindHeartbeat, Origin: NewNodeID(), Seq: 7, Items: []string{}},
		{Kind: KindFlush, Origin: NewNodeID(), Seq: 8, Items: []string{}},
	} {
		got, err := Decode(Encode(m))
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)) error: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("Decode(Encode(m)) = %+v; want %+v", got, m)
		}
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	good := Encode(Message{Kind: KindKeys, Seq: 1, Items: []string{"abc"}})
	for name, b := range map[string][]byte{
		"empty":           nil,
		"short":           good[:10],
		"version":         append([]byte{9}, good[1:]...),
		"kind":            append([]byte{1, 99}, good[2:]...),
		"truncated item":  good[:len(good)-1],
		"trailing":        append(append([]byte{}, good...), 'x'),
		"huge count":      append(append([]byte{}, good[:headerSize]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"heartbeat items": Encode(Message{Kind: KindHeartbeat, Items: []string{"x"}}),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%s) error = %v; want ErrMalformed", name, err)
		}
	}
}

func TestSplitRespectsMax(t *testing.T) {
	items := make([]string, 1000)
	for i := range items {
		items[i] = strings.Repeat("k", i%50)
	}
	const max = 1024
	batches := split(items, max)
	var n int
	for _, b := range batches {
		n += len(b)
		if size := len(Encode(Message{Kind: KindKeys, Items: b})); size > max && len(b) > 1 {
			t.Fatalf("a batch of %d items encodes to %d bytes > %d", len(b), size, max)
		}
	}
	if n != len(items) {
		t.Fatalf("batches hold %d items; want %d", n, len(items))
	}
	big := strings.Repeat("x", 2*max)
	if b := split([]string{"a", big, "b"}, max); len(b) != 3 {
		t.Fatalf("an item larger than max must travel alone: %d batches", len(b))
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(Message{Kind: KindKeys, Seq: 1, Items: []string{"a", "b"}}))
	f.Add(Encode(Message{Kind: KindHeartbeat, Seq: 3}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if again := Encode(m); !bytes.Equal(again, b) {
			// Uvarints have one canonical form only when minimal; a
			// non-minimal one decodes too, so compare the decoded form.
			m2, err := Decode(again)
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("re-encoding changed the message: %+v vs %+v (%v)", m, m2, err)
			}
		}
	})
}

func TestSignedRoundTripAndVerify(t *testing.T) {
	key, other := []byte("0123456789abcdef"), []byte("fedcba9876543210")
	m := Message{Kind: KindPatterns, Origin: NewNodeID(), Seq: 9, Sent: 5, Items: []string{"a:*", "b"}}
	b := EncodeSigned(m, key)
	if b[0] != 2 || len(b) != len(Encode(m))+MACSize {
		t.Fatalf("EncodeSigned: version %d, %d bytes; want 2, %d", b[0], len(b), len(Encode(m))+MACSize)
	}
	got, err := Decode(b) // a reader without keys ignores the MAC
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("Decode(signed) = %+v, %v; want %+v", got, err, m)
	}
	if !Verify(b, [][]byte{other, key}) {
		t.Error("Verify rejected a message signed under the second key")
	}
	if Verify(b, [][]byte{other}) || Verify(Encode(m), [][]byte{key}) || Verify(b[:len(b)-1], [][]byte{key}) || Verify(nil, [][]byte{key}) {
		t.Error("Verify accepted a message not signed under the keys")
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		if Verify(c, [][]byte{key}) {
			t.Fatalf("Verify accepted the message with byte %d changed", i)
		}
	}
	if _, err := Decode(b[:headerSize+MACSize-1]); !errors.Is(err, ErrMalformed) {
		t.Errorf("Decode(short signed) error = %v; want ErrMalformed", err)
	}
}

func FuzzDecodeSigned(f *testing.F) {
	f.Add(EncodeSigned(Message{Kind: KindKeys, Seq: 1, Items: []string{"k"}}, []byte("0123456789abcdef")))
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err == nil && Verify(b, [][]byte{[]byte("0123456789abcdef")}) {
			if got := EncodeSigned(m, []byte("0123456789abcdef")); !bytes.Equal(got, b) {
				t.Fatalf("a verified message does not re-encode to itself")
			}
		}
	})
}
