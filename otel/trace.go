package otel

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tiercache/tiercache/tiered"
)

// TraceLoader returns load wrapped in a span "tiercache.load" of tp's
// tracer, a child of the span in the loader's ctx (the caller's: a load
// keeps the values of the ctx of the Fetch that started it), with the
// attributes tiercache.group (g's name; "" for a nil g) and tiercache.id.
//
// A loader error sets the span's status to Error and is recorded on it,
// except an error wrapping [tiered.ErrNotFound]: that is an answer, not a
// failure (the cache does not count it in [tiered.Stats] LoadErrors), so
// the span keeps an unset status and gets the attribute
// tiercache.not_found=true. A panic sets the status to Error and goes on;
// a loader that does not return (it called runtime.Goexit) ends its span
// with status Error too. With a nil tp or a nil load it returns load
// unchanged.
//
// Build the wrapped loader once, not per Fetch: like any closure, one made
// per call allocates on every call, hits included.
func TraceLoader[V any](tp trace.TracerProvider, g *tiered.Group[V], load tiered.LoaderFunc[V]) tiered.LoaderFunc[V] {
	if tp == nil || load == nil {
		return load
	}
	tracer := tp.Tracer(ScopeName)
	group := groupAttr(g)
	return func(ctx context.Context, id string) (v V, err error) {
		ctx, span := tracer.Start(ctx, "tiercache.load",
			trace.WithAttributes(group, attribute.String("tiercache.id", id)))
		returned := false
		defer func() { endSpan(span, loadFailure(span, err), returned, recover()) }()
		v, err = load(ctx, id)
		returned = true
		return v, err
	}
}

// TraceBatchLoader is [TraceLoader] for a batch loader: its span,
// "tiercache.load_many", carries tiercache.group and tiercache.ids (how many
// ids were asked for). Errors, panics and runtime.Goexit set its status as
// TraceLoader's do; an error wrapping [tiered.ErrNotFound], which
// FetchMany takes for "none of these ids exists", is no failure either.
func TraceBatchLoader[V any](tp trace.TracerProvider, g *tiered.Group[V], load tiered.BatchLoaderFunc[V]) tiered.BatchLoaderFunc[V] {
	if tp == nil || load == nil {
		return load
	}
	tracer := tp.Tracer(ScopeName)
	group := groupAttr(g)
	return func(ctx context.Context, ids []string) (m map[string]V, err error) {
		ctx, span := tracer.Start(ctx, "tiercache.load_many",
			trace.WithAttributes(group, attribute.Int("tiercache.ids", len(ids))))
		returned := false
		defer func() { endSpan(span, loadFailure(span, err), returned, recover()) }()
		m, err = load(ctx, ids)
		returned = true
		return m, err
	}
}

// groupAttr is the attribute tiercache.group of g: its name, "" if g is nil.
func groupAttr[V any](g *tiered.Group[V]) attribute.KeyValue {
	name := ""
	if g != nil {
		name = g.Name()
	}
	return attribute.String("tiercache.group", name)
}

// notFound marks a load whose answer was tiered.ErrNotFound.
var notFound = attribute.Bool("tiercache.not_found", true)

// loadFailure returns a loader's err unless it is nil or wraps
// tiered.ErrNotFound, a normal answer, which it marks on span instead.
func loadFailure(span trace.Span, err error) error {
	if errors.Is(err, tiered.ErrNotFound) {
		span.SetAttributes(notFound)
		return nil
	}
	return err
}

// endSpan ends span after the traced call: with status Error when it
// panicked with p (and then panics again with p) or did not return
// (runtime.Goexit), or when it failed; unset otherwise. Call it deferred,
// with recover() as p.
func endSpan(span trace.Span, failed error, returned bool, p any) {
	switch {
	case p != nil:
		span.SetStatus(codes.Error, fmt.Sprint("panic: ", p))
		span.End()
		panic(p)
	case !returned:
		span.SetStatus(codes.Error, "did not return (runtime.Goexit)")
	case failed != nil:
		span.RecordError(failed)
		span.SetStatus(codes.Error, failed.Error())
	}
	span.End()
}

// InstrumentClient adds [RedisHook](tp) to rdb, so that its commands and
// pipelines are traced. Add it before handing rdb to [tiered.New]. With a
// nil tp it does nothing.
func InstrumentClient(rdb redis.UniversalClient, tp trace.TracerProvider) {
	if rdb != nil && tp != nil {
		rdb.AddHook(RedisHook(tp))
	}
}

// RedisHook returns a go-redis hook that wraps every command in a client
// span named after it ("GET", "EVALSHA"; "PIPELINE" for a pipeline, with
// db.operation.batch.size), with db.system.name "redis" and
// db.operation.name. Key names and arguments are not recorded. A failed
// command sets the span's status to Error; redis.Nil (a miss) is no
// failure. A panic in the command ends its span with status Error and goes
// on. With a nil tp the hook passes every call through untraced.
//
// Only commands whose ctx carries a span are traced: those of a Fetch,
// Set or Invalidate made inside a trace. The cache's background calls (the
// bus's heartbeats, retried invalidations) have none, and would otherwise
// start a new trace every heartbeat. Pub/sub receives are not commands and
// are never traced.
func RedisHook(tp trace.TracerProvider) redis.Hook {
	if tp == nil {
		return redisHook{}
	}
	return redisHook{tracer: tp.Tracer(ScopeName)}
}

// redisHook traces commands with tracer; with a nil tracer it passes them
// through.
type redisHook struct{ tracer trace.Tracer }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	if h.tracer == nil {
		return next
	}
	return func(ctx context.Context, cmd redis.Cmder) (err error) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return next(ctx, cmd)
		}
		name := strings.ToUpper(cmd.Name())
		ctx, span := h.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", name)))
		returned := false
		defer func() { endSpan(span, failure(err), returned, recover()) }()
		err = next(ctx, cmd)
		returned = true
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	if h.tracer == nil {
		return next
	}
	return func(ctx context.Context, cmds []redis.Cmder) (err error) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return next(ctx, cmds)
		}
		ctx, span := h.tracer.Start(ctx, "PIPELINE", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", "PIPELINE"),
				attribute.Int("db.operation.batch.size", len(cmds))))
		returned := false
		defer func() { endSpan(span, pipelineFailure(err, cmds), returned, recover()) }()
		err = next(ctx, cmds)
		returned = true
		return err
	}
}

// pipelineFailure returns failure(err), or else the first failure of the
// pipeline's commands.
func pipelineFailure(err error, cmds []redis.Cmder) error {
	if f := failure(err); f != nil {
		return f
	}
	for _, c := range cmds {
		if f := failure(c.Err()); f != nil {
			return f
		}
	}
	return nil
}

// failure returns err unless it is nil or redis.Nil, a miss.
func failure(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}
