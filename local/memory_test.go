package local_test

import (
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tiercache/tiercache/internal/memsize"
	"github.com/tiercache/tiercache/local"
)

// TestChargeMemory: with Options.ChargeMemory an entry is charged its
// Item.Cost plus its key's bytes, its Entry and the index's share, and
// the fixed structures are taken off MaxCost up front (at most half of
// it); without it, only Item.Cost counts.
func TestChargeMemory(t *testing.T) {
	const maxCost = 64 << 20
	c, _ := newCache(t, local.Options{MaxCost: maxCost, ChargeMemory: true})
	fixed := local.FixedBytes(local.Options{MaxCost: maxCost})
	if got := c.Cost(); got != fixed || c.MaxCost() != maxCost {
		t.Fatalf("empty: Cost %d, MaxCost %d; want %d (the fixed structures), %d", got, c.MaxCost(), fixed, maxCost)
	}
	header := int64(unsafe.Sizeof(local.Entry[string]{}))
	for _, key := range []string{"k", "user:" + strings.Repeat("x", 100)} {
		before := c.Cost()
		c.Set(key, local.Item[string]{Value: "v", Cost: 10, Expire: t0.Add(time.Hour).UnixNano()})
		c.Wait()
		charged := c.Cost() - before
		if charged != 10+c.EntryBytes(key) {
			t.Errorf("%q: charged %d; want 10 + EntryBytes %d", key, charged, c.EntryBytes(key))
		}
		// The key, the Entry, its pointer in the index and at least its
		// two hash table slots (Ristretto's store and costs: 56+16 bytes).
		if least := 10 + int64(len(key)) + header + 80; charged < least {
			t.Errorf("%q: charged %d; want at least %d (value, key, %d-byte Entry, slots)", key, charged, least, header)
		}
	}
	if d := c.EntryBytes("user:"+strings.Repeat("x", 100)) - c.EntryBytes("k"); d != memsize.Alloc(105)-memsize.Alloc(1) {
		t.Errorf("a 105-byte key is charged %d more than a 1-byte key; want %d", d, memsize.Alloc(105)-memsize.Alloc(1))
	}

	plain, _ := newCache(t, local.Options{MaxCost: maxCost})
	plain.Set("k", local.Item[string]{Value: "v", Cost: 10, Expire: t0.Add(time.Hour).UnixNano()})
	plain.Wait()
	if got := plain.Cost(); got != 10 {
		t.Errorf("without ChargeMemory: Cost %d; want 10", got)
	}

	small, _ := newCache(t, local.Options{MaxCost: 600, ChargeMemory: true})
	if got := small.Cost(); got != 300 {
		t.Errorf("MaxCost 600: Cost of the empty cache %d; want 300 (the fixed structures, capped at half)", got)
	}
	// Ristretto refuses an entry that costs more than what is left.
	small.Set("k", local.Item[string]{Value: "v", Cost: 1, Expire: t0.Add(time.Hour).UnixNano()})
	small.Wait()
	if _, ok := small.Get("k"); ok || small.Cost() != 300 {
		t.Errorf("MaxCost 600: an entry of %d bytes was kept in 300 (Cost %d)", 1+small.EntryBytes("k"), small.Cost())
	}
}

// TestFixedBytesMatchesHeap checks FixedBytes against the heap an empty
// cache takes, within 10%, at three sizes of Ristretto's counters. It
// measures the Go heap, so it runs only with TIERCACHE_MEMORY=1 and not
// beside parallel tests.
func TestFixedBytesMatchesHeap(t *testing.T) {
	if os.Getenv("TIERCACHE_MEMORY") == "" {
		t.Skip("measures the Go heap: set TIERCACHE_MEMORY=1")
	}
	for _, n := range []int64{10_000, 1 << 20, 3 << 20} {
		o := local.Options{MaxCost: 1 << 30, NumCounters: n}
		before := heapNow()
		c, err := local.New[any](o)
		if err != nil {
			t.Fatal(err)
		}
		got := heapNow() - before
		c.Close()
		if want := local.FixedBytes(o); got < want*9/10 || got > want*11/10 {
			t.Errorf("NumCounters %d: an empty cache takes %d bytes; FixedBytes says %d", n, got, want)
		}
	}
}
