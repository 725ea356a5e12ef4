package main

import "time"

// phaseAcc is what one node's callers saw during one phase of the outage
// scenario: every read that began in the phase, errors included.
type phaseAcc struct {
	Reads  uint64 `json:"reads"`
	Errors uint64 `json:"errors"`
	// Warm*: the reads of keys cached before the outage (a load of them
	// had succeeded before the failing phase began).
	WarmReads  uint64 `json:"warm_reads"`
	WarmErrors uint64 `json:"warm_errors"`
	Lat        hist   `json:"latency"`
	WarmLat    hist   `json:"warm_latency"`
}

// outageAcc is the per-phase accounting of the outage scenario.
type outageAcc struct {
	Phases [phases]phaseAcc `json:"phases"`
}

// record counts one read that began in phase ph, took d, failed or not,
// of a key cached before the outage or not.
func (o *outageAcc) record(ph int, d time.Duration, failed, warm bool) {
	p := &o.Phases[ph]
	p.Reads++
	p.Lat.record(d)
	if failed {
		p.Errors++
	}
	if warm {
		p.WarmReads++
		p.WarmLat.record(d)
		if failed {
			p.WarmErrors++
		}
	}
}

func (o *outageAcc) merge(x *outageAcc) {
	for i := range o.Phases {
		p, q := &o.Phases[i], &x.Phases[i]
		p.Reads += q.Reads
		p.Errors += q.Errors
		p.WarmReads += q.WarmReads
		p.WarmErrors += q.WarmErrors
		p.Lat.merge(&q.Lat)
		p.WarmLat.merge(&q.WarmLat)
	}
}

// outageResult is the outage scenario's figures per phase (before,
// failing, slow, after), as reported.
type outageResult struct {
	PhaseLen time.Duration `json:"phase_ns"`
	// SoftTimeout is the LoadSoftTimeout of the fail-safe variant, the
	// yardstick of its goal.
	SoftTimeout time.Duration         `json:"soft_timeout_ns"`
	Reads       [phases]uint64        `json:"reads"`
	Errors      [phases]uint64        `json:"errors"`
	WarmErrors  [phases]uint64        `json:"warm_errors"` // errors on keys cached before the outage
	P99         [phases]time.Duration `json:"p99_ns"`      // every read, errors included
	WarmP99     [phases]time.Duration `json:"warm_p99_ns"` // reads of keys cached before the outage
	Fallbacks   uint64                `json:"fail_safe_fallbacks"`
}

func newOutageResult(cfg *config, o *outageAcc, fallbacks uint64) *outageResult {
	r := &outageResult{PhaseLen: cfg.outagePhase, SoftTimeout: softTimeout(cfg.latency), Fallbacks: fallbacks}
	if o == nil {
		return r
	}
	for i := range o.Phases {
		p := &o.Phases[i]
		r.Reads[i], r.Errors[i], r.WarmErrors[i] = p.Reads, p.Errors, p.WarmErrors
		r.P99[i], r.WarmP99[i] = p.Lat.quantile(0.99), p.WarmLat.quantile(0.99)
	}
	return r
}

// warmErrorsAll is the errors on keys cached before the outage in every
// phase: a read that began at the end of the before phase may load in the
// failing one.
func (r *outageResult) warmErrorsAll() uint64 {
	var n uint64
	for _, e := range r.WarmErrors {
		n += e
	}
	return n
}
