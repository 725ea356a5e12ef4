package main

import (
	"time"
)

// result is one cache in one scenario, as reported.
type result struct {
	Scenario string `json:"scenario"`
	Cache    string `json:"cache"`
	Config   string `json:"config"`
	// Skipped says why the cache did not run, if it did not.
	Skipped string `json:"skipped,omitempty"`

	Elapsed    time.Duration `json:"elapsed_ns"`
	Reads      uint64        `json:"reads"`
	Writes     uint64        `json:"writes"`
	Errors     uint64        `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Throughput float64       `json:"ops_per_sec"`

	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Mean time.Duration `json:"mean_ns"`
	// Waited is the share of reads that took at least half the load
	// latency: they waited for a load, their own or one in flight. Each
	// worker runs one operation after another, so throughput is about
	// workers / Mean, and these reads make most of Mean.
	Waited float64 `json:"waited_share"`

	// Shares of reads served by each tier; the rest were loaded or joined
	// a load in flight.
	L1Share float64 `json:"l1_share"`
	L2Share float64 `json:"l2_share"`

	Loads       uint64 `json:"loads"`         // loader calls the source of truth counted
	KeyLoads    uint64 `json:"key_loads"`     // the sum of the per-key counts (equals Loads)
	CacheLoads  uint64 `json:"cache_loads"`   // loader calls the cache itself counted (tiercache), 0 if it does not count
	Ideal       uint64 `json:"ideal_loads"`   // the fewest a perfect fleet would make
	MaxKeyLoads uint64 `json:"max_key_loads"` // loads of the most loaded key

	RedisCommands uint64  `json:"redis_commands"`
	CommandsPerOp float64 `json:"redis_commands_per_op"`

	LagP50     time.Duration `json:"lag_p50_ns"`
	LagP99     time.Duration `json:"lag_p99_ns"`
	LagSamples uint64        `json:"lag_samples"`
	// KeyLagP50 and KeyLagP99 are the lag of the deliveries of keys
	// messages alone: a pattern's lag includes its SCAN of Redis.
	KeyLagP50  time.Duration `json:"key_lag_p50_ns"`
	KeyLagP99  time.Duration `json:"key_lag_p99_ns"`
	Propagates bool          `json:"propagates"` // whether the cache tells other nodes about invalidations

	Checked uint64 `json:"reads_checked"`
	Stale   uint64 `json:"stale_reads"`
	Late    uint64 `json:"late_reads"`
	// StaleAgeMax is the age of the oldest stale read: its start less the
	// return of the invalidation call that made its value stale;
	// StaleAgeP99 the 99th percentile of those ages. StaleAgeLowerBound:
	// the write log had lost the invalidation of some stale read, whose
	// age is then a lower bound, and the oldest age is at least
	// StaleAgeMax.
	StaleAgeMax        time.Duration `json:"stale_age_max_ns"`
	StaleAgeP99        time.Duration `json:"stale_age_p99_ns"`
	StaleAgeLowerBound bool          `json:"stale_age_lower_bound,omitempty"`
	Unclassified       uint64        `json:"unclassified_reads"`
	BusTrouble         uint64        `json:"bus_trouble,omitempty"`
	Broken             []string      `json:"checker_broken,omitempty"`

	// Timeline is the loads per TimelineStep from the start of warm-up
	// (expiry scenario only); ReloadPeak is its highest step after
	// warm-up.
	Timeline     []uint64      `json:"timeline,omitempty"`
	TimelineStep time.Duration `json:"timeline_step_ns,omitempty"`
	ReloadPeak   uint64        `json:"reload_peak,omitempty"`

	// Outage is the outage scenario's figures per phase.
	Outage *outageResult `json:"outage,omitempty"`

	// With -rounds above 1: every figure above is the median over the
	// Rounds that ran (the stale reads and their ages the highest), Spread is each figure's lowest and highest value by
	// its JSON name, and Runs is every round's result.
	Rounds int             `json:"rounds,omitempty"`
	Spread map[string]span `json:"spread,omitempty"`
	Runs   []*result       `json:"runs,omitempty"`
}

// newResult builds a result from the merged partials and the truth.
func newResult(sc *scenario, sys *system, cfg *config, p *partial, t *truth, warmEnd time.Duration) *result {
	r := &result{
		Scenario: sc.name, Cache: sys.name, Config: sys.config,
		Elapsed: p.Elapsed, Reads: p.Reads, Writes: p.Writes, Errors: p.Errors, FirstError: p.FirstError,
		P50: p.Lat.quantile(0.5), P99: p.Lat.quantile(0.99), P999: p.Lat.quantile(0.999),
		Mean: p.Lat.mean(), Waited: p.Lat.fracAbove(cfg.latency / 2),
		Loads: t.loads(), CacheLoads: p.Tiers.LoaderCalls, Ideal: sc.ideal(cfg, t),
		RedisCommands: p.Cmds,
		LagP50:        p.Lag.quantile(0.5), LagP99: p.Lag.quantile(0.99), LagSamples: p.Lag.count(),
		KeyLagP50: p.KeyLag.quantile(0.5), KeyLagP99: p.KeyLag.quantile(0.99),
		Propagates: sys.prop == propMessages,
		Checked:    p.Checked, Stale: p.Stale, Late: p.Late, Unclassified: p.Unsure,
		StaleAgeMax: p.StaleMax, StaleAgeP99: p.StaleAge.quantile(0.99), StaleAgeLowerBound: p.StaleLow,
		BusTrouble: p.Tiers.BusTrouble, Broken: p.Broken,
	}
	if p.Elapsed > 0 {
		r.Throughput = float64(p.Reads+p.Writes) / p.Elapsed.Seconds()
	}
	if ops := p.Reads + p.Writes; ops > 0 {
		r.CommandsPerOp = float64(p.Cmds) / float64(ops)
	}
	if p.Reads > 0 {
		r.L1Share = float64(p.Tiers.L1Hits) / float64(p.Reads)
		r.L2Share = float64(p.Tiers.L2Hits) / float64(p.Reads)
	}
	if sc.name == "outage" {
		r.Outage = newOutageResult(cfg, p.Outage, p.Tiers.FailSafe)
	}
	for k := range sc.keys(cfg) {
		n := t.keyLoads(k)
		r.KeyLoads += n
		r.MaxKeyLoads = max(r.MaxKeyLoads, n)
	}
	if sc.warmPhases > 0 {
		r.TimelineStep = timelineWidth
		r.Timeline = t.timeline(warmEnd + sc.length(cfg))
		for i := int(warmEnd/timelineWidth) + 1; i < len(r.Timeline); i++ {
			r.ReloadPeak = max(r.ReloadPeak, r.Timeline[i])
		}
	}
	return r
}
