package otel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tiercache/tiercache/tiered"
)

// ScopeName is the instrumentation scope of the meter and tracers this
// package creates.
const ScopeName = "github.com/tiercache/tiercache/otel"

// Metrics is a [tiered.Recorder] that records a cache's latencies as
// OpenTelemetry histograms, and reports the cache's counters, L1 state and
// breaker state through observable instruments when the SDK collects. It
// is safe for concurrent use.
type Metrics struct {
	cache  atomic.Pointer[tiered.Cache]
	attrs  []attribute.KeyValue // WithAttributes: on every data point
	groups sync.Map             // group name → *groupAttrs, built once

	// cacheRecord and cacheObserve hold the set of attrs alone, for the
	// data points that have no group.
	cacheRecord  []metric.RecordOption
	cacheObserve []metric.ObserveOption

	load, leaseWait, refresh, lag metric.Float64Histogram

	hits, misses  metric.Int64ObservableCounter
	groupCounters []int64Counter
	cacheCounters []int64Counter
	downtime      metric.Float64ObservableCounter
	l1Fills       metric.Int64ObservableCounter
	gauges        struct {
		l1Entries, l1Bytes, l1MaxBytes, l1Degraded, pending, breaker metric.Int64ObservableGauge
	}
	reg metric.Registration
}

var _ tiered.Recorder = (*Metrics)(nil)

// int64Counter is an observable counter of one [tiered.Stats] field.
type int64Counter struct {
	inst  metric.Int64ObservableCounter
	value func(*tiered.Stats) uint64
}

// NewMetrics creates the instruments with a meter of mp (scope
// [ScopeName]) and registers the callback that observes them. Until
// [Metrics.Attach], only the histograms are reported: the counters and
// gauges, the breaker gauge included, are read from the attached cache.
// Close unregisters the callback. opts add attributes to every data
// point ([WithAttributes]). It fails, with an error prefixed "otel: ", if
// mp is nil, an option is invalid, or the SDK refuses an instrument.
func NewMetrics(mp metric.MeterProvider, opts ...Option) (*Metrics, error) {
	if mp == nil {
		return nil, errors.New("otel: nil MeterProvider")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	meter := mp.Meter(ScopeName)
	all := metric.WithAttributeSet(attribute.NewSet(cfg.attrs...))
	m := &Metrics{
		attrs:        cfg.attrs,
		cacheRecord:  []metric.RecordOption{all},
		cacheObserve: []metric.ObserveOption{all},
	}
	b := builder{meter: meter}
	m.load = b.histogram("tiercache.load.duration", "Time taken by loader calls, failed ones included.", loadBuckets())
	m.leaseWait = b.histogram("tiercache.lease.wait.duration", "Time misses waited for another node's lease.", loadBuckets())
	m.refresh = b.histogram("tiercache.refresh.duration", "Time taken by early refreshes.", loadBuckets())
	m.lag = b.histogram("tiercache.invalidation.lag", "Time from another node's publish of an invalidation to its application here.", lagBuckets())
	m.hits = b.counter("tiercache.hits", "Reads that found a value, by group and tier.")
	m.misses = b.counter("tiercache.misses", "Reads that found no value, by group and tier.")
	for _, s := range groupStats() {
		m.groupCounters = append(m.groupCounters, int64Counter{b.counter(s.name, s.help), s.value})
	}
	for _, s := range cacheStats() {
		m.cacheCounters = append(m.cacheCounters, int64Counter{b.counter(s.name, s.help), s.value})
	}
	m.l1Fills = b.counter("tiercache.l1.fills", "Fills handed to the L1; each is admitted or rejected (tiercache.l1.rejected).")
	m.downtime = b.floatCounter("tiercache.bus.downtime", "Time the bus subscription was lost, summed over the losses that ended.")
	g := &m.gauges
	g.l1Entries = b.gauge("tiercache.l1.entries", "Entries in the L1 key index.", "{entry}")
	g.l1Bytes = b.gauge("tiercache.l1.size", "Heap bytes the L1 accounts for: its entries (values, keys, index) and its fixed structures.", "By")
	g.l1MaxBytes = b.gauge("tiercache.l1.capacity", "Capacity of the L1 in heap bytes (L1MaxBytes).", "By")
	g.l1Degraded = b.gauge("tiercache.l1.degraded", "1 while the bus subscription is not confirmed and L1 serves only young entries.", "1")
	g.pending = b.gauge("tiercache.invalidations.pending", "Failed invalidations waiting for a background retry.", "{invalidation}")
	g.breaker = b.gauge("tiercache.redis.breaker.open", "Redis endpoints (a server, or each master of a cluster) whose circuit breaker refuses calls now: open within its cool-down, or probing.", "1")
	if b.err != nil {
		return nil, fmt.Errorf("otel: %w", b.err)
	}
	if m.reg, err = meter.RegisterCallback(m.observe, b.observables...); err != nil {
		return nil, fmt.Errorf("otel: %w", err)
	}
	return m, nil
}

// The histogram bounds, in seconds (as for the Prometheus adapter): loads
// from 0.5 ms to 10 s, propagation from 100 µs (a loopback hop) to 2.5 s.
func loadBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

func lagBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
}

// builder creates instruments, keeping the first error and the
// observables the callback reports.
type builder struct {
	meter       metric.Meter
	err         error
	observables []metric.Observable
}

