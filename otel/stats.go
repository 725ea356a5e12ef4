package otel

import "github.com/tiercache/tiercache/tiered"

// stat is one counter of [tiered.Stats] and the instrument that reports it.
type stat struct {
	name, help string
	value      func(*tiered.Stats) uint64
}

// groupStats are the counters reported with a group attribute (hits and
// misses, which also carry a tier, are apart).
func groupStats() []stat {
	return []stat{
		{"tiercache.loads", "Loader calls (a batch loader call counts once).", func(s *tiered.Stats) uint64 { return s.Loads }},
		{"tiercache.load.errors", "Loader calls that returned an error or panicked.", func(s *tiered.Stats) uint64 { return s.LoadErrors }},
		{"tiercache.collapsed", "Callers that joined a load already in flight instead of starting one.", func(s *tiered.Stats) uint64 { return s.Collapsed }},
		{"tiercache.leases.won", "Leases taken in Redis: this node loaded and filled.", func(s *tiered.Stats) uint64 { return s.LeasesWon }},
		{"tiercache.leases.busy", "Misses that found another node's lease.", func(s *tiered.Stats) uint64 { return s.LeasesBusy }},
		{"tiercache.leases.lost", "Fills whose compare-and-set failed (an invalidation won) and slow loads whose lease expired.", func(s *tiered.Stats) uint64 { return s.LeasesLost }},
		{"tiercache.leases.waited", "Misses that waited for another node's lease instead of loading.", func(s *tiered.Stats) uint64 { return s.LeasesWaited }},
		{"tiercache.leases.renewed", "Lease extensions of slow loads.", func(s *tiered.Stats) uint64 { return s.LeasesRenewed }},
		{"tiercache.leases.foreign", "Leases that outlived LeaseTTL: waited for once, then the key loaded without filling.", func(s *tiered.Stats) uint64 { return s.LeasesForeign }},
		{"tiercache.refreshes", "Early refreshes run.", func(s *tiered.Stats) uint64 { return s.Refreshes }},
		{"tiercache.refresh.errors", "Early refreshes that failed (the old value stayed).", func(s *tiered.Stats) uint64 { return s.RefreshErrors }},
		{"tiercache.fail_safe", "Reads served an expired value as a fail-safe fallback.", func(s *tiered.Stats) uint64 { return s.FailSafe }},
		{"tiercache.stale", "Reads served an invalidated value within the group's MaxStale window.", func(s *tiered.Stats) uint64 { return s.Stale }},
		{"tiercache.decode.errors", "Values in Redis that did not decode and were removed.", func(s *tiered.Stats) uint64 { return s.DecodeErrors }},
		{"tiercache.redis.errors", "Failed Redis calls (group \"\": invalidations and bus publishes).", func(s *tiered.Stats) uint64 { return s.RedisErrors }},
	}
}

// cacheStats are the counters reported for the whole cache.
func cacheStats() []stat {
	return []stat{
		{"tiercache.invalidations.sent", "Invalidations that reached Redis and the bus.", func(s *tiered.Stats) uint64 { return s.InvalidationsSent }},
		{"tiercache.invalidations.received", "Invalidations from other nodes applied here.", func(s *tiered.Stats) uint64 { return s.InvalidationsReceived }},
		{"tiercache.invalidations.retried", "Failed invalidations that succeeded in the background.", func(s *tiered.Stats) uint64 { return s.InvalidationsRetried }},
		{"tiercache.patterns.applied", "Patterns applied to this node's L1.", func(s *tiered.Stats) uint64 { return s.PatternsApplied }},
		{"tiercache.l1.invalidated", "L1 entries removed by invalidations.", func(s *tiered.Stats) uint64 { return s.L1Removed }},
		{"tiercache.l1.rejected", "L1 fills refused by the admission policy.", func(s *tiered.Stats) uint64 { return s.L1Rejected }},
		{"tiercache.l1.evicted", "L1 entries evicted to make room.", func(s *tiered.Stats) uint64 { return s.L1Evicted }},
		{"tiercache.l1.flushes", "Whole-L1 invalidations (a bus loss, gap or recovery).", func(s *tiered.Stats) uint64 { return s.Flushes }},
		{"tiercache.bus.lost", "Bus subscriptions lost.", func(s *tiered.Stats) uint64 { return s.BusLost }},
		{"tiercache.bus.reconnects", "Bus subscriptions confirmed again after a loss.", func(s *tiered.Stats) uint64 { return s.BusReconnects }},
		{"tiercache.bus.gaps", "Messages from other nodes found missing.", func(s *tiered.Stats) uint64 { return s.BusGaps }},
		{"tiercache.bus.malformed", "Bus messages that could not be decoded.", func(s *tiered.Stats) uint64 { return s.BusMalformed }},
		{"tiercache.bus.rejected", "Bus messages dropped unread: too large, or not signed under BusKey.", func(s *tiered.Stats) uint64 { return s.BusRejected }},
		{"tiercache.patterns.flushes", "Patterns beyond the limits or the work budget that flushed L1 in their place.", func(s *tiered.Stats) uint64 { return s.PatternFlushes }},
		{"tiercache.redis.breaker.opens", "Times the Redis circuit breaker opened.", func(s *tiered.Stats) uint64 { return s.BreakerOpens }},
	}
}
