package otel_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	tcotel "github.com/tiercache/tiercache/otel"
	"github.com/tiercache/tiercache/tiered"
)

func loadProfile(_ context.Context, id string) (string, error) { return "profile " + id, nil }

// Metrics is the cache's Recorder, attached to the cache once it exists;
// the SDK's reader collects it (here an in-memory reader, in production an
// exporter's).
func ExampleNewMetrics() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	m, err := tcotel.NewMetrics(mp)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	c, err := tiered.New(tiered.Options{Recorder: m}) // add Redis: your client
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if err := m.Attach(c); err != nil { // binds m to c for good
		fmt.Println(err)
		return
	}

	profiles, _ := tiered.NewGroup[string](c, "user_profile", tiered.GroupOptions{})
	ctx := context.Background()
	profiles.Fetch(ctx, "42", loadProfile) // a miss: loaded
	c.WaitL1()
	profiles.Fetch(ctx, "42", loadProfile) // an L1 hit

	var rm metricdata.ResourceMetrics
	reader.Collect(ctx, &rm)
	for _, metric := range rm.ScopeMetrics[0].Metrics {
		switch metric.Name {
		case "tiercache.hits", "tiercache.loads":
			for _, p := range metric.Data.(metricdata.Sum[int64]).DataPoints {
				if tier, _ := p.Attributes.Value("tier"); tier.AsString() != "l2" {
					fmt.Println(metric.Name, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Value)
				}
			}
		case "tiercache.load.duration":
			fmt.Println(metric.Name, "count", metric.Data.(metricdata.Histogram[float64]).DataPoints[0].Count)
		}
	}
	// Unordered output:
	// tiercache.hits group=user_profile,tier=l1 1
	// tiercache.loads group=user_profile 1
	// tiercache.load.duration count 1
}

// Attach binds a Metrics to one cache for good: the same cache again is a
// no-op, and another cache (or nil) is an error that changes nothing. A
// second cache gets a Metrics of its own.
func ExampleMetrics_Attach() {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	m, err := tcotel.NewMetrics(mp)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	a, _ := tiered.New(tiered.Options{Recorder: m})
	defer a.Close()
	b, _ := tiered.New(tiered.Options{})
	defer b.Close()

	fmt.Println(m.Attach(a))
	fmt.Println(m.Attach(a))
	fmt.Println(m.Attach(b))
	fmt.Println(m.Attach(nil))
	// Output:
	// <nil>
	// <nil>
	// otel: Metrics is bound to another cache; create one Metrics per cache
	// otel: Attach(nil): a Metrics stays bound to its cache; Close stops it
}

// WithAttributes tells apart two caches whose Metrics share one
// MeterProvider: each data point carries its cache's attributes.
func ExampleWithAttributes() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	ctx := context.Background()
	for _, name := range []string{"sessions", "profiles"} {
		m, err := tcotel.NewMetrics(mp, tcotel.WithAttributes(attribute.String("cache", name)))
		if err != nil {
			fmt.Println(err)
			return
		}
		defer m.Close()
		c, _ := tiered.New(tiered.Options{Recorder: m})
		defer c.Close()
		if err := m.Attach(c); err != nil {
			fmt.Println(err)
			return
		}
		g, _ := tiered.NewGroup[string](c, "user", tiered.GroupOptions{})
		g.Fetch(ctx, "42", loadProfile)
	}

	var rm metricdata.ResourceMetrics
	reader.Collect(ctx, &rm)
	for _, metric := range rm.ScopeMetrics[0].Metrics {
		if metric.Name == "tiercache.loads" {
			for _, p := range metric.Data.(metricdata.Sum[int64]).DataPoints {
				fmt.Println(metric.Name, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Value)
			}
		}
	}
	_, err := tcotel.NewMetrics(mp, tcotel.WithAttributes(attribute.String("group", "x")))
	fmt.Println(err)
	// Unordered output:
	// tiercache.loads cache=sessions,group=user 1
	// tiercache.loads cache=profiles,group=user 1
	// otel: attribute "group" is reserved
}

// TraceLoader wraps a loader once, at start-up; each load is then a span
// under the request's.
func ExampleTraceLoader() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	c, _ := tiered.New(tiered.Options{})
	defer c.Close()
	profiles, _ := tiered.NewGroup[string](c, "user_profile", tiered.GroupOptions{})
	load := tcotel.TraceLoader(tp, profiles, loadProfile)

	ctx, request := tp.Tracer("app").Start(context.Background(), "GET /profile/42")
	profiles.Fetch(ctx, "42", load)
	request.End()
	for _, s := range spans.Ended() {
		fmt.Print(s.Name())
		for _, kv := range s.Attributes() {
			fmt.Printf(" %s=%s", kv.Key, kv.Value.String())
		}
		fmt.Println()
	}
	// Output:
	// tiercache.load tiercache.group=user_profile tiercache.id=42
	// GET /profile/42
}

// InstrumentClient traces the Redis calls made inside a trace.
func ExampleInstrumentClient() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	tcotel.InstrumentClient(rdb, tp) // before tiered.New

	ctx, request := tp.Tracer("app").Start(context.Background(), "request")
	rdb.Set(ctx, "greeting", "hello", 0)
	rdb.Get(ctx, "greeting")
	rdb.Get(context.Background(), "greeting") // outside any trace: not traced
	request.End()
	for _, s := range spans.Ended() {
		if s.Parent().SpanID() == request.SpanContext().SpanID() { // leave out the connection's handshake
			fmt.Println(s.Name(), s.SpanKind())
		}
	}
	// Output:
	// SET client
	// GET client
}
