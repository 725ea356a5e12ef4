package prometheus

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tiercache/tiercache/tiered"
)

// Options configures a [Collector]. The zero value of every field is its
// documented default.
type Options struct {
	// ConstLabels are added to every metric, to tell several caches of one
	// process apart (say {"cache": "sessions"}). They must not be named
	// group, tier or le. Default: none.
	ConstLabels prometheus.Labels
	// LoadBuckets are the upper bounds, in seconds, of the load, lease wait
	// and refresh histograms, strictly increasing. Default: 0.5 ms, 1 ms,
	// 2.5 ms, 5 ms and so on up to 10 s.
	LoadBuckets []float64
	// LagBuckets are those of the propagation lag histogram. Default:
	// 100 µs (a loopback hop), 250 µs, 500 µs, 1 ms and so on up to 2.5 s.
	LagBuckets []float64
}

// Collector is a [tiered.Recorder] and a prometheus.Collector; see the
// package documentation. It is safe for concurrent use.
type Collector struct {
	cache atomic.Pointer[tiered.Cache]
	hists atomic.Pointer[histograms] // of the cache last attached; replaced with it

	mu   sync.Mutex    // protects last, and serializes Attach
	last *tiered.Cache // the last non-nil cache attached

	newHistograms func() *histograms
	groupCounters []groupCounter
	cacheCounters []cacheCounter
	hits, misses  *prometheus.Desc
	l1Entries     *prometheus.Desc
	l1Bytes       *prometheus.Desc
	l1MaxBytes    *prometheus.Desc
	l1Fills       *prometheus.Desc
	l1Degraded    *prometheus.Desc
	pending       *prometheus.Desc
	breaker       *prometheus.Desc
}

// histograms are the metrics a Collector keeps from the events it records.
type histograms struct {
	load, leaseWait, refresh *prometheus.HistogramVec // by group
	lag                      prometheus.Histogram
}

var (
	_ tiered.Recorder      = (*Collector)(nil)
	_ prometheus.Collector = (*Collector)(nil)
)

// New returns a Collector configured by opts, with no cache attached. It
// fails, with an error prefixed "prometheus: ", on invalid buckets or
// labels.
func New(opts Options) (*Collector, error) {
	if opts.LoadBuckets == nil {
		opts.LoadBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	}
	if opts.LagBuckets == nil {
		opts.LagBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	}
	for _, b := range [][]float64{opts.LoadBuckets, opts.LagBuckets} {
		if err := checkBuckets(b); err != nil {
			return nil, err
		}
	}
	for name := range opts.ConstLabels {
		if name == "group" || name == "tier" || name == "le" {
			return nil, fmt.Errorf("prometheus: const label %q is reserved", name)
		}
	}
	c := newCollector(opts)
	// A throwaway registry checks every name and label once, here, instead
	// of failing later at the user's registration or scrape.
	if err := prometheus.NewPedanticRegistry().Register(c); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	return c, nil
}

func checkBuckets(b []float64) error {
	if len(b) == 0 {
		return errors.New("prometheus: empty buckets")
	}
	for i, v := range b {
		if math.IsNaN(v) || (i > 0 && v <= b[i-1]) {
			return fmt.Errorf("prometheus: buckets %v are not strictly increasing", b)
		}
	}
	return nil
}

func newCollector(opts Options) *Collector {
	cl := opts.ConstLabels
	hist := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tiercache_" + name, Help: help, Buckets: buckets, ConstLabels: cl,
		}, []string{"group"})
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tiercache_"+name, help, labels, cl)
	}
	c := &Collector{
		newHistograms: func() *histograms {
			return &histograms{
				load:      hist("load_duration_seconds", "Time taken by loader calls, failed ones included.", opts.LoadBuckets),
				leaseWait: hist("lease_wait_duration_seconds", "Time misses waited for another node's lease.", opts.LoadBuckets),
				refresh:   hist("refresh_duration_seconds", "Time taken by early refreshes.", opts.LoadBuckets),
				lag: prometheus.NewHistogram(prometheus.HistogramOpts{
					Name: "tiercache_invalidation_lag_seconds", ConstLabels: cl, Buckets: opts.LagBuckets,
					Help: "Time from another node's publish of an invalidation to its application here (clocks of two machines).",
				}),
			}
		},
		hits:       desc("hits_total", "Reads that found a value, by tier.", "group", "tier"),
		misses:     desc("misses_total", "Reads that found no value, by tier.", "group", "tier"),
		l1Entries:  desc("l1_entries", "Entries in the L1 key index."),
		l1Bytes:    desc("l1_bytes", "Heap bytes the L1 accounts for: its entries (values, keys, index) and its fixed structures."),
		l1MaxBytes: desc("l1_max_bytes", "Capacity of the L1 in heap bytes (L1MaxBytes)."),
		l1Fills:    desc("l1_fills_total", "Fills handed to the L1; each is admitted or rejected (tiercache_l1_rejected_total)."),
		l1Degraded: desc("l1_degraded", "1 while the bus subscription is not confirmed and L1 serves only young entries."),
		pending:    desc("invalidations_pending", "Failed invalidations waiting for a background retry."),
		breaker:    desc("redis_breaker_open", "Redis endpoints (a server, or each master of a cluster) whose circuit breaker refuses calls now: open within its cool-down, or probing."),
	}
	for _, s := range groupStats() {
		c.groupCounters = append(c.groupCounters, groupCounter{desc(s.name, s.help, "group"), s.value})
	}
	for _, s := range cacheStats() {
		c.cacheCounters = append(c.cacheCounters, cacheCounter{desc(s.name, s.help), s.value})
	}
	c.hists.Store(c.newHistograms())
	return c
}

