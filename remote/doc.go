// Package remote is the L2 tier of tiercache: what a namespace keeps in Redis,
// read and written through a go-redis [redis.UniversalClient].
//
// Every value is stored as an envelope (see [Record]): magic and version
// bytes, a kind (value, absent, lease), a write token, how long the load took,
// the logical expiry, then the payload, which only the caller's codec reads.
// An envelope is always written with one SET ... PX, never SET then EXPIRE.
//
// A lease is an envelope of kind lease that the key itself holds while one
// node loads it ([Store.Acquire], one atomic step). The holder fills the key
// with [Store.Fill], a compare-and-set that succeeds only while the key still
// holds that holder's lease, so an invalidation (which UNLINKs the key, lease
// included) always wins over a load that began before it.
//
// redis.Nil never leaves this package: a missing key is a [Record] of
// [KindMiss].
package remote