func (b *builder) keep(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *builder) histogram(name, desc string, bounds []float64) metric.Float64Histogram {
	h, err := b.meter.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(bounds...))
	b.keep(err)
	return h
}

func (b *builder) counter(name, desc string) metric.Int64ObservableCounter {
	c, err := b.meter.Int64ObservableCounter(name, metric.WithDescription(desc))
	b.keep(err)
	b.observables = append(b.observables, c)
	return c
}

func (b *builder) floatCounter(name, desc string) metric.Float64ObservableCounter {
	c, err := b.meter.Float64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit("s"))
	b.keep(err)
	b.observables = append(b.observables, c)
	return c
}

func (b *builder) gauge(name, desc, unit string) metric.Int64ObservableGauge {
	g, err := b.meter.Int64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
	b.keep(err)
	b.observables = append(b.observables, g)
	return g
}

// Attach binds the Metrics to cache: from then on it reports cache's
// counters, L1 state and breaker state when the SDK collects. The Metrics
// must also be cache's [tiered.Options.Recorder] for the histograms.
//
// A Metrics binds to one cache for its life, because the counters it
// reports are the cache's running totals: the first non-nil cache binds
// it, and attaching that cache again does nothing. Attaching another cache
// or nil returns an error and changes nothing, before the binding as after
// it: a counter switched to another cache's total would go backwards, and
// one detached and attached again would be exported twice over with delta
// temporality. To stop reporting, [Metrics.Close] it; to report another
// cache, create another Metrics. It is safe for concurrent use.
func (m *Metrics) Attach(cache *tiered.Cache) error {
	if cache == nil {
		return errors.New("otel: Attach(nil): a Metrics stays bound to its cache; Close stops it")
	}
	if m.cache.CompareAndSwap(nil, cache) || m.cache.Load() == cache {
		return nil
	}
	return errors.New("otel: Metrics is bound to another cache; create one Metrics per cache")
}

// Close unregisters the callback: the observable instruments report
// nothing from then on. It is idempotent.
func (m *Metrics) Close() error { return m.reg.Unregister() }

// Record keeps the latency histograms; the cache calls it for every
// event. Hits, misses, breaker changes and the other counted events return
// at once: their counters and the breaker state are read from the cache
// when collected.
func (m *Metrics) Record(e tiered.Event) {
	switch e.Kind {
	case tiered.EventLoad:
		m.record(m.load, e.Group, e.Duration)
	case tiered.EventLeaseWaited:
		m.record(m.leaseWait, e.Group, e.Duration)
	case tiered.EventRefresh:
		m.record(m.refresh, e.Group, e.Duration)
	case tiered.EventInvalidationReceived:
		m.lag.Record(context.Background(), max(e.Duration, 0).Seconds(), m.cacheRecord...) // clocks of two machines: never negative
	}
}

func (m *Metrics) record(h metric.Float64Histogram, group string, d time.Duration) {
	h.Record(context.Background(), d.Seconds(), m.groupAttrs(group).record...)
}

// observe is the callback: it reports the counters of every group and of
// the cache, and the gauges, all read from the attached cache now.
func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	c := m.cache.Load()
	if c == nil {
		return nil
	}
	attrs := m.cacheObserve
	o.ObserveInt64(m.gauges.breaker, int64(c.BreakersOpen()), attrs...)
	by := c.StatsByGroup()
	for group, s := range by {
		m.observeGroup(o, group, &s)
	}
	for _, k := range m.cacheCounters {
		var v uint64
		for _, s := range by {
			v += k.value(&s)
		}
		o.ObserveInt64(k.inst, int64(v), attrs...)
	}
	var down time.Duration
	for _, s := range by {
		down += s.BusDowntime
	}
	o.ObserveFloat64(m.downtime, down.Seconds(), attrs...)
	l1 := c.L1State()
	o.ObserveInt64(m.l1Fills, int64(l1.Stored), attrs...)
	o.ObserveInt64(m.gauges.l1Entries, int64(l1.Entries), attrs...)
	o.ObserveInt64(m.gauges.l1Bytes, l1.Bytes, attrs...)
	o.ObserveInt64(m.gauges.l1MaxBytes, l1.MaxBytes, attrs...)
	o.ObserveInt64(m.gauges.l1Degraded, boolValue(l1.Degraded), attrs...)
	o.ObserveInt64(m.gauges.pending, int64(c.PendingInvalidations()), attrs...)
	return nil
}

// observeGroup reports the per-group counters of one group. The cache's
// own row (group "") is reported only where it is not zero.
func (m *Metrics) observeGroup(o metric.Observer, group string, s *tiered.Stats) {
	own := group == ""
	a := m.groupAttrs(group)
	tiers := [...]struct {
		attrs        []metric.ObserveOption
		hits, misses uint64
	}{{a.l1, s.L1Hits, s.L1Misses}, {a.l2, s.L2Hits, s.L2Misses}}
	for _, t := range tiers {
		if !own || t.hits != 0 {
			o.ObserveInt64(m.hits, int64(t.hits), t.attrs...)
		}
		if !own || t.misses != 0 {
			o.ObserveInt64(m.misses, int64(t.misses), t.attrs...)
		}
	}
	for _, k := range m.groupCounters {
		if v := k.value(s); !own || v != 0 {
			o.ObserveInt64(k.inst, int64(v), a.observe...)
		}
	}
}

func boolValue(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
