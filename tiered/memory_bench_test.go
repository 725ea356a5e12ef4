package tiered_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tiercache/tiercache/tiered"
)

// bytesCodec keeps a []byte as it is, in Redis and in L1.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }

func (bytesCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

// heapNow returns the live heap after a full collection.
func heapNow() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkL1Memory fills an L1-only cache of L1MaxBytes budget past its
// budget (twice over, by Group.Set of new ids in one goroutine) with
// []byte values of one size, then reports, from the Go heap after a GC:
//
//   - heap/budget: the L1's whole share of the heap (the cache and what it
//     holds, from before New to after the fill) over L1MaxBytes;
//   - B/entry: the heap per entry held, less the empty cache's;
//   - ristretto-B/entry: the same for a raw Ristretto v2 cache with the same
//     MaxCost, NumCounters (local's default for the budget) and
//     BufferItems, IgnoreInternalCost, string keys, []byte values, filled
//     with the same Sets, each costing budget/(the entries tiercache held)
//     so that it holds as many;
//   - overhead-ratio: tiercache's per-entry heap less the value's
//     allocation, over raw Ristretto's.
//
// It is slow and allocates up to a few hundred MB: run it alone, with
// -benchtime 1x (docs/performance.md, L1 memory).
func BenchmarkL1Memory(b *testing.B) {
	for _, budget := range []int64{16 << 20, 64 << 20} {
		for _, size := range []int{16, 256, 4 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("budget=%dMiB/value=%d", budget>>20, size), func(b *testing.B) {
				for b.Loop() {
					measureL1(b, budget, size)
				}
			})
		}
	}
}

func measureL1(b *testing.B, budget int64, size int) {
	n := int(2 * budget / int64(size+300))
	ctx := context.Background()

	before := heapNow()
	c, err := tiered.New(tiered.Options{L1MaxBytes: budget})
	if err != nil {
		b.Fatal(err)
	}
	g, err := tiered.NewGroup[[]byte](c, "m", tiered.GroupOptions{Codec: bytesCodec{}})
	if err != nil {
		b.Fatal(err)
	}
	empty := heapNow()
	for i := range n {
		if err := g.Set(ctx, strconv.Itoa(i), make([]byte, size)); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			c.WaitL1() // Ristretto drops Sets when its buffer is full
		}
	}
	c.WaitL1()
	full := heapNow()
	st := c.L1State()
	if st.Entries == 0 || c.Stats().L1Evicted == 0 {
		b.Fatalf("the L1 was not filled past its budget: %+v, %+v", st, c.Stats())
	}
	perEntry := float64(full-empty) / float64(st.Entries)
	b.ReportMetric(float64(full-before)/float64(budget), "heap/budget")
	b.ReportMetric(perEntry, "B/entry")
	b.ReportMetric(float64(st.Entries), "entries")
	c.Close()

	raw := rawRistrettoPerEntry(b, budget, size, n, st.Entries)
	b.ReportMetric(raw, "ristretto-B/entry")
	value := float64(valueAlloc(size))
	b.ReportMetric((perEntry-value)/(raw-value), "overhead-ratio")
}

// rawRistrettoPerEntry fills a raw Ristretto cache with the same Sets and
// returns its heap per entry held.
func rawRistrettoPerEntry(b *testing.B, budget int64, size, n, held int) float64 {
	var lost atomic.Int64 // evicted or rejected
	count := func(*ristretto.Item[[]byte]) { lost.Add(1) }
	heapNow()
	rc, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: min(max(budget/256*10, 10_000), 1<<26), MaxCost: budget, BufferItems: 64,
		IgnoreInternalCost: true, OnEvict: count, OnReject: count,
	})
	if err != nil {
		b.Fatal(err)
	}
	empty := heapNow()
	cost := budget / int64(held)
	stored := 0
	for i := range n {
		if rc.Set("m:"+strconv.Itoa(i), make([]byte, size), cost) {
			stored++
		}
		if i%1000 == 999 {
			rc.Wait()
		}
	}
	rc.Wait()
	full := heapNow()
	entries := stored - int(lost.Load())
	rc.Close()
	return float64(full-empty) / float64(entries)
}

// valueAlloc is the heap a []byte of size bytes takes (the allocator's
// rounding; every size measured is a size class or whole pages).
func valueAlloc(size int) int { return size }
