package otel_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tiercache/tiercache/internal/redistest"
	tcotel "github.com/tiercache/tiercache/otel"
	"github.com/tiercache/tiercache/tiered"
)

func newTracer(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, rec
}

// tracedCache returns a cache on a real redis-server whose client is
// instrumented with tp.
func tracedCache(t *testing.T, tp trace.TracerProvider) (*tiered.Cache, *redis.Client) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	tcotel.InstrumentClient(rdb, tp)
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "tr", Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, rdb
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// TestTraceFetch: a Fetch that misses inside a trace puts the load and
// every Redis call it makes under the caller's span; a loader error and a
// loader panic set the load span's status.
func TestTraceFetch(t *testing.T) {
	tp, rec := newTracer(t)
	c, _ := tracedCache(t, tp)
	users, err := tiered.NewGroup[string](c, "user", tiered.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	load := tcotel.TraceLoader(tp, users, func(_ context.Context, id string) (string, error) {
		switch id {
		case "err":
			return "", errors.New("no such user")
		case "panic":
			panic("loader bug")
		}
		return "user " + id, nil
	})
	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := users.Fetch(ctx, "1", load); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Fetch(ctx, "err", load); err == nil {
		t.Fatal("Fetch(err) returned no error")
	}
	func() {
		defer func() {
			if _, ok := recover().(*tiered.PanicError); !ok {
				t.Error("Fetch(panic) did not panic with a *tiered.PanicError")
			}
		}()
		users.Fetch(ctx, "panic", load)
	}()
	request.End()

	loads := make(map[string]sdktrace.ReadOnlySpan)
	redisOps := make(map[string]int)
	for _, s := range rec.Ended() {
		switch {
		case s.Name() == "tiercache.load":
			id, _ := attr(s, "tiercache.id")
			loads[id.AsString()] = s
		case s.SpanKind() == trace.SpanKindClient:
			redisOps[s.Name()]++
			if sys, _ := attr(s, "db.system.name"); sys.AsString() != "redis" {
				t.Errorf("Redis span %s: db.system.name = %q", s.Name(), sys.AsString())
			}
		default:
			continue
		}
		// A load or a command is a child of the request; a new
		// connection's handshake (HELLO) is a child of its command.
		if s.Parent().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("span %s is not in the request's trace", s.Name())
		}
		if s.Name() == "tiercache.load" && s.Parent().SpanID() != request.SpanContext().SpanID() {
			t.Errorf("load span is not a child of the request")
		}
	}
	if len(loads) != 3 {
		t.Fatalf("load spans for %d ids; want 3 (1, err, panic)", len(loads))
	}
	if g, _ := attr(loads["1"], "tiercache.group"); g.AsString() != "user" {
		t.Errorf("load span tiercache.group = %q; want user", g.AsString())
	}
	for id, want := range map[string]codes.Code{"1": codes.Unset, "err": codes.Error, "panic": codes.Error} {
		if got := loads[id].Status().Code; got != want {
			t.Errorf("load span of %s: status %v; want %v", id, got, want)
		}
	}
	if !strings.Contains(loads["panic"].Status().Description, "loader bug") {
		t.Errorf("panic span status %q does not name the panic", loads["panic"].Status().Description)
	}
	// Each miss reads the key and takes its lease (with the server's time)
	// in one script call (EVAL the first time, EVALSHA after), then fills
	// with a script: at least 3 script calls and more calls besides.
	t.Logf("Redis spans: %v", redisOps)
	if redisOps["EVAL"]+redisOps["EVALSHA"] < 3 || len(redisOps) < 2 {
		t.Errorf("Redis spans %v; want a lease script per miss and the fill calls", redisOps)
	}
}

