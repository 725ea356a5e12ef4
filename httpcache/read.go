package httpcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
)

// The X-Cache header of a read: HIT-L1 and HIT-L2 for a response served
// from a tier; MISS when the cache did not have it and the response now
// is stored (a HEAD that misses says MISS and stores nothing); BYPASS when the
// handler answered and nothing is stored: the request is one the cache
// must not answer, or the response is one it must not keep (its status,
// size, Set-Cookie, Cache-Control private, no-store or no-cache, or a
// Vary the key does not cover). BYPASS rather than MISS tells the reader
// that the next request will run the handler again: a MISS that never
// turns into a hit would look like a broken cache.
const (
	headerXCache = "X-Cache"
	hitL1        = "HIT-L1"
	hitL2        = "HIT-L2"
	miss         = "MISS"
	bypass       = "BYPASS"
)

// noSharing is the Cache-Control of responses the cache stores, unless
// [Options.KeepCacheControl]: browsers and shared caches must not reuse
// them without asking this server, since a write elsewhere in the fleet
// may invalidate them at any moment.
const noSharing = "private, no-cache"

// errUncacheable is what the loader returns for a response the cache must
// not keep: the requests that waited for it run the handler themselves.
var errUncacheable = errors.New("httpcache: response not cacheable")

// conditional are the request headers that make a response answer one
// request only; the handler that fills the cache does not see them (the
// cached response answers them instead).
var conditional = []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range"}

// serveRead answers a GET or HEAD through the cache.
func (rt *route) serveRead(w http.ResponseWriter, r *http.Request) {
	st := &rt.m.st
	id, ok := rt.cacheID(r)
	if !ok {
		st.bypassed.Add(1)
		w.Header().Set(headerXCache, bypass)
		rt.h.ServeHTTP(w, r)
		return
	}
	if e, served, ok := rt.group.PeekInfo(id); ok {
		st.hitsL1.Add(1)
		xcache := hitL1
		if served.Fallback { // kept in L1 by StaleIfError during the throttle
			xcache = stale
		}
		rt.serveEntry(w, r, e, xcache)
		return
	}
	if e, err := rt.group.Get(r.Context(), id); err == nil {
		st.hitsL2.Add(1)
		rt.serveEntry(w, r, e, hitL2)
		return
	}
	st.misses.Add(1)
	if r.Method == http.MethodHead { // HEAD never stores: the handler answers
		w.Header().Set(headerXCache, miss)
		rt.h.ServeHTTP(w, r)
		return
	}
	rt.fill(w, r, id)
}

// fill runs the handler for a GET that missed, once for every concurrent
// request of the key (in this process; across processes through the
// cache's lease), and keeps its response if it is cacheable.
func (rt *route) fill(w http.ResponseWriter, r *http.Request, id string) {
	// The response of the handler run by this request, if it ran (and
	// finished: with RevalidateTimeout it may finish in the background),
	// or the value it panicked with.
	var ran atomic.Pointer[recorder]
	var hand panicHandOver
	e, served, err := rt.group.FetchInfo(r.Context(), id, func(ctx context.Context, _ string) (entry, error) {
		rec, p := rt.recordSafe(r, ctx)
		if p != nil {
			// Not the waiters' panic: they run the handler themselves, and
			// this request panics with the value, unwrapped (net/http must
			// still recognise http.ErrAbortHandler), or, if it no longer
			// waits, the panic is logged.
			if !hand.give(p) && p.value != http.ErrAbortHandler {
				rt.m.log.Error("httpcache: handler panicked while filling the cache", "prefix", rt.opts.Prefix, "panic", p.value, "stack", string(p.stack))
			}
			return entry{}, errUncacheable
		}
		ran.Store(rec)
		if err := ctx.Err(); err != nil {
			// The handler outlived its LoadTimeout (or the cache closed):
			// what it wrote may be a response it gave up on.
			return entry{}, fmt.Errorf("httpcache: the handler ran out of time: %w", err)
		}
		if !rt.cacheable(rec) {
			return entry{}, rt.opts.refillError(rec)
		}
		return rt.entryOf(r, rec), nil
	})
	if p := hand.take(); p != nil {
		panic(p.value)
	}
	mine := ran.Load()
	switch {
	case errors.Is(r.Context().Err(), context.Canceled): // the client left; a load in flight goes on for the others
	case err != nil && r.Context().Err() != nil && mine == nil:
		// The request's deadline (an outer middleware's) passed before
		// the response was ready: a timeout, not silence; the load goes on
		// for the others.
		w.Header().Set(headerXCache, miss)
		http.Error(w, http.StatusText(http.StatusGatewayTimeout), http.StatusGatewayTimeout)
	case err == nil && served.Fallback: // the refill failed or is slow: the stale response
		rt.serveEntry(w, r, e, stale)
	case mine != nil && !mine.wrote && errors.Is(err, context.DeadlineExceeded):
		// This request's own run gave up at LoadTimeout without an answer.
		w.Header().Set(headerXCache, miss)
		http.Error(w, http.StatusText(http.StatusGatewayTimeout), http.StatusGatewayTimeout)
	case mine != nil && err != nil: // this request's own run, not kept
		rt.m.st.uncacheable.Add(1)
		w.Header().Set(headerXCache, bypass)
		mine.sendTo(w, false)
	case mine != nil: // this request's own run, now cached
		if !rt.opts.KeepCacheControl {
			mine.header["Cache-Control"] = []string{noSharing} // the entry has its own copy
		}
		w.Header().Set(headerXCache, miss)
		mine.sendTo(w, false)
	case err == nil: // another request's run, shared
		rt.serveEntry(w, r, e, miss)
	default: // uncacheable for another request, or the cache is closed: run the handler
		w.Header().Set(headerXCache, bypass)
		rt.h.ServeHTTP(w, r)
	}
}

