package prometheus

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/tiered"
)

// stat is one counter of [tiered.Stats] and the metric that exports it.
type stat struct {
	name, help string
	value      func(*tiered.Stats) float64
}

// groupCounter is a counter exported per group.
type groupCounter struct {
	desc  *prometheus.Desc
	value func(*tiered.Stats) float64
}

// cacheCounter is a counter exported for the whole cache: the sum over
// the groups and the cache's own events.
type cacheCounter struct {
	desc  *prometheus.Desc
	value func(*tiered.Stats) float64
}

// groupStats are the counters exported with a group label (hits and misses,
// which also carry a tier, are apart).
func groupStats() []stat {
	return []stat{
		{"loads_total", "Loader calls (a batch loader call counts once).", func(s *tiered.Stats) float64 { return float64(s.Loads) }},
		{"load_errors_total", "Loader calls that returned an error or panicked.", func(s *tiered.Stats) float64 { return float64(s.LoadErrors) }},
		{"collapsed_total", "Callers that joined a load already in flight instead of starting one.", func(s *tiered.Stats) float64 { return float64(s.Collapsed) }},
		{"leases_won_total", "Leases taken in Redis: this node loaded and filled.", func(s *tiered.Stats) float64 { return float64(s.LeasesWon) }},
		{"leases_busy_total", "Misses that found another node's lease.", func(s *tiered.Stats) float64 { return float64(s.LeasesBusy) }},
		{"leases_lost_total", "Fills whose compare-and-set failed (an invalidation won) and slow loads whose lease expired.", func(s *tiered.Stats) float64 { return float64(s.LeasesLost) }},
		{"leases_waited_total", "Misses that waited for another node's lease instead of loading.", func(s *tiered.Stats) float64 { return float64(s.LeasesWaited) }},
		{"leases_renewed_total", "Lease extensions of slow loads.", func(s *tiered.Stats) float64 { return float64(s.LeasesRenewed) }},
		{"leases_foreign_total", "Leases that outlived LeaseTTL: waited for once, then the key loaded without filling.", func(s *tiered.Stats) float64 { return float64(s.LeasesForeign) }},
		{"refreshes_total", "Early refreshes run.", func(s *tiered.Stats) float64 { return float64(s.Refreshes) }},
		{"refresh_errors_total", "Early refreshes that failed (the old value stayed).", func(s *tiered.Stats) float64 { return float64(s.RefreshErrors) }},
		{"fail_safe_total", "Reads served an expired value as a fail-safe fallback.", func(s *tiered.Stats) float64 { return float64(s.FailSafe) }},
		{"stale_total", "Reads served an invalidated value within the group's MaxStale window.", func(s *tiered.Stats) float64 { return float64(s.Stale) }},
		{"decode_errors_total", "Values in Redis that did not decode and were removed.", func(s *tiered.Stats) float64 { return float64(s.DecodeErrors) }},
		{"redis_errors_total", "Failed Redis calls (group \"\": invalidations and bus publishes).", func(s *tiered.Stats) float64 { return float64(s.RedisErrors) }},
	}
}

// cacheStats are the counters exported for the whole cache.
func cacheStats() []stat {
	return []stat{
		{"invalidations_sent_total", "Invalidations that reached Redis and the bus.", func(s *tiered.Stats) float64 { return float64(s.InvalidationsSent) }},
		{"invalidations_received_total", "Invalidations from other nodes applied here.", func(s *tiered.Stats) float64 { return float64(s.InvalidationsReceived) }},
		{"invalidations_retried_total", "Failed invalidations that succeeded in the background.", func(s *tiered.Stats) float64 { return float64(s.InvalidationsRetried) }},
		{"patterns_applied_total", "Patterns applied to this node's L1.", func(s *tiered.Stats) float64 { return float64(s.PatternsApplied) }},
		{"l1_invalidated_total", "L1 entries removed by invalidations.", func(s *tiered.Stats) float64 { return float64(s.L1Removed) }},
		{"l1_rejected_total", "L1 fills refused by the admission policy.", func(s *tiered.Stats) float64 { return float64(s.L1Rejected) }},
		{"l1_evicted_total", "L1 entries evicted to make room.", func(s *tiered.Stats) float64 { return float64(s.L1Evicted) }},
		{"l1_flushes_total", "Whole-L1 invalidations (a bus loss, gap or recovery).", func(s *tiered.Stats) float64 { return float64(s.Flushes) }},
		{"bus_lost_total", "Bus subscriptions lost.", func(s *tiered.Stats) float64 { return float64(s.BusLost) }},
		{"bus_reconnects_total", "Bus subscriptions confirmed again after a loss.", func(s *tiered.Stats) float64 { return float64(s.BusReconnects) }},
		{"bus_downtime_seconds_total", "Time the bus subscription was lost, summed over the losses that ended.", func(s *tiered.Stats) float64 { return s.BusDowntime.Seconds() }},
		{"bus_gaps_total", "Messages from other nodes found missing.", func(s *tiered.Stats) float64 { return float64(s.BusGaps) }},
		{"bus_malformed_total", "Bus messages that could not be decoded.", func(s *tiered.Stats) float64 { return float64(s.BusMalformed) }},
		{"bus_rejected_total", "Bus messages dropped unread: too large, or not signed under BusKey.", func(s *tiered.Stats) float64 { return float64(s.BusRejected) }},
		{"pattern_flushes_total", "Patterns beyond the limits or the work budget that flushed L1 in their place.", func(s *tiered.Stats) float64 { return float64(s.PatternFlushes) }},
		{"redis_breaker_opens_total", "Times the Redis circuit breaker opened.", func(s *tiered.Stats) float64 { return float64(s.BreakerOpens) }},
	}
}