// TestRedisHook: only calls inside a trace are traced; a miss (redis.Nil)
// is no failure, an error reply is, in a command and in a pipeline.
func TestRedisHook(t *testing.T) {
	tp, rec := newTracer(t)
	_, rdb := tracedCache(t, tp)
	base := len(rec.Ended())
	bg := context.Background()
	rdb.Get(bg, "absent") // no span: no trace in progress
	if n := len(rec.Ended()) - base; n != 0 {
		t.Fatalf("a call outside any trace made %d spans", n)
	}
	ctx, request := tp.Tracer("test").Start(bg, "request")
	defer request.End()
	rdb.Get(ctx, "absent")
	rdb.Do(ctx, "NOSUCHCMD")
	miss := rdb.Pipeline()
	miss.Get(ctx, "absent")
	miss.Exec(ctx)
	fail := rdb.Pipeline()
	fail.Get(ctx, "absent")
	fail.Do(ctx, "NOSUCHCMD")
	fail.Exec(ctx)
	var spans []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended()[base:] {
		if s.Parent().SpanID() == request.SpanContext().SpanID() { // not a new connection's handshake
			spans = append(spans, s)
		}
	}
	want := []struct {
		name string
		code codes.Code
	}{{"GET", codes.Unset}, {"NOSUCHCMD", codes.Error}, {"PIPELINE", codes.Unset}, {"PIPELINE", codes.Error}}
	if len(spans) != len(want) {
		t.Fatalf("%d spans; want %d", len(spans), len(want))
	}
	for i, w := range want {
		if spans[i].Name() != w.name || spans[i].Status().Code != w.code {
			t.Errorf("span %d: %s %v; want %s %v", i, spans[i].Name(), spans[i].Status().Code, w.name, w.code)
		}
	}
	if n, _ := attr(spans[3], "db.operation.batch.size"); n.AsInt64() != 2 {
		t.Errorf("pipeline batch size %d; want 2", n.AsInt64())
	}
}

// TestNilTracerProvider: a nil provider leaves the loader and the client
// as they are.
func TestNilTracerProvider(t *testing.T) {
	c, err := tiered.New(tiered.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, _ := tiered.NewGroup[string](c, "g", tiered.GroupOptions{})
	if tcotel.TraceLoader[string](nil, g, nil) != nil {
		t.Error("TraceLoader(nil, g, nil) is not nil")
	}
	tcotel.InstrumentClient(nil, nil) // no panic
}

// TestTraceNotFound: a loader's "not found" answer (an error wrapping
// tiered.ErrNotFound) is a normal outcome, as the cache counts it: the
// span keeps an unset status, records no error, and says
// tiercache.not_found. Another error still sets the status.
func TestTraceNotFound(t *testing.T) {
	tp, rec := newTracer(t)
	g := lone(t)
	notFound := fmt.Errorf("user 7: %w", tiered.ErrNotFound)
	load := tcotel.TraceLoader(tp, g, func(context.Context, string) (string, error) { return "", notFound })
	batch := tcotel.TraceBatchLoader(tp, g, func(context.Context, []string) (map[string]string, error) { return nil, notFound })
	failed := tcotel.TraceLoader(tp, g, func(context.Context, string) (string, error) { return "", errors.New("db down") })
	ctx := context.Background()
	if _, err := load(ctx, "7"); err != notFound {
		t.Fatalf("load(7) = %v; want the loader's error", err)
	}
	if _, err := batch(ctx, []string{"7"}); err != notFound {
		t.Fatalf("batch(7) = %v; want the loader's error", err)
	}
	failed(ctx, "8")
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans; want 3", len(spans))
	}
	for _, s := range spans[:2] {
		if s.Status().Code != codes.Unset || len(s.Events()) != 0 {
			t.Errorf("%s of a not-found answer: status %v, %d events; want Unset and none", s.Name(), s.Status().Code, len(s.Events()))
		}
		if v, ok := attr(s, "tiercache.not_found"); !ok || !v.AsBool() {
			t.Errorf("%s of a not-found answer: tiercache.not_found = %v (set: %v); want true", s.Name(), v.AsBool(), ok)
		}
	}
	if s := spans[2]; s.Status().Code != codes.Error {
		t.Errorf("span of a failed load: status %v; want Error", s.Status().Code)
	} else if _, ok := attr(s, "tiercache.not_found"); ok {
		t.Error("a failed load's span says tiercache.not_found")
	}
}

