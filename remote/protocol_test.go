package remote

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"
)

// envelopeVector is one entry of testdata/protocol/envelopes.json, the
// test vectors of docs/protocol.md.
type envelopeVector struct {
	Name       string `json:"name"`
	Hex        string `json:"hex"`
	Kind       string `json:"kind"`
	Version    int    `json:"version"`
	Token      string `json:"token"`
	LoadMicros int64  `json:"load_us"`
	ExpireMs   int64  `json:"expire_ms"`
	Payload    string `json:"payload"`
	PayloadHex string `json:"payload_hex"`
	DecodeOnly bool   `json:"decode_only"`
	// Legacy vectors decode to their meaning but are no longer written:
	// version 1 values, read as carrying no tags and a load begin of 0.
	Legacy      bool     `json:"legacy"`
	BeginMicros int64    `json:"begin_us"`
	Tags        []string `json:"tags"`
	// InnerHex is the value envelope a stale envelope keeps (its fields
	// above are the value's, its expiry the window's end); CarriesStale
	// says that a lease's payload is a stale envelope (Record.StaleOf).
	InnerHex     string `json:"inner_hex"`
	CarriesStale bool   `json:"carries_stale"`
}

func loadEnvelopeVectors(t *testing.T) []envelopeVector {
	t.Helper()
	b, err := os.ReadFile("../testdata/protocol/envelopes.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []envelopeVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no envelope vectors")
	}
	return vs
}

// TestEnvelopeVectors checks the envelope layout of docs/protocol.md in both
// directions: each vector's meaning encodes to its bytes, and its bytes
// decode to its meaning.
func TestEnvelopeVectors(t *testing.T) {
	for _, v := range loadEnvelopeVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			raw, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			got := decode(raw)
			if got.Kind.String() != v.Kind {
				t.Fatalf("decode(%s).Kind = %v; want %s", v.Hex, got.Kind, v.Kind)
			}
			if !bytes.Equal(got.Raw, raw) {
				t.Fatalf("decode(%s).Raw = %x", v.Hex, got.Raw)
			}
			if v.DecodeOnly {
				return
			}
			payload := []byte(v.Payload)
			if v.PayloadHex != "" {
				payload, _ = hex.DecodeString(v.PayloadHex)
			}
			var token uint64
			if b, err := hex.DecodeString(v.Token); err != nil || len(b) != 8 {
				t.Fatalf("token %q: want 16 hex digits", v.Token)
			} else {
				for _, c := range b {
					token = token<<8 | uint64(c)
				}
			}
			want := Record{Kind: got.Kind, Token: token, LoadTime: time.Duration(v.LoadMicros) * time.Microsecond, Expire: v.ExpireMs,
				Begin: v.BeginMicros, Tags: v.Tags, Payload: payload}
			if int(raw[1]) != v.Version || got.Token != want.Token || got.LoadTime != want.LoadTime || got.Expire != want.Expire ||
				got.Begin != want.Begin || !slices.Equal(got.Tags, want.Tags) || !bytes.Equal(got.Payload, want.Payload) {
				t.Fatalf("decode(%s) = %+v; want %+v, version %d", v.Hex, got, want, v.Version)
			}
			if _, ok := got.StaleOf(); ok != v.CarriesStale {
				t.Fatalf("decode(%s).StaleOf() ok = %v; want %v", v.Hex, ok, v.CarriesStale)
			}
			if v.Legacy {
				return
			}
			if v.InnerHex != "" {
				inner, _ := hex.DecodeString(v.InnerHex)
				if enc := hex.EncodeToString(EncodeStale(token, v.ExpireMs, inner)); enc != v.Hex {
					t.Fatalf("EncodeStale = %s; want %s", enc, v.Hex)
				}
				return
			}
			if enc := hex.EncodeToString(encode(want)); enc != v.Hex {
				t.Fatalf("encode(%+v) = %s; want %s", want, enc, v.Hex)
			}
		})
	}
}

// TestEnvelopeLoadTimeSaturates checks what the saturated vector says: a
// longer load is stored as the largest value.
func TestEnvelopeLoadTimeSaturates(t *testing.T) {
	a := encode(Record{Kind: KindValue, LoadTime: time.Duration(maxLoadMicros) * time.Microsecond})
	b := encode(Record{Kind: KindValue, LoadTime: 100 * time.Hour})
	if !bytes.Equal(a, b) {
		t.Fatalf("a load of 100h encodes as %x; want %x", b, a)
	}
}
