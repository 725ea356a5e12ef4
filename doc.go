// Package tiercache is a two-tier cache for Go services that run as many
// identical processes: every process keeps a small, very fast in-process cache
// (L1, Ristretto) in front of a shared Redis (L2).
//
// A miss is loaded once, not once per caller; TTLs are jittered so keys
// written together do not expire together; and every invalidation reaches
// every process, so no L1 keeps serving what was deleted.
//
// This package holds no API. The entry point is package
// [github.com/tiercache/tiercache/tiered]:
//
//   - [github.com/tiercache/tiercache/tiered] wires the tiers: Cache, Options,
//     typed groups, Fetch, FetchInfo, FetchMany, Get, Peek, Set,
//     Invalidate, InvalidatePattern, InvalidateTags, Clear, templates,
//     Warm, WarmL1, Stats.
//   - [github.com/tiercache/tiercache/httpcache] is the net/http middleware:
//     cached GET routes and invalidating writes, checked at registration.
//   - [github.com/tiercache/tiercache/local] is the L1: Ristretto plus a key
//     index, epochs and invalidation generations.
//   - [github.com/tiercache/tiercache/remote] is the L2: the envelope format,
//     leases and compare-and-set fills on a go-redis UniversalClient.
//   - [github.com/tiercache/tiercache/bus] carries key and pattern
//     invalidations between processes over Redis pub/sub and reports every
//     way a message can be missed, so that a process flushes its L1.
package tiercache
