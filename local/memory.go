package local

import (
	"math"
	"math/bits"
	"unsafe"

	"github.com/tiercache/tiercache/internal/memsize"
)

// The memory accounting of Options.ChargeMemory. What an entry holds beyond
// its value, its key and its Entry is its share of hash tables and of the
// key index: Ristretto's store slot (a map[uint64]storeItem, 56 bytes) and
// its policy's cost slot (a map[uint64]int64, 16 bytes), each with a
// control byte and at the maps' load factor, and a pointer in its stripe's
// ordered chunks (8 bytes, about 13 with their slack). indexBytes is that
// share as measured in a full cache that keeps evicting
// (BenchmarkMemoryChurn: 212 bytes), the state in which the bound matters:
// evictions leave deleted slots in the maps and gaps in the chunks. Go's
// maps split into tables of at most 1024 slots that grow one at a time, so
// the share hardly moves with the number of entries. See
// docs/performance.md, L1 memory.
const indexBytes = 208

// Ristretto's fixed structures: its Set buffer is a channel of 32 Ki item
// pointers; fixedOther is the rest of an empty cache (the index stripes and
// ordered shards, the pattern ring, Ristretto's 256 store shards and its Get
// buffers), measured as an empty cache's heap less the counters and the
// Set buffer (BenchmarkMemory's fixed-B: 443 KB with 10^4 counters, of
// which 48 KiB of counters and 256 KiB of Set buffer).
const (
	setBufBytes = 32 << 10 * 8
	fixedOther  = 130 << 10
)

// EntryBytes returns what Options.ChargeMemory charges an entry of key
// beyond its Item.Cost: the key's bytes (as the allocator rounds them),
// the Entry itself, and its measured share of the key index, the ordered
// key set and Ristretto's store and policy. An entry with tags is charged
// [TagBytes] of them too.
func (c *Cache[V]) EntryBytes(key string) int64 { return EntryBytes[V](key) }

// EntryBytes is [Cache.EntryBytes] without a cache, for sizing a budget
// before making one: a Cache[V] charges an entry of key this much beyond its
// Item.Cost.
func EntryBytes[V any](key string) int64 {
	return memsize.Alloc(len(key)) + memsize.Alloc(int(unsafe.Sizeof(Entry[V]{}))) + indexBytes
}

// TagBytes returns what Options.ChargeMemory charges an entry for its tags
// (Entry.Tags), beyond [EntryBytes]: the slice's array and each tag's bytes,
// as the allocator rounds them. Tags shared with other entries are charged
// to each, an overestimate.
func TagBytes(tags []string) int64 {
	if cap(tags) == 0 {
		return 0
	}
	n := memsize.Alloc(cap(tags) * int(unsafe.Sizeof("")))
	for _, t := range tags {
		n += memsize.Alloc(len(t))
	}
	return n
}

// FixedBytes returns the heap bytes a cache configured by opts allocates up
// front, whatever it holds: Ristretto's admission counters (a count-min
// sketch of 4 bits x 4 rows per counter and a Bloom filter of about 10 bits
// per counter, each rounded up to a power of two), its Set buffer, and the
// cache's own stripes and shards. Options.ChargeMemory takes it off MaxCost.
// It returns 0 for options New would refuse.
func FixedBytes(opts Options) int64 {
	opts, err := opts.normalize()
	if err != nil {
		return 0
	}
	return counterBytes(opts.NumCounters) + setBufBytes + fixedOther
}

// counterBytes is the size of Ristretto's TinyLFU for n counters: a
// count-min sketch of 4 rows of 4-bit counters, rounded up to a power of
// two (newCmSketch), and a Bloom filter sized for n entries at a 1%
// false-positive rate, in bits rounded up to a power of two, at least 512
// (z.NewBloomFilter).
func counterBytes(n int64) int64 {
	sketch := 4 * pow2(uint64(n)) / 2
	bloomBits := uint64(float64(n) * -math.Log(0.01) / (math.Ln2 * math.Ln2))
	bloom := pow2(max(bloomBits, 512)) / 8
	return int64(sketch + bloom)
}

// pow2 returns the smallest power of two >= x (x >= 1).
func pow2(x uint64) uint64 {
	if x <= 1 {
		return 1
	}
	return 1 << bits.Len64(x-1)
}
