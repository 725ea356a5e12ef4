// Package otel exports the metrics of a [tiered.Cache] to OpenTelemetry,
// and traces its loads and Redis calls.
//
// Metrics: [Metrics] is the cache's [tiered.Recorder], from which it
// records histograms of load latency, lease waits, refreshes and
// invalidation propagation lag, and it reports the cache's counters
// ([tiered.Cache.StatsByGroup]) and L1 state ([tiered.Cache.L1State])
// through observable instruments when the SDK collects, so that the hit
// path does no metric work at all.
//
//	import tcotel "github.com/tiercache/tiercache/otel"
//
//	m, err := tcotel.NewMetrics(meterProvider)
//	c, err := tiered.New(tiered.Options{Redis: rdb, Recorder: m})
//	err = m.Attach(c) // binds m to c: one Metrics per cache
//	defer m.Close()
//
// The instruments are named tiercache.*; per-group ones carry a group
// attribute ("" for the cache's own events), hits and misses a tier
// attribute too; [WithAttributes] adds attributes to every data point. One
// Metrics serves one Cache: [Metrics.Attach] binds it for good, and a
// second cache needs a Metrics of its own, told apart by its attributes
// when both share a MeterProvider.
//
// Traces: [TraceLoader] and [TraceBatchLoader] wrap a loader in a span, a
// child of the caller's; [InstrumentClient] (or [RedisHook]) adds a
// go-redis hook that puts a client span around each Redis command and
// pipeline made inside a trace.
//
//	tcotel.InstrumentClient(rdb, tracerProvider) // before tiered.New
//	loadUser := tcotel.TraceLoader(tracerProvider, users, loadUserFromDB)
//	u, err := users.Fetch(ctx, "42", loadUser)
package otel
