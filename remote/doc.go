// Package remote is a building block of package tiered, not an API to use:
// it is the L2 tier that tiered.Cache reads and fills. Use package tiered
// (github.com/tiercache/tiercache/tiered); this package's API may change in
// any release. Its exported types ([Lease], [Fill], [HandOff], [Record],
// [Acquired]) and [NewToken] are exported for tiered, not for applications.
//
// The L2 tier is what a namespace keeps in Redis, read and written through
// a go-redis [redis.UniversalClient].
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
// On a Redis Cluster every command touches one key, so nothing crosses
// slots: GetMany, AcquireMany, FillHandOff and Unlink send pipelines of
// single-key commands (go-redis splits them by node), every script reads
// and writes only KEYS[1], and [Store.DeletePattern] SCANs every master,
// after reloading the cluster's layout so that a master added since is
// included. A script inside a pipeline is not retried after NOSCRIPT, so
// the store loads its scripts on every node and sends those calls again. After a failed call the store has a cluster client
// reload its layout: go-redis would otherwise keep sending a dead master's
// slots to it until its periodic reload.
//
// Redis replicates asynchronously, so a failover can undo an acknowledged
// write. With Options.WaitReplicas, Set, Unlink and DeletePattern follow
// each master's writes with WAIT on the connection that wrote them, and
// report [ErrNotReplicated] when too few replicas acknowledged them.
//
// redis.Nil never leaves this package: a missing key is a [Record] of
// [KindMiss].
package remote