// Attach makes the Collector report cache's counters, L1 state and
// breaker state when scraped; until then it reports only the histograms.
// The Collector must be cache's [tiered.Options.Recorder] for the
// histograms.
//
// A later call replaces the cache, and nil detaches it (the Collector then
// reports the histograms only). Attaching a cache other than the last one
// attached starts the histograms afresh, so that nothing of the previous
// cache is reported with the new one: its counters drop to the new
// cache's totals, which Prometheus takes for a counter reset, and the
// histograms reset with them. Events the new cache recorded before its
// Attach are dropped with the old histograms, so attach a cache before
// using it. It is safe for concurrent use.
func (c *Collector) Attach(cache *tiered.Cache) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cache != nil && c.last != nil && cache != c.last {
		c.hists.Store(c.newHistograms())
	}
	if cache != nil {
		c.last = cache
	}
	c.cache.Store(cache)
}

// Record keeps the latency histograms; the cache calls it for every
// event. Hits, misses, breaker changes and the other counted events return
// at once: their counters and the breaker state are read from the cache
// when scraped.
func (c *Collector) Record(e tiered.Event) {
	switch e.Kind {
	case tiered.EventLoad:
		observe(c.hists.Load().load, e.Group, e.Duration)
	case tiered.EventLeaseWaited:
		observe(c.hists.Load().leaseWait, e.Group, e.Duration)
	case tiered.EventRefresh:
		observe(c.hists.Load().refresh, e.Group, e.Duration)
	case tiered.EventInvalidationReceived:
		c.hists.Load().lag.Observe(max(e.Duration, 0).Seconds()) // clocks of two machines: never negative
	}
}

func observe(h *prometheus.HistogramVec, group string, d time.Duration) {
	if o, err := h.GetMetricWithLabelValues(group); err == nil { // a group name that is not UTF-8 (an event made by hand: NewGroup refuses it) is dropped
		o.Observe(d.Seconds())
	}
}

// Describe sends the descriptors of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	h := c.hists.Load() // every set has the same descriptors
	h.load.Describe(ch)
	h.leaseWait.Describe(ch)
	h.refresh.Describe(ch)
	h.lag.Describe(ch)
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.l1Entries, c.l1Bytes, c.l1MaxBytes, c.l1Fills, c.l1Degraded, c.pending, c.breaker} {
		ch <- d
	}
	for _, g := range c.groupCounters {
		ch <- g.desc
	}
	for _, k := range c.cacheCounters {
		ch <- k.desc
	}
}

// Collect sends the histograms, then, with a cache attached, its counters
// and gauges as of now, the breaker gauge included ([tiered.Cache.BreakersOpen]).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	h := c.hists.Load()
	h.load.Collect(ch)
	h.leaseWait.Collect(ch)
	h.refresh.Collect(ch)
	h.lag.Collect(ch)
	cache := c.cache.Load()
	if cache == nil {
		return
	}
	ch <- constMetric(c.breaker, prometheus.GaugeValue, float64(cache.BreakersOpen()))
	by := cache.StatsByGroup()
	for group, s := range by {
		c.collectGroup(ch, group, &s)
	}
	for _, k := range c.cacheCounters {
		var v float64
		for _, s := range by {
			v += k.value(&s)
		}
		ch <- constMetric(k.desc, prometheus.CounterValue, v)
	}
	l1 := cache.L1State()
	ch <- constMetric(c.l1Entries, prometheus.GaugeValue, float64(l1.Entries))
	ch <- constMetric(c.l1Bytes, prometheus.GaugeValue, float64(l1.Bytes))
	ch <- constMetric(c.l1MaxBytes, prometheus.GaugeValue, float64(l1.MaxBytes))
	ch <- constMetric(c.l1Fills, prometheus.CounterValue, float64(l1.Stored))
	ch <- constMetric(c.l1Degraded, prometheus.GaugeValue, boolValue(l1.Degraded))
	ch <- constMetric(c.pending, prometheus.GaugeValue, float64(cache.PendingInvalidations()))
}

// collectGroup sends the per-group counters of one group. The cache's own
// row (group "") is sent only where it is not zero: few of these events
// happen outside a group (Redis errors of invalidations, for one).
func (c *Collector) collectGroup(ch chan<- prometheus.Metric, group string, s *tiered.Stats) {
	own := group == ""
	tiers := [...]struct {
		name         string
		hits, misses uint64
	}{{"l1", s.L1Hits, s.L1Misses}, {"l2", s.L2Hits, s.L2Misses}}
	for _, t := range tiers {
		if !own || t.hits != 0 {
			ch <- constMetric(c.hits, prometheus.CounterValue, float64(t.hits), group, t.name)
		}
		if !own || t.misses != 0 {
			ch <- constMetric(c.misses, prometheus.CounterValue, float64(t.misses), group, t.name)
		}
	}
	for _, g := range c.groupCounters {
		if v := g.value(s); !own || v != 0 {
			ch <- constMetric(g.desc, prometheus.CounterValue, v, group)
		}
	}
}

// constMetric is prometheus.MustNewConstMetric without the panic: should a
// label value ever be invalid, that metric of the scrape fails, with the
// reason, and nothing else. Group names cannot be: NewGroup refuses one
// that is not valid UTF-8.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