// lone returns a group "user" of an L1-only cache.
func lone(t *testing.T) *tiered.Group[string] {
	t.Helper()
	c, err := tiered.New(tiered.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	g, err := tiered.NewGroup[string](c, "user", tiered.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestNilGroup: a nil group gives an empty group attribute, not a panic.
func TestNilGroup(t *testing.T) {
	tp, rec := newTracer(t)
	ctx := context.Background()
	load := tcotel.TraceLoader[string](tp, nil, func(context.Context, string) (string, error) { return "v", nil })
	batch := tcotel.TraceBatchLoader[string](tp, nil, func(context.Context, []string) (map[string]string, error) { return nil, nil })
	if v, err := load(ctx, "1"); v != "v" || err != nil {
		t.Errorf("load(1) = %q, %v; want v, nil", v, err)
	}
	if _, err := batch(ctx, []string{"1"}); err != nil {
		t.Errorf("batch(1) = %v", err)
	}
	for _, s := range rec.Ended() {
		if g, ok := attr(s, "tiercache.group"); !ok || g.AsString() != "" {
			t.Errorf("%s with a nil group: tiercache.group = %q (set: %v); want \"\"", s.Name(), g.AsString(), ok)
		}
	}
	if n := len(rec.Ended()); n != 2 {
		t.Errorf("%d spans; want 2", n)
	}
}

// TestRedisHookNil: RedisHook(nil) passes every call through untraced,
// with no panic.
func TestRedisHookNil(t *testing.T) {
	tp, rec := newTracer(t)
	ctx := context.Background()
	h := tcotel.RedisHook(nil)
	traced, request := tp.Tracer("test").Start(ctx, "request")
	defer request.End()
	calls := 0
	cmd := redis.NewStringCmd(traced, "get", "k")
	if err := h.ProcessHook(func(context.Context, redis.Cmder) error { calls++; return nil })(traced, cmd); err != nil {
		t.Errorf("ProcessHook = %v", err)
	}
	if err := h.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { calls++; return nil })(traced, []redis.Cmder{cmd}); err != nil {
		t.Errorf("ProcessPipelineHook = %v", err)
	}
	if _, err := h.DialHook(func(context.Context, string, string) (net.Conn, error) { calls++; return nil, nil })(ctx, "tcp", "x"); err != nil {
		t.Errorf("DialHook = %v", err)
	}
	if calls != 3 {
		t.Errorf("RedisHook(nil) made %d of 3 calls", calls)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("RedisHook(nil) made %d spans; want none", n)
	}
}

// TestRedisHookPanic: a command or pipeline that panics ends its span with
// status Error, and the panic goes on.
func TestRedisHookPanic(t *testing.T) {
	tp, rec := newTracer(t)
	h := tcotel.RedisHook(tp)
	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	defer request.End()
	cmd := redis.NewStringCmd(ctx, "get", "k")
	calls := []func(){
		func() { h.ProcessHook(func(context.Context, redis.Cmder) error { panic("conn bug") })(ctx, cmd) },
		func() {
			h.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { panic("conn bug") })(ctx, []redis.Cmder{cmd})
		},
	}
	for i, call := range calls {
		func() {
			defer func() {
				if p := recover(); p != "conn bug" {
					t.Errorf("call %d: recovered %v; want the panic to go on", i, p)
				}
			}()
			call()
		}()
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d ended spans; want 2 (GET, PIPELINE)", len(spans))
	}
	for _, s := range spans {
		if s.Status().Code != codes.Error || s.Status().Description != "panic: conn bug" {
			t.Errorf("%s: status %v %q; want Error \"panic: conn bug\"", s.Name(), s.Status().Code, s.Status().Description)
		}
	}
}

// TestTraceLoaderGoexit: a loader that calls runtime.Goexit never returns;
// its span ends with status Error, not OK.
func TestTraceLoaderGoexit(t *testing.T) {
	tp, rec := newTracer(t)
	g := lone(t)
	load := tcotel.TraceLoader(tp, g, func(context.Context, string) (string, error) { runtime.Goexit(); return "", nil })
	batch := tcotel.TraceBatchLoader(tp, g, func(context.Context, []string) (map[string]string, error) {
		runtime.Goexit()
		return nil, nil
	})
	var wg sync.WaitGroup
	wg.Go(func() { load(context.Background(), "1") })
	wg.Go(func() { batch(context.Background(), []string{"1"}) })
	wg.Wait()
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d ended spans; want 2", len(spans))
	}
	for _, s := range spans {
		if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "did not return") {
			t.Errorf("%s of a loader that called Goexit: status %v %q; want Error, \"did not return\"", s.Name(), s.Status().Code, s.Status().Description)
		}
	}
}
