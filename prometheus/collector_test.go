package prometheus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/metricstest"
	"github.com/tiercache/tiercache/internal/redistest"
	tcprom "github.com/tiercache/tiercache/prometheus"
	"github.com/tiercache/tiercache/tiered"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	goleak.VerifyTestMain(m)
}

// scrape is one Gather of a registry, by metric name.
type scrape map[string]*dto.MetricFamily

func gather(t *testing.T, reg *prometheus.Registry) scrape {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	s := make(scrape)
	for _, f := range fams {
		s[f.GetName()] = f
	}
	return s
}

// get returns the value of the series of name whose labels are labels
// (name, value pairs): a counter's or gauge's value, a histogram's sample
// count. ok is false when there is no such series.
func (s scrape) get(name string, labels ...string) (v float64, typ dto.MetricType, ok bool) {
	f := s[name]
	if f == nil {
		return 0, 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), f.GetType(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), f.GetType(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), f.GetType(), true
		}
	}
	return 0, f.GetType(), false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	want := make(map[string]string)
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	got := make(map[string]string)
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// checked marks a family as checked, for unchecked.
func (s scrape) checked(name string) {
	if f := s[name]; f != nil {
		f.Help = nil
	}
}

// unchecked returns the families that check has not seen, and the sum of
// their values.
func (s scrape) unchecked() (names []string, sum float64) {
	for name, f := range s {
		if f.Help == nil {
			continue
		}
		names = append(names, name)
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return names, sum
}

type want struct {
	name   string
	labels []string
	typ    dto.MetricType
	value  float64
}

const (
	counter   = dto.MetricType_COUNTER
	gauge     = dto.MetricType_GAUGE
	histogram = dto.MetricType_HISTOGRAM
)

func (s scrape) check(t *testing.T, wants []want) {
	t.Helper()
	for _, w := range wants {
		s.checked(w.name)
		v, typ, ok := s.get(w.name, w.labels...)
		switch {
		case !ok:
			t.Errorf("%s%v: no such series", w.name, w.labels)
		case typ != w.typ:
			t.Errorf("%s is a %v; want a %v", w.name, typ, w.typ)
		case v != w.value:
			t.Errorf("%s%v = %v; want %v", w.name, w.labels, v, w.value)
		}
	}
}

// TestScrapeAfterWorkload scrapes the collector of a cache after the
// scripted workload of package metricstest (hits, misses, a collapsed
// load, a failed load, a decode error, a rejected L1 fill, invalidations
// sent and received, a bus loss forced by cutting the connection) and
// checks every metric against what the script did, and its type.
func TestScrapeAfterWorkload(t *testing.T) {
	col, err := tcprom.New(tcprom.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := metricstest.Start(t, col)
	col.Attach(w.A)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)

	var duringCut scrape
	w.Run(t, func() { duringCut = gather(t, reg) })
	duringCut.check(t, []want{
		{"tiercache_l1_degraded", nil, gauge, 1},
		{"tiercache_bus_lost_total", nil, counter, 1},
		{"tiercache_bus_reconnects_total", nil, counter, 0},
		{"tiercache_l1_flushes_total", nil, counter, 2},
	})

	s := gather(t, reg)
	user, post := []string{"group", "user"}, []string{"group", "post"}
	with := func(l []string, more ...string) []string { return append(append([]string(nil), l...), more...) }
	s.check(t, []want{
		{"tiercache_hits_total", with(user, "tier", "l1"), counter, 2},
		{"tiercache_hits_total", with(user, "tier", "l2"), counter, 1},
		{"tiercache_misses_total", with(user, "tier", "l1"), counter, 6},
		{"tiercache_misses_total", with(user, "tier", "l2"), counter, 5},
		{"tiercache_loads_total", user, counter, 5},
		{"tiercache_load_errors_total", user, counter, 0},
		{"tiercache_leases_won_total", user, counter, 5},
		{"tiercache_decode_errors_total", user, counter, 1},
		{"tiercache_load_duration_seconds", user, histogram, 5},

		{"tiercache_hits_total", with(post, "tier", "l1"), counter, 0},
		{"tiercache_hits_total", with(post, "tier", "l2"), counter, 0},
		{"tiercache_misses_total", with(post, "tier", "l1"), counter, 4},
		{"tiercache_misses_total", with(post, "tier", "l2"), counter, 2},
		{"tiercache_loads_total", post, counter, 3},
		{"tiercache_load_errors_total", post, counter, 1},
		{"tiercache_collapsed_total", post, counter, 1},
		{"tiercache_leases_won_total", post, counter, 2},
		{"tiercache_leases_busy_total", post, counter, 0},
		{"tiercache_leases_lost_total", post, counter, 0},
		{"tiercache_redis_errors_total", post, counter, 1},
		{"tiercache_decode_errors_total", post, counter, 0},
		{"tiercache_load_duration_seconds", post, histogram, 3},

		{"tiercache_invalidations_sent_total", nil, counter, 2},
		{"tiercache_invalidations_received_total", nil, counter, 1},
		{"tiercache_invalidations_retried_total", nil, counter, 0},
		{"tiercache_invalidations_pending", nil, gauge, 0},
		{"tiercache_patterns_applied_total", nil, counter, 1},
		{"tiercache_l1_invalidated_total", nil, counter, 2},
		{"tiercache_invalidation_lag_seconds", nil, histogram, 1},
		{"tiercache_bus_lost_total", nil, counter, 1},
		{"tiercache_bus_reconnects_total", nil, counter, 1},
		{"tiercache_bus_gaps_total", nil, counter, 0},
		{"tiercache_bus_malformed_total", nil, counter, 0},
		{"tiercache_l1_flushes_total", nil, counter, 3},
		{"tiercache_l1_degraded", nil, gauge, 0},
		{"tiercache_l1_fills_total", nil, counter, 8},
		{"tiercache_l1_rejected_total", nil, counter, 1},
		{"tiercache_l1_evicted_total", nil, counter, 0},
		{"tiercache_l1_entries", nil, gauge, 5},
		{"tiercache_l1_bytes", nil, gauge, float64(metricstest.Bytes())},
		{"tiercache_l1_max_bytes", nil, gauge, metricstest.L1MaxBytes},
		{"tiercache_redis_breaker_open", nil, gauge, 0},
		{"tiercache_redis_breaker_opens_total", nil, counter, 0},
	})
	// The script has no lease waits, lease renewals, refreshes, foreign
	// leases, rejected messages, pattern flushes, fail-safe fallbacks or
	// stale serves:
	// those counters must be there, and zero (their histograms have no
	// series until a first observation).
	s.checked("tiercache_bus_downtime_seconds_total")
	if names, sum := s.unchecked(); len(names) != 9 || sum != 0 {
		t.Errorf("metrics the script does not drive: %v, sum %v; want the 9 lease wait, renewal, refresh, foreign lease, rejected message, pattern flush, fail-safe and stale counters, all zero", names, sum)
	}
	down, _, _ := s.get("tiercache_bus_downtime_seconds_total")
	if want := w.A.Stats().BusDowntime.Seconds(); down <= 0 || down != want {
		t.Errorf("tiercache_bus_downtime_seconds_total = %v; want %v (> 0)", down, want)
	}
	if _, _, ok := s.get("tiercache_redis_errors_total", "group", ""); ok {
		t.Error("a zero series for the cache's own Redis errors was exported")
	}
	for name := range s {
		if !strings.HasPrefix(name, "tiercache_") {
			t.Errorf("metric %s lacks the tiercache_ prefix", name)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestBreakerState: the breaker gauge is the attached cache's
// BreakersOpen as of the scrape, not a tally of the breaker's events. An
// open that no close follows (the breaker of a master that a failover
// replaced, which no call probes again) does not hold it above 0; a
// breaker that refuses calls shows; a cache attached in its place starts
// from its own state. Before Attach there is no gauge.
func TestBreakerState(t *testing.T) {
	col, err := tcprom.New(tcprom.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	if _, _, ok := gather(t, reg).get("tiercache_redis_breaker_open"); ok {
		t.Error("a breaker gauge is scraped before Attach")
	}
	c, openBreaker := breakerCache(t, col)
	col.Attach(c)
	col.Record(tiered.Event{Kind: tiered.EventBreakerOpen}) // no close will follow
	gather(t, reg).check(t, []want{{"tiercache_redis_breaker_open", nil, gauge, 0}})
	openBreaker()
	gather(t, reg).check(t, []want{{"tiercache_redis_breaker_open", nil, gauge, 1}})

	next, err := tiered.New(tiered.Options{Recorder: col})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	col.Attach(next)
	gather(t, reg).check(t, []want{{"tiercache_redis_breaker_open", nil, gauge, 0}})
}

// breakerCache returns a cache on a real redis-server, reached through a
// proxy, whose breaker opens at the first failed call and stays open for
// an hour; rec is its Recorder. openBreaker cuts the proxy and fails a
// read, which opens the breaker.
func breakerCache(t *testing.T, rec tiered.Recorder) (c *tiered.Cache, openBreaker func()) {
	t.Helper()
	proxy := redistest.NewProxy(t, redistest.Start(t).Addr())
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	c, err := tiered.New(tiered.Options{
		Redis: rdb, Namespace: "br", Recorder: rec, Heartbeat: time.Hour,
		BreakerFailures: 1, BreakerCooldown: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	g, err := tiered.NewGroup[string](c, "user", tiered.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c, func() {
		t.Helper()
		proxy.Cut()
		if _, err := g.Fetch(context.Background(), "1", loadProfile); err != nil {
			t.Fatalf("Fetch with Redis cut: %v", err)
		}
		if n := c.BreakersOpen(); n != 1 {
			t.Fatalf("BreakersOpen() after a failed read = %d; want 1", n)
		}
	}
}

// TestAttachAnotherCache: attaching another cache leaves nothing of the
// first one in a scrape: counters are the new cache's, and the histograms
// start afresh. Detaching (nil) and attaching the same cache again keeps
// them.
func TestAttachAnotherCache(t *testing.T) {
	col, err := tcprom.New(tcprom.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	user := []string{"group", "user"}

	a, fetchA := userCache(t, col)
	col.Attach(a)
	fetchA("1", "2", "3")
	gather(t, reg).check(t, []want{
		{"tiercache_loads_total", user, counter, 3},
		{"tiercache_load_duration_seconds", user, histogram, 3},
	})

	b, fetchB := userCache(t, col)
	col.Attach(b)
	s := gather(t, reg)
	s.check(t, []want{{"tiercache_loads_total", user, counter, 0}})
	if _, _, ok := s.get("tiercache_load_duration_seconds", user...); ok {
		t.Error("the load histogram of the first cache is still scraped with the second")
	}
	fetchB("1")
	gather(t, reg).check(t, []want{
		{"tiercache_loads_total", user, counter, 1},
		{"tiercache_load_duration_seconds", user, histogram, 1},
	})

	col.Attach(nil)
	s = gather(t, reg)
	s.check(t, []want{{"tiercache_load_duration_seconds", user, histogram, 1}})
	if _, _, ok := s.get("tiercache_loads_total", user...); ok {
		t.Error("counters scraped with no cache attached")
	}
	col.Attach(b)
	gather(t, reg).check(t, []want{
		{"tiercache_loads_total", user, counter, 1},
		{"tiercache_load_duration_seconds", user, histogram, 1},
	})
}

// userCache returns an L1-only cache with rec as its Recorder, and a
// function that fetches ids from its group "user" (each a load).
func userCache(t *testing.T, rec tiered.Recorder) (*tiered.Cache, func(ids ...string)) {
	t.Helper()
	c, err := tiered.New(tiered.Options{Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	g, err := tiered.NewGroup[string](c, "user", tiered.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c, func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if _, err := g.Fetch(context.Background(), id, loadProfile); err != nil {
				t.Fatalf("Fetch(%q): %v", id, err)
			}
		}
	}
}

// TestNewRejectsBadOptions: invalid buckets and labels are errors from
// New, not panics at the first observation or at registration.
func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []tcprom.Options{
		{LoadBuckets: []float64{1, 0.5}},
		{LagBuckets: []float64{}},
		{ConstLabels: prometheus.Labels{"group": "x"}},
		{ConstLabels: prometheus.Labels{"le": "x"}},
		{ConstLabels: prometheus.Labels{"": "x"}},
	} {
		if _, err := tcprom.New(o); err == nil || !strings.HasPrefix(err.Error(), "prometheus: ") {
			t.Errorf("New(%+v) = %v; want an error prefixed \"prometheus: \"", o, err)
		}
	}
	if _, err := tcprom.New(tcprom.Options{ConstLabels: prometheus.Labels{"cache": "sessions"}}); err != nil {
		t.Errorf("New with a valid const label: %v", err)
	}
}

// TestRecordGroupNotUTF8: tiered.NewGroup refuses a group name that is
// not valid UTF-8, so no cache reports one; an event recorded by hand with
// such a group is dropped, and the scrape goes on without it.
func TestRecordGroupNotUTF8(t *testing.T) {
	col, err := tcprom.New(tcprom.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tiered.New(tiered.Options{Recorder: col})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	col.Attach(c)
	if _, err := tiered.NewGroup[string](c, "bad\xff", tiered.GroupOptions{}); err == nil {
		t.Fatal("NewGroup accepted a group name that is not UTF-8")
	}
	col.Record(tiered.Event{Kind: tiered.EventLoad, Group: "bad\xff"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	s := gather(t, reg)
	if _, _, ok := s.get("tiercache_l1_entries"); !ok {
		t.Error("the scrape lacks the cache's metrics")
	}
	if f := s["tiercache_load_duration_seconds"]; f != nil {
		t.Errorf("the load recorded with a bad group name was kept: %v", f)
	}
}
