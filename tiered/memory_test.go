package tiered_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unsafe"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/tiered"
)

// TestL1ChargesWhatEntriesHold: an L1 entry is charged its decoded value
// (a string exactly: its header and bytes; a struct by its size and its
// encoded length), its key, its entry and the index's share, not the
// value's encoded length alone.
func TestL1ChargesWhatEntriesHold(t *testing.T) {
	c := newCache(t, tiered.Options{})
	ctx := context.Background()
	strs := newGroup[string](t, c, "s", tiered.GroupOptions{})
	users := newGroup[User](t, c, "u", tiered.GroupOptions{})
	header := int64(unsafe.Sizeof(local.Entry[any]{}))

	charged := func(set func() error) int64 {
		t.Helper()
		before := c.L1State().Bytes
		if err := set(); err != nil {
			t.Fatal(err)
		}
		c.WaitL1()
		return c.L1State().Bytes - before
	}

	v := strings.Repeat("x", 1000)
	got := charged(func() error { return strs.Set(ctx, "a", v) })
	want := 16 + 1024 + tiered.L1EntryBytes(c, "s:a") // the string's header and bytes as allocated
	if got != want {
		t.Errorf("a 1000-byte string: charged %d; want %d", got, want)
	}
	if least := int64(1000+16+len("s:a")) + header; got < least {
		t.Errorf("a 1000-byte string: charged %d; want at least %d (value, header, key, %d-byte entry)", got, least, header)
	}

	u := User{ID: "7", Name: strings.Repeat("n", 100)}
	data, _ := json.Marshal(u)
	got = charged(func() error { return users.Set(ctx, "7", u) })
	want = int64(unsafe.Sizeof(u)) + int64(len(data)) + tiered.L1EntryBytes(c, "u:7")
	if got != want {
		t.Errorf("a struct: charged %d; want %d (its size, its JSON length, the entry)", got, want)
	}
}
