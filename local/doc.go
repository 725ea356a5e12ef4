// Package local is a building block of package tiered, not an API to use:
// it is the L1 tier that tiered.Cache wires in front of Redis. Use package
// tiered (github.com/tiercache/tiercache/tiered); this package's API may
// change in any release.
//
// The L1 tier holds decoded values in Ristretto v2, plus what Ristretto
// lacks.
//
//   - A cheap hit: [Cache.LookupPrefix] takes the key as a [Prefix], hashed
//     once, and a suffix, so that a hit hashes one short string, allocates
//     nothing, reads no wall clock and takes no lock of the cache's.
//     [Options.Split] tells the cache where whole keys split.
//   - An exact key index (Ristretto keeps only key hashes), kept in order, so
//     that keys can be invalidated by glob pattern ([Cache.DeleteMatching])
//     at a cost that grows with the keys sharing the pattern's literal
//     prefix.
//   - Validity checked on every read: an [Entry] carries its own expiry
//     (compared against a cheap [Clock], never the wall clock), the epoch it
//     was installed in, and a dead mark. [Cache.Flush] bumps the epoch, which
//     is safe under live traffic where ristretto.Clear is not.
//   - Invalidation generations: a load takes a [Token] before it reads L2,
//     and [Cache.SetIf] installs its result only if no invalidation of the
//     key (a Delete, a Set, a Flush, a matching pattern) happened since.
//
// Correctness never depends on Ristretto admitting a Set: a Set that is
// dropped, rejected or lands late can only make a key miss, never serve a
// value that was invalidated. Every entry that leaves Ristretto (evicted,
// rejected, replaced, deleted) leaves the key index with it, so the index
// holds exactly the live entries Ristretto holds once pending Sets are
// applied ([Cache.Wait]).
package local
