package otel_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/metricstest"
	"github.com/tiercache/tiercache/internal/redistest"
	tcotel "github.com/tiercache/tiercache/otel"
	"github.com/tiercache/tiercache/tiered"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	goleak.VerifyTestMain(m)
}

// kind is how an instrument is aggregated.
type kind string

const (
	sum       kind = "sum"       // a monotonic sum: a counter
	gauge     kind = "gauge"     // a gauge
	histogram kind = "histogram" // a histogram (its count is the value)
)

// point is one data point of a collection: its kind and value.
type point struct {
	kind  kind
	value float64
}

// collection is one Collect of a ManualReader: data points by instrument
// name and attributes ("group=post,tier=l1").
type collection map[string]map[string]point

func collect(t *testing.T, r *sdkmetric.ManualReader) collection {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	c := make(collection)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != tcotel.ScopeName {
			t.Errorf("scope %q; want %q", sm.Scope.Name, tcotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			pts := make(map[string]point)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					pts[attrs(p.Attributes)] = point{sumKind(d.IsMonotonic), float64(p.Value)}
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					pts[attrs(p.Attributes)] = point{sumKind(d.IsMonotonic), p.Value}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					pts[attrs(p.Attributes)] = point{gauge, float64(p.Value)}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					pts[attrs(p.Attributes)] = point{histogram, float64(p.Count)}
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
			c[m.Name] = pts
		}
	}
	return c
}

func sumKind(monotonic bool) kind {
	if monotonic {
		return sum
	}
	return "up-down sum"
}

func attrs(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	sort.Strings(parts)
	return fmt.Sprint(parts)
}

type want struct {
	name  string
	attrs string
	kind  kind
	value float64
}

// check compares the wanted points and removes them from c.
func (c collection) check(t *testing.T, wants []want) {
	t.Helper()
	for _, w := range wants {
		p, ok := c[w.name][w.attrs]
		switch {
		case !ok:
			t.Errorf("%s %s: no such data point", w.name, w.attrs)
		case p.kind != w.kind:
			t.Errorf("%s is a %s; want a %s", w.name, p.kind, w.kind)
		case p.value != w.value:
			t.Errorf("%s %s = %v; want %v", w.name, w.attrs, p.value, w.value)
		}
		delete(c[w.name], w.attrs)
		if len(c[w.name]) == 0 {
			delete(c, w.name)
		}
	}
}

