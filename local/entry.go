package local

import "sync/atomic"

// Entry is one value in the cache, as [Cache.LookupPrefix] and [Cache.Get] return it. It is
// immutable once installed, except for its dead mark, and shared by every
// caller that reads it: treat it, and Value, as read-only.
type Entry[V any] struct {
	Value V
	// Key is the entry's full key. A lookup checks it, so that a hash
	// collision is a miss, never another key's value.
	Key string
	// Expire is the Clock time (unix ns) from which the entry is invalid.
	Expire int64
	// Born is the Clock time at which the entry was installed.
	Born int64
	// Refresh is the caller's early-refresh deadline, 0 for none. The
	// cache does not interpret it.
	Refresh int64
	// Version is the caller's identity of the value (tiercache keeps the
	// write token of its Redis copy). The cache does not interpret it.
	Version uint64
	// Begin and Tags are the caller's record of when the value's load began
	// and which tags it carries; the cache passes them to Options.Recheck
	// and does not interpret them otherwise.
	Begin int64
	Tags  []string
	// Fallback, if not 0, marks an expired value the caller installed as a
	// fallback (tiercache's fail-safe): the Clock time (unix ns) until
	// which it may serve as one. Only [Cache.GetExpired] reads it.
	Fallback int64

	epoch   uint64        // the cache's epoch the entry belongs to
	checked atomic.Uint64 // the tag generation the entry was last rechecked at
	// flags holds the dead and refreshing bits: one word for both, and no
	// stored key hash (the cache recomputes it from Key when an entry
	// leaves), keep the Entry in the allocator's 128-byte class (it took
	// 144 with them).
	flags atomic.Uint32
	// Absent records that the caller cached "known not to exist".
	Absent bool
}

const (
	flagDead       = 1 << iota // set, under its stripe's lock, when the index lets go of it
	flagRefreshing             // set once by ClaimRefresh
)

func (e *Entry[V]) kill()        { e.flags.Or(flagDead) }
func (e *Entry[V]) isDead() bool { return e.flags.Load()&flagDead != 0 }

// ClaimRefresh reports true to its first caller only, so that of all the
// reads that find an entry past its Refresh deadline one starts the
// refresh.
func (e *Entry[V]) ClaimRefresh() bool {
	return e.flags.Load()&flagRefreshing == 0 && e.flags.Or(flagRefreshing)&flagRefreshing == 0
}

// Item is what a caller installs with [Cache.SetIf] or [Cache.Set]; see
// [Entry] for the fields.
type Item[V any] struct {
	Value V
	// Cost is the entry's share of MaxCost, in the caller's unit. With
	// Options.ChargeMemory it is the heap bytes the value holds outside
	// the Entry (tiercache: see its Options.L1MaxBytes), and the cache
	// adds [Cache.EntryBytes] of the key. Costs below 1 count as 1.
	Cost     int64
	Expire   int64
	Refresh  int64
	Absent   bool
	Version  uint64
	Begin    int64
	Tags     []string
	Fallback int64
}

// Token records the cache's invalidation state at the moment a load began;
// see [Cache.Begin]. It is a small value, meaningful only to the cache that
// issued it. The zero Token predates every invalidation: a SetIf with it
// fails once the key's bucket has seen any invalidation or the cache any
// Flush or pattern.
type Token struct {
	seq   uint64 // the invalidation sequence number
	epoch uint64
}
