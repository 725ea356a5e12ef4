package local

import "fmt"

// Defaults of [Options].
const (
	// DefaultMaxCost is the capacity used when Options.MaxCost is 0: 64 MiB.
	DefaultMaxCost = 64 << 20
	// DefaultBufferItems is Ristretto's Get buffer size used when
	// Options.BufferItems is 0.
	DefaultBufferItems = 64
)

const (
	// expectedItemCost sizes the default NumCounters: ten counters per
	// expected item of this many bytes, at least minCounters and at most
	// maxDefaultCounters (about 200 MB of counters).
	expectedItemCost   = 256
	minCounters        = 10_000
	maxDefaultCounters = 1 << 26

	// Ristretto allocates its counters and Get buffers up front: beyond
	// these it would fail to allocate (a panic), so New refuses them.
	maxCounters    = 1 << 34
	maxBufferItems = 1 << 20
)

// Options configures a [Cache]. The zero value of every field is its
// documented default; New copies the struct.
type Options struct {
	// MaxCost bounds the sum of the costs of the entries. The caller gives
	// each entry's cost ([Item.Cost]), in a unit of its choice; without
	// ChargeMemory only those costs count. Default: 64 MiB.
	MaxCost int64
	// ChargeMemory makes MaxCost a bound, in bytes, on the cache's share
	// of the Go heap. Item.Cost is then the heap bytes the value holds
	// outside its Entry (the Entry's own Value field is counted with the
	// Entry), and each entry is charged that plus [Cache.EntryBytes] of
	// its key: the key's bytes, the Entry, its slots in the key index and
	// the ordered key set, and Ristretto's per-item bookkeeping (see
	// docs/performance.md, L1 memory for how that was measured). The structures the cache
	// allocates up front, whatever it holds (Ristretto's admission
	// counters and Set buffer, the index stripes; [FixedBytes]), are
	// taken off MaxCost from the start, but never more than half of it:
	// below about 1.5 MiB they are more than that, and the cache then
	// takes more than MaxCost.
	ChargeMemory bool
	// NumCounters is the number of Ristretto's admission counters. Default:
	// ten per expected item, expecting items of 256 bytes (MaxCost/256),
	// at least 10,000 and at most 2^26.
	NumCounters int64
	// BufferItems is the size of Ristretto's Get buffers. Default: 64.
	BufferItems int64
	// Clock is what entries' expiries and ages are checked against.
	// Default: a [TickingClock] of [DefaultResolution] owned by the cache
	// and stopped by Close. A Clock given here is not stopped by Close.
	Clock Clock
	// Split, if set, returns where the prefix of a key ends (a result
	// outside [0, len(key)] is clamped). A key is hashed as its prefix and
	// its suffix, so that [Cache.LookupPrefix] with a [Prefix] made once
	// hashes only the suffix; it finds a key only if Split puts the
	// boundary at the end of that Prefix. Split must be pure, fast and safe
	// for concurrent use. Default: no prefix (every key is all suffix, and
	// only Prefix("") finds anything).
	Split func(key string) int
	// OnReject, if set, is called with the key of every entry Ristretto's
	// admission policy refuses (including the second of two queued Sets of
	// one new key; see [Cache.Set]).
	OnReject func(key string)
	// OnEvict, if set, is called with the key of every entry Ristretto
	// evicts to make room.
	//
	// OnReject and OnEvict run on Ristretto's goroutine, outside the
	// cache's locks, and not for the entries dropped by Close. While they
	// run, no other Set is applied: they must be quick, and must not call
	// the cache's Set, SetIf, Delete, DeleteMatching, Wait or Close (a
	// Delete can block on the very goroutine that runs them).
	OnEvict func(key string)
	// Recheck, if set, decides whether an entry is still valid after
	// [Cache.TagsChanged]: a lookup that finds an entry not rechecked since
	// the last TagsChanged calls it with the entry's Key, Begin and Tags,
	// misses when it reports false, and otherwise does not call it again
	// for that entry until the next TagsChanged. It runs on the reader's
	// goroutine, outside the cache's locks: it must be fast, safe for
	// concurrent use, and must not call the cache. Default: nil, every
	// entry stays valid.
	Recheck func(key string, begin int64, tags []string) bool
}

// normalize validates o and fills in the defaults.
func (o Options) normalize() (Options, error) {
	switch {
	case o.MaxCost < 0:
		return o, fmt.Errorf("local: MaxCost %d is negative", o.MaxCost)
	case o.NumCounters < 0 || o.NumCounters > maxCounters:
		return o, fmt.Errorf("local: NumCounters %d is outside [0, 2^34]", o.NumCounters)
	case o.BufferItems < 0 || o.BufferItems > maxBufferItems:
		return o, fmt.Errorf("local: BufferItems %d is outside [0, 2^20]", o.BufferItems)
	}
	if o.MaxCost == 0 {
		o.MaxCost = DefaultMaxCost
	}
	if o.NumCounters == 0 {
		// Divide first: 10*MaxCost can overflow.
		o.NumCounters = min(max(o.MaxCost/expectedItemCost*10, minCounters), maxDefaultCounters)
	}
	if o.BufferItems == 0 {
		o.BufferItems = DefaultBufferItems
	}
	return o, nil
}
