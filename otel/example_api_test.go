package otel_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	tcotel "github.com/tiercache/tiercache/otel"
	"github.com/tiercache/tiercache/tiered"
)

func loadProfiles(_ context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		out[id] = "profile " + id
	}
	return out, nil
}

// TraceBatchLoader wraps a batch loader once, at start-up; each batch
// load is then a span under the request's, which says how many ids it
// loaded: here the two that were not cached.
func ExampleTraceBatchLoader() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	c, _ := tiered.New(tiered.Options{}) // L1 only: one process
	defer c.Close()
	profiles, _ := tiered.NewGroup[string](c, "user_profile", tiered.GroupOptions{})
	load := tcotel.TraceBatchLoader(tp, profiles, loadProfiles)
	_ = profiles.Set(context.Background(), "1", "profile 1")
	c.WaitL1()

	ctx, request := tp.Tracer("app").Start(context.Background(), "GET /profiles")
	got, _ := profiles.FetchMany(ctx, []string{"1", "2", "3"}, load)
	request.End()
	fmt.Println(len(got), "profiles")
	for _, s := range spans.Ended() {
		fmt.Print(s.Name())
		for _, kv := range s.Attributes() {
			fmt.Printf(" %s=%s", kv.Key, kv.Value.Emit())
		}
		fmt.Println()
	}
	// Output:
	// 3 profiles
	// tiercache.load_many tiercache.group=user_profile tiercache.ids=2
	// GET /profiles
}

// RedisHook is the hook InstrumentClient adds; add it yourself to a client
// built elsewhere. Each command made inside a trace is a client span (a
// pipeline one span); a miss (redis.Nil) is no error.
func ExampleRedisHook() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	rdb.AddHook(tcotel.RedisHook(tp)) // before tiered.New

	ctx, request := tp.Tracer("app").Start(context.Background(), "request")
	rdb.Get(ctx, "absent") // a miss
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", "1", 0)
		p.Set(ctx, "b", "2", 0)
		return nil
	})
	request.End()
	for _, s := range spans.Ended() {
		if s.Parent().SpanID() != request.SpanContext().SpanID() {
			continue // the request itself, and the connection's handshake
		}
		fmt.Print(s.Name(), " ", s.SpanKind(), " ", s.Status().Code)
		for _, kv := range s.Attributes() {
			if kv.Key == "db.operation.batch.size" {
				fmt.Print(" batch of ", kv.Value.Emit())
			}
		}
		fmt.Println()
	}
	// Output:
	// GET client Unset
	// PIPELINE client Unset batch of 2
}
