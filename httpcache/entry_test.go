package httpcache

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
)

func TestEntryCodecRoundTrip(t *testing.T) {
	e := entry{status: 404, header: http.Header{"Content-Type": {"text/plain"}, "Link": {"a", "b"}, "Etag": {}}, body: []byte("not \x00 found")}
	b, err := entryCodec{}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var got entry
	if err := (entryCodec{}).Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.status != e.status || !bytes.Equal(got.body, e.body) || !reflect.DeepEqual(got.header, e.header) {
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
	f.Fuzz(func(t *testing.T, data []byte) {
		var e entry
		if (entryCodec{}).Unmarshal(data, &e) != nil {
			return
		}
		again, _ := entryCodec{}.Marshal(e)
		var e2 entry
		if err := (entryCodec{}).Unmarshal(again, &e2); err != nil || e2.status != e.status || !bytes.Equal(e2.body, e.body) {
			t.Fatalf("re-encoded entry does not decode the same: %v", err)
		}
	})
}
