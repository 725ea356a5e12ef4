// Package redistest gives tests real redis-server processes on free loopback
// ports, and a fault-injecting TCP proxy to put in front of them.
//
// [Start] runs a [Server] with persistence off in a temporary directory and
// stops it when the test ends; [Server.Kill], [Server.Stop] and
// [Server.Restart] take it down and bring it back on the same address. When
// the redis-server binary is not on PATH, the test is skipped with a clear
// message, unless the environment sets TIERCACHE_REQUIRE_REDIS=1 (as CI
// does), in which case it fails ([RequireRedis], [Binary]).
//
// [StartCluster] runs a [Cluster]: by default three masters, each with a
// replica, joined directly (ADDSLOTSRANGE, MEET, REPLICATE) and returned
// once every node reports cluster_state:ok and all agree on the slots. Its
// methods fail a master over ([Cluster.Failover]), kill it outright
// ([Cluster.KillMaster]), bring a node back ([Cluster.Restart]), add a
// master and move slots to it ([Cluster.AddMaster], [Cluster.MoveSlot]),
// and put a proxy in a master's replication link only
// ([Cluster.ProxyReplication]). [StartSentinel] runs a [Sentinel]: a
// primary, a replica and three sentinels, with [Sentinel.Failover].
//
// [NewProxy] forwards TCP traffic to an address and injects faults on
// demand: latency ([Proxy.SetLatency]), resets ([Proxy.Reset]), an
// unreachable server ([Proxy.Cut]) and a hung one ([Proxy.Blackhole]).
// [Proxy.Wait] and [Proxy.WaitConns] let a test wait for connections to
// come and go without sleeping.
//
// Nothing here ever connects to a port it did not pick itself, so a Redis
// that a machine already runs on 6379 is never touched.
package redistest