func newMetrics(t *testing.T) (*tcotel.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	m, err := tcotel.NewMetrics(mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, r
}

// TestCollectAfterWorkload reads the instruments through an in-memory
// reader after the scripted workload of package metricstest and checks
// every data point against what the script did, and its kind.
func TestCollectAfterWorkload(t *testing.T) {
	m, r := newMetrics(t)
	w := metricstest.Start(t, m)
	if err := m.Attach(w.A); err != nil {
		t.Fatal(err)
	}

	w.Run(t, func() {
		collect(t, r).check(t, []want{
			{"tiercache.l1.degraded", "[]", gauge, 1},
			{"tiercache.bus.lost", "[]", sum, 1},
			{"tiercache.bus.reconnects", "[]", sum, 0},
			{"tiercache.l1.flushes", "[]", sum, 2},
		})
	})

	c := collect(t, r)
	all := make(map[string]bool)
	for name := range c {
		all[name] = true
	}
	const (
		user, userL1, userL2 = "[group=user]", "[group=user tier=l1]", "[group=user tier=l2]"
		post, postL1, postL2 = "[group=post]", "[group=post tier=l1]", "[group=post tier=l2]"
		none                 = "[]"
	)
	wants := []want{
		{"tiercache.hits", userL1, sum, 2},
		{"tiercache.hits", userL2, sum, 1},
		{"tiercache.misses", userL1, sum, 6},
		{"tiercache.misses", userL2, sum, 5},
		{"tiercache.loads", user, sum, 5},
		{"tiercache.load.errors", user, sum, 0},
		{"tiercache.leases.won", user, sum, 5},
		{"tiercache.decode.errors", user, sum, 1},
		{"tiercache.load.duration", user, histogram, 5},

		{"tiercache.hits", postL1, sum, 0},
		{"tiercache.hits", postL2, sum, 0},
		{"tiercache.misses", postL1, sum, 4},
		{"tiercache.misses", postL2, sum, 2},
		{"tiercache.loads", post, sum, 3},
		{"tiercache.load.errors", post, sum, 1},
		{"tiercache.collapsed", post, sum, 1},
		{"tiercache.leases.won", post, sum, 2},
		{"tiercache.leases.busy", post, sum, 0},
		{"tiercache.leases.lost", post, sum, 0},
		{"tiercache.redis.errors", post, sum, 1},
		{"tiercache.decode.errors", post, sum, 0},
		{"tiercache.load.duration", post, histogram, 3},

		{"tiercache.invalidations.sent", none, sum, 2},
		{"tiercache.invalidations.received", none, sum, 1},
		{"tiercache.invalidations.retried", none, sum, 0},
		{"tiercache.invalidations.pending", none, gauge, 0},
		{"tiercache.patterns.applied", none, sum, 1},
		{"tiercache.l1.invalidated", none, sum, 2},
		{"tiercache.invalidation.lag", none, histogram, 1},
		{"tiercache.bus.lost", none, sum, 1},
		{"tiercache.bus.reconnects", none, sum, 1},
		{"tiercache.bus.gaps", none, sum, 0},
		{"tiercache.bus.malformed", none, sum, 0},
		{"tiercache.l1.flushes", none, sum, 3},
		{"tiercache.l1.degraded", none, gauge, 0},
		{"tiercache.l1.fills", none, sum, 8},
		{"tiercache.l1.rejected", none, sum, 1},
		{"tiercache.l1.evicted", none, sum, 0},
		{"tiercache.l1.entries", none, gauge, 5},
		{"tiercache.l1.size", none, gauge, float64(metricstest.Bytes())},
		{"tiercache.l1.capacity", none, gauge, metricstest.L1MaxBytes},
		{"tiercache.redis.breaker.open", none, gauge, 0},
		{"tiercache.redis.breaker.opens", none, sum, 0},
		{"tiercache.bus.downtime", none, sum, w.A.Stats().BusDowntime.Seconds()},
	}
	c.check(t, wants)
	if w.A.Stats().BusDowntime <= 0 {
		t.Error("no bus downtime after the cut")
	}
	// What the script does not drive: lease waits, renewals and refreshes
	// (their counters are there and zero; their histograms have no point),
	// and some counters of one group only. All must be zero.
	for name, pts := range c {
		for a, p := range pts {
			if p.value != 0 {
				t.Errorf("%s %s = %v; the script does not drive it", name, a, p.value)
			}
		}
	}
	for _, w := range wants {
		delete(all, w.name)
	}
	var undriven []string
	for name := range all {
		undriven = append(undriven, name)
	}
	sort.Strings(undriven)
	if fmt.Sprint(undriven) != "[tiercache.bus.rejected tiercache.fail_safe tiercache.leases.foreign tiercache.leases.renewed tiercache.leases.waited tiercache.patterns.flushes tiercache.refresh.errors tiercache.refreshes tiercache.stale]" {
		t.Errorf("instruments not checked: %v; want only the lease wait, renewal, refresh, foreign lease, rejected message, pattern flush, fail-safe and stale counters", undriven)
	}
}

// TestBreakerState: the breaker gauge is the attached cache's
// BreakersOpen as of the collection, not a tally of the breaker's events.
// An open that no close follows (the breaker of a master that a failover
// replaced, which no call probes again) does not hold it above 0; a
// breaker that refuses calls shows. Before Attach there is no gauge.
func TestBreakerState(t *testing.T) {
	m, r := newMetrics(t)
	if _, ok := collect(t, r)["tiercache.redis.breaker.open"]; ok {
		t.Error("a breaker gauge is reported before Attach")
	}
	c, openBreaker := breakerCache(t, m)
	if err := m.Attach(c); err != nil {
		t.Fatal(err)
	}
	m.Record(tiered.Event{Kind: tiered.EventBreakerOpen}) // no close will follow
	collect(t, r).check(t, []want{{"tiercache.redis.breaker.open", "[]", gauge, 0}})
	openBreaker()
	collect(t, r).check(t, []want{{"tiercache.redis.breaker.open", "[]", gauge, 1}})
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

// TestCloseUnregisters: after Close the observable instruments report
// nothing.
func TestCloseUnregisters(t *testing.T) {
	m, r := newMetrics(t)
	c, err := tiered.New(tiered.Options{Recorder: m})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := m.Attach(c); err != nil {
		t.Fatal(err)
	}
	if _, ok := collect(t, r)["tiercache.l1.capacity"]; !ok {
		t.Fatal("no L1 capacity gauge before Close")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := collect(t, r)["tiercache.l1.capacity"]; ok {
		t.Fatal("the L1 capacity gauge is still reported after Close")
	}
}

func TestNewMetricsNil(t *testing.T) {
	if _, err := tcotel.NewMetrics(nil); err == nil {
		t.Fatal("NewMetrics(nil) returned no error")
	}
}

// TestAttachBindsOnce: a Metrics stays bound to the first cache it is
// attached to. Attaching another cache or nil is an error and changes
// nothing, before the binding as after it; the same cache again is a
// no-op. Read with delta temporality, the loads counter never goes
// backwards and never counts a total twice.
func TestAttachBindsOnce(t *testing.T) {
	r := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(
		func(sdkmetric.InstrumentKind) metricdata.Temporality { return metricdata.DeltaTemporality }))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	m, err := tcotel.NewMetrics(mp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, b := loadedCache(t, m, 3), loadedCache(t, m, 1)
	if err := m.Attach(nil); err == nil {
		t.Error("Attach(nil) before any cache returned no error")
	}
	if _, ok := collect(t, r)["tiercache.loads"]; ok {
		t.Error("loads reported with no cache bound")
	}
	steps := []struct {
		name    string
		attach  *tiered.Cache
		wantErr bool
		delta   float64 // of tiercache.loads for group "user"
	}{
		{"Attach(a)", a, false, 3},
		{"Attach(a) again", a, false, 0},
		{"Attach(b)", b, true, 0},
		{"Attach(nil)", nil, true, 0},
		{"Attach(a) after the errors", a, false, 0},
	}
	for _, s := range steps {
		if err := m.Attach(s.attach); (err != nil) != s.wantErr {
			t.Errorf("%s = %v; want an error: %v", s.name, err, s.wantErr)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "otel: ") {
			t.Errorf("%s = %q; want the prefix \"otel: \"", s.name, err)
		}
		if p, ok := collect(t, r)["tiercache.loads"]["[group=user]"]; !ok || p.value != s.delta {
			t.Errorf("after %s: tiercache.loads delta %v (reported: %v); want %v", s.name, p.value, ok, s.delta)
		}
	}
}

// loadedCache returns an L1-only cache whose group "user" has loaded n
// times, with rec as its Recorder.
func loadedCache(t *testing.T, rec tiered.Recorder, n int) *tiered.Cache {
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
	for i := range n {
		if _, err := g.Fetch(context.Background(), fmt.Sprint(i), loadProfile); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestRecordAllocatesNothing: recording a latency costs no allocation once
// the group's attribute set exists, with attributes of WithAttributes too.
func TestRecordAllocatesNothing(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates on its own; run without -race")
	}
	for _, opts := range [][]tcotel.Option{nil, {tcotel.WithAttributes(attribute.String("cache", "a"))}} {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		t.Cleanup(func() { mp.Shutdown(context.Background()) })
		m, err := tcotel.NewMetrics(mp, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		for _, e := range recordedEvents() {
			m.Record(e)
			if n := testing.AllocsPerRun(1000, func() { m.Record(e) }); n != 0 {
				t.Errorf("Record(%v) with %d options allocates %v times; want 0", e.Kind, len(opts), n)
			}
		}
	}
}

// TestWithAttributes: two caches whose Metrics share a MeterProvider, told
// apart by WithAttributes, give two series of every instrument, counters,
// gauges and histograms alike.
func TestWithAttributes(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	for _, c := range []struct {
		name  string
		loads int
	}{{"a", 3}, {"b", 1}} {
		m, err := tcotel.NewMetrics(mp, tcotel.WithAttributes(attribute.String("cache", c.name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if err := m.Attach(loadedCache(t, m, c.loads)); err != nil {
			t.Fatal(err)
		}
		m.Record(tiered.Event{Kind: tiered.EventInvalidationReceived})
	}
	collect(t, r).check(t, []want{
		{"tiercache.loads", "[cache=a group=user]", sum, 3},
		{"tiercache.loads", "[cache=b group=user]", sum, 1},
		{"tiercache.misses", "[cache=a group=user tier=l1]", sum, 3},
		{"tiercache.misses", "[cache=b group=user tier=l1]", sum, 1},
		{"tiercache.load.duration", "[cache=a group=user]", histogram, 3},
		{"tiercache.load.duration", "[cache=b group=user]", histogram, 1},
		{"tiercache.invalidation.lag", "[cache=a]", histogram, 1},
		{"tiercache.invalidation.lag", "[cache=b]", histogram, 1},
		{"tiercache.l1.fills", "[cache=a]", sum, 3},
		{"tiercache.l1.fills", "[cache=b]", sum, 1},
		{"tiercache.redis.breaker.open", "[cache=a]", gauge, 0},
		{"tiercache.redis.breaker.open", "[cache=b]", gauge, 0},
	})
}

// TestWithAttributesRejected: the keys the Metrics sets itself, and an
// empty key, are errors from NewMetrics.
func TestWithAttributesRejected(t *testing.T) {
	mp := sdkmetric.NewMeterProvider()
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	for _, kv := range []attribute.KeyValue{
		attribute.String("group", "x"),
		attribute.String("tier", "l1"),
		attribute.String("", "x"),
	} {
		m, err := tcotel.NewMetrics(mp, tcotel.WithAttributes(attribute.String("cache", "a"), kv))
		if err == nil || !strings.HasPrefix(err.Error(), "otel: ") {
			t.Errorf("NewMetrics(WithAttributes(%q=%v)) = %v; want an error prefixed \"otel: \"", kv.Key, kv.Value.Emit(), err)
		}
		if m != nil {
			m.Close()
		}
	}
}
