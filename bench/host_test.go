package main

import (
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/memsize"
	"github.com/tiercache/tiercache/local"
)

// TestHeapBudgetHoldsTheEntries checks that the L1MaxBytes the harness gives
// tiercache holds as many entries as the entry-bounded caches get: under
// the old sizing (entries x encoded bytes) a memory-charged L1 held a
// fraction of them, and tiercache's hit ratio was not comparable.
func TestHeapBudgetHoldsTheEntries(t *testing.T) {
	for _, n := range []int64{100, 2500, 20000} {
		v := value{ID: "g123_4", Version: 1 << 20, Body: strings.Repeat("x", 128)}
		enc := encodedSize(v)
		key := "bench-x:g:" + v.ID
		c, err := local.New[any](local.Options{MaxCost: heapBudget(n, key, v, enc), ChargeMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		charge := memsize.Value(v, enc) + c.EntryBytes(key)
		room := c.MaxCost() - c.Cost()
		c.Close()
		if got := room / charge; got < n {
			t.Errorf("heapBudget(%d) leaves room for %d entries of %d bytes; want at least %d", n, got, charge, n)
		}
		if old := n * int64(enc); old/charge >= n {
			t.Errorf("the encoded-bytes budget %d would hold all %d entries too: the test cannot tell the sizings apart", old, n)
		}
	}
}
