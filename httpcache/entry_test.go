package httpcache

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestEntryCodecRoundTrip(t *testing.T) {
	e := entry{status: 404, header: http.Header{"Content-Type": {"text/plain"}, "Link": {"a", "b"}, "Etag": {}}, body: []byte("not \x00 found"), stored: 1_764_936_000_123}
	b, err := entryCodec{}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var got entry
	if err := (entryCodec{}).Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.status != e.status || !bytes.Equal(got.body, e.body) || !reflect.DeepEqual(got.header, e.header) || got.stored != e.stored {
		t.Fatalf("round trip = %+v; want %+v", got, e)
	}
	for i := range b { // every truncation inside the headers is an error, never a panic
		var x entry
		if err := (entryCodec{}).Unmarshal(b[:i], &x); err == nil && i < len(b)-len(e.body) {
			t.Fatalf("Unmarshal of %d of %d bytes succeeded", i, len(b))
		}
	}
}

// FuzzEntryCodec: arbitrary bytes from Redis never panic the decoder, and
// what decodes encodes back to a value that decodes the same.
func FuzzEntryCodec(f *testing.F) {
	b, _ := entryCodec{}.Marshal(entry{status: 200, header: http.Header{"Content-Type": {"a"}}, body: []byte("x")})
	f.Add(b)
	f.Add([]byte{1, 200, 1, 255, 255, 255, 255, 15})
	f.Add(MarshalV1(200, http.Header{"A": {"b"}}, []byte("x")))
	f.Add([]byte{2, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1, 200, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var e entry
		if (entryCodec{}).Unmarshal(data, &e) != nil {
			return
		}
		again, _ := entryCodec{}.Marshal(e)
		var e2 entry
		if err := (entryCodec{}).Unmarshal(again, &e2); err != nil || e2.status != e.status || !bytes.Equal(e2.body, e.body) || e2.stored != e.stored {
			t.Fatalf("re-encoded entry does not decode the same: %v", err)
		}
	})
}

// TestEntryCodecVersion1: bytes written in format version 1, before
// entries kept the time they were stored, decode with no time, and give
// no Age; an unknown version is refused.
func TestEntryCodecVersion1(t *testing.T) {
	v1 := []byte{1, 0xc8, 0x01, 1, 12}
	v1 = append(v1, "Content-Type"...)
	v1 = append(v1, 1, 10)
	v1 = append(v1, "text/plain"...)
	v1 = append(v1, "body"...)
	if got := MarshalV1(200, http.Header{"Content-Type": {"text/plain"}}, []byte("body")); !bytes.Equal(got, v1) {
		t.Fatalf("MarshalV1 = %v; want the version 1 layout %v", got, v1)
	}
	var e entry
	if err := (entryCodec{}).Unmarshal(v1, &e); err != nil {
		t.Fatalf("Unmarshal(version 1) = %v", err)
	}
	want := entry{status: 200, header: http.Header{"Content-Type": {"text/plain"}}, body: []byte("body")}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("Unmarshal(version 1) = %+v; want %+v", e, want)
	}
	if age, ok := e.age(time.Now()); ok {
		t.Fatalf("age of a version 1 entry = %d; want none", age)
	}
	for _, v := range []byte{0, 3, 255} {
		bad := append([]byte{v}, v1[1:]...)
		if err := (entryCodec{}).Unmarshal(bad, &e); err == nil {
			t.Errorf("Unmarshal of version %d succeeded", v)
		}
	}
}

func TestEntryAge(t *testing.T) {
	now := time.UnixMilli(1_764_936_000_000)
	for _, tc := range []struct {
		stored int64
		want   int64
	}{
		{now.UnixMilli(), 0},
		{now.UnixMilli() - 999, 0},
		{now.UnixMilli() - 1000, 1},
		{now.UnixMilli() - 3_600_500, 3600},
		{now.UnixMilli() + 5000, 0}, // stored by a process whose clock is ahead
	} {
		if got, ok := (entry{stored: tc.stored}).age(now); !ok || got != tc.want {
			t.Errorf("age of an entry stored %dms before now = %d, %v; want %d", now.UnixMilli()-tc.stored, got, ok, tc.want)
		}
	}
}

func TestToEntryCountsHandlerAge(t *testing.T) {
	now := time.UnixMilli(1_764_936_000_000)
	for _, tc := range []struct {
		age  string
		want int64 // stored, ms before now
	}{{"", 0}, {"30", 30_000}, {" 7 ", 7000}, {"-3", 0}, {"x", 0}, {"99999999999999999999", 0}, {"1e3", 0}} {
		rec := newRecorder()
		if tc.age != "" {
			rec.header.Set("Age", tc.age)
		}
		rec.finish()
		e := rec.toEntry([]string{"Age"}, now)
		if got := now.UnixMilli() - e.stored; got != tc.want {
			t.Errorf("handler Age %q: stored %dms before now; want %d", tc.age, got, tc.want)
		}
		if _, kept := e.header["Age"]; kept {
			t.Errorf("handler Age %q kept in the entry", tc.age)
		}
	}
}
