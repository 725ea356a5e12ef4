// Package tiered is tiercache's public API: a two-tier cache, an in-process
// L1 ([local]) in front of a shared Redis L2 ([remote]), with invalidations
// carried to every process over Redis pub/sub ([bus]).
//
// A [Cache] is made by [New] from [Options] and read and written through
// typed groups ([NewGroup], [Group]): [Group.Fetch] reads through both tiers
// and loads a miss once per process (and takes a lease in Redis so that a
// load that began before an invalidation never installs its result),
// [Group.FetchMany] does so for a batch, [Group.Get] reads without loading,
// [Group.Set] writes, and [Group.Invalidate] invalidates. [Group.Warm] loads
// ids before traffic asks for them, with the same leases and
// compare-and-set fills, and [Cache.WarmL1] copies hot keys from Redis into
// a fresh process's L1. [Cache.Invalidate]
// and [Cache.InvalidatePattern] invalidate keys and Redis glob patterns on
// every process; [Template] builds them from route values, escaping what it
// substitutes. A group's values can carry tags (GroupOptions.Tags):
// [Cache.InvalidateTags] invalidates every value of a tag, whatever its key
// or group, and [Group.Clear] and [Cache.Clear] a whole group or namespace,
// each with one write per tag in Redis (no SCAN): values record when their
// load began, and stay valid only while none of their tags was invalidated
// since.
//
// [local]: https://pkg.go.dev/github.com/tiercache/tiercache/local
// [remote]: https://pkg.go.dev/github.com/tiercache/tiercache/remote
// [bus]: https://pkg.go.dev/github.com/tiercache/tiercache/bus
package tiered