// record runs the handler for r with ctx (the load's context) and without
// its conditional headers, and returns what it wrote.
func (rt *route) record(r *http.Request, ctx context.Context) *recorder {
	r = r.WithContext(ctx)
	r.Header = r.Header.Clone()
	for _, h := range conditional {
		r.Header.Del(h)
	}
	rec := newRecorder()
	rt.h.ServeHTTP(rec, r)
	rec.finish()
	return rec
}

// handlerPanic is what a handler panicked with, and where.
type handlerPanic struct {
	value any
	stack []byte
}

// recordSafe is record that returns what the handler panicked with, if it
// did, instead of panicking.
func (rt *route) recordSafe(r *http.Request, ctx context.Context) (rec *recorder, p *handlerPanic) {
	defer func() {
		if v := recover(); v != nil {
			rec, p = nil, &handlerPanic{v, debug.Stack()}
		}
	}()
	return rt.record(r, ctx), nil
}

// panicHandOver hands the panic of a fill's handler run to the request that
// started it, if that request still waits for the run (with
// RevalidateTimeout, or once its client left, the run goes on without it).
type panicHandOver struct {
	state atomic.Int32 // 0: the request waits; 1: it stopped waiting; 2: p is handed over
	p     *handlerPanic
}

// give hands p over and reports whether the request will panic with it.
func (h *panicHandOver) give(p *handlerPanic) bool {
	h.p = p
	return h.state.CompareAndSwap(0, 2)
}

// take ends the request's wait and returns the panic handed over, if any.
func (h *panicHandOver) take() *handlerPanic {
	if h.state.CompareAndSwap(0, 1) {
		return nil
	}
	return h.p
}

// cacheable reports whether a recorded response may be kept and served to
// other requests of its key.
func (rt *route) cacheable(rec *recorder) bool {
	h := rec.header
	return slices.Contains(rt.opts.Statuses, rec.status) &&
		len(rec.body) <= rt.opts.MaxBodyBytes &&
		len(h.Values("Set-Cookie")) == 0 &&
		!forbidsStore(h) &&
		rt.varyAllowed(h)
}

// conditionalRequest reports whether r carries a conditional or Range
// header.
func conditionalRequest(r *http.Request) bool {
	for _, h := range conditional {
		if _, ok := r.Header[h]; ok {
			return true
		}
	}
	return false
}

// serveEntry answers r from a cached response, with its Age (when the
// entry knows when it was stored) and, unless the route keeps it, the
// Cache-Control that stops other caches reusing it. A 200 answering a
// conditional or range request goes through http.ServeContent, which
// answers it from the cached body.
func (rt *route) serveEntry(w http.ResponseWriter, r *http.Request, e entry, xcache string) {
	dst := w.Header()
	n := 3
	for _, v := range e.header {
		n += len(v)
	}
	// The entry is shared with every reader of the cache: the response
	// gets copies, in one allocation, whatever later handlers do to them.
	vals := make([]string, 0, n)
	for k, v := range e.header {
		vals = append(vals, v...)
		dst[k] = vals[len(vals)-len(v) : len(vals) : len(vals)]
	}
	add := func(k, v string) {
		vals = append(vals, v)
		dst[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	add(headerXCache, xcache)
	if age, ok := e.age(rt.m.now()); ok {
		add("Age", strconv.FormatInt(age, 10))
	}
	if !rt.opts.KeepCacheControl {
		add("Cache-Control", noSharing)
	}
	if e.status == http.StatusOK && conditionalRequest(r) {
		modtime, _ := http.ParseTime(e.header.Get("Last-Modified"))
		if _, typed := e.header["Content-Type"]; !typed {
			dst["Content-Type"] = nil // no sniffing: the handler set none
		}
		http.ServeContent(w, r, "", modtime, bytes.NewReader(e.body))
		return
	}
	dst.Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.body)
	}
}
