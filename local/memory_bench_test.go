package local_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/tiercache/tiercache/internal/memsize"
	"github.com/tiercache/tiercache/local"
)

// heapNow returns the live heap after a full collection.
func heapNow() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkMemory measures what an entry holds beyond its key and value:
// it installs n entries (keys "user:<i>", values 64-byte []byte in an
// any) in a cache large enough to admit them all, and reports the heap per
// entry, after a GC, less the key, the Entry and the value as the allocator
// rounds them (index-B/entry), of which the ordered key set's chunks
// (ordered-B/entry), and the heap of the empty cache (fixed-B). The entry
// counts step by sqrt(2), across doublings of the maps. It allocates up to
// 400 MB: run it alone, with -benchtime 1x (docs/performance.md, L1 memory).
func BenchmarkMemory(b *testing.B) {
	for _, n := range []int{10_000, 14_000, 20_000, 28_000, 40_000, 56_000, 80_000, 113_000, 160_000, 226_000, 320_000, 452_000, 640_000, 905_000} {
		b.Run("entries="+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				measureIndex(b, n)
			}
		})
	}
}

func measureIndex(b *testing.B, n int) {
	before := heapNow()
	c, err := local.New[any](local.Options{MaxCost: 1 << 40, NumCounters: 10_000, Split: splitColon})
	if err != nil {
		b.Fatal(err)
	}
	empty := heapNow()
	exp := time.Now().Add(time.Hour).UnixNano()
	var keyBytes int64
	for i := range n {
		key := "user:" + strconv.Itoa(i)
		keyBytes += memsize.Alloc(len(key))
		c.Set(key, local.Item[any]{Value: make([]byte, 64), Cost: 1, Expire: exp})
		if i%1024 == 0 {
			c.Wait() // keep Ristretto's Set buffer from dropping Sets
		}
	}
	c.Wait()
	full := heapNow()
	if got := c.Len(); got != n {
		b.Fatalf("Len = %d; want %d", got, n)
	}
	per := float64(full-empty) / float64(n)
	value := float64(memsize.Value(make([]byte, 64), 0))
	entry := float64(memsize.Alloc(int(unsafe.Sizeof(local.Entry[any]{}))))
	b.ReportMetric(per, "B/entry")
	b.ReportMetric(per-value-entry-float64(keyBytes)/float64(n), "index-B/entry")
	b.ReportMetric(float64(empty-before), "fixed-B")
	ob, ok := local.OrderedBytes(c)
	b.ReportMetric(float64(ob)/float64(ok), "ordered-B/entry")
	c.Close()
}

// BenchmarkMemoryChurn is BenchmarkMemory in the steady state of a full
// cache, the state indexBytes is calibrated on: a ChargeMemory cache of
// 16 MiB takes twice as many new keys as it holds, evicting the others.
// Evictions leave deleted slots in the maps and gaps in the ordered set's
// chunks, so an entry's share is larger than in a cache only filled.
func BenchmarkMemoryChurn(b *testing.B) {
	for b.Loop() {
		const budget = 16 << 20
		c, err := local.New[any](local.Options{MaxCost: budget, ChargeMemory: true, Split: splitColon})
		if err != nil {
			b.Fatal(err)
		}
		empty := heapNow()
		exp := time.Now().Add(time.Hour).UnixNano()
		value := memsize.Value(make([]byte, 64), 0)
		n := int(2 * budget / (value + 300))
		for i := range n {
			key := "user:" + strconv.Itoa(i)
			c.Set(key, local.Item[any]{Value: make([]byte, 64), Cost: value, Expire: exp})
			if i%1024 == 0 {
				c.Wait()
			}
		}
		c.Wait()
		full := heapNow()
		held := c.Len()
		per := float64(full-empty) / float64(held)
		entry := float64(memsize.Alloc(int(unsafe.Sizeof(local.Entry[any]{}))))
		b.ReportMetric(per, "B/entry")
		b.ReportMetric(per-float64(value)-entry-16, "index-B/entry")
		b.ReportMetric(float64(held), "entries")
		ob, ok := local.OrderedBytes(c)
		b.ReportMetric(float64(ob)/float64(ok), "ordered-B/entry")
		c.Close()
	}
}
