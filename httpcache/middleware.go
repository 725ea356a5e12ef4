package httpcache

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// Config configures a [Middleware]. The zero value of every field is its
// documented default.
type Config struct {
	// Logger receives failed invalidations, templates that could not be
	// filled, and the panics of handlers that filled the cache after their
	// request stopped waiting (no request could carry them), with their
	// stacks. Default: discard.
	Logger *slog.Logger
}

// Middleware caches the responses of the routes registered with it in a
// [tiered.Cache], and invalidates them on writes. It is safe for
// concurrent use; register routes before serving traffic.
type Middleware struct {
	c   *tiered.Cache
	log *slog.Logger
	st  counters

	mu      sync.RWMutex      // protects caching and refused
	caching map[string]*route // the routes that cache, by prefix
	// refused holds, by prefix, the caching routes that a ServeMux
	// refused: a cache cannot drop a group, so the next route of the
	// prefix takes theirs over.
	refused map[string]*route

	now          func() time.Time // the clock of stored times and Age; tests replace it
	noStoredTime bool             // store entries without their time (tests: as version 1 did)
}

// New returns a Middleware that keeps responses in c. c must outlive it.
func New(c *tiered.Cache, cfg Config) (*Middleware, error) {
	if c == nil {
		return nil, errors.New("httpcache: nil cache")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Middleware{c: c, log: cfg.Logger, caching: make(map[string]*route), refused: make(map[string]*route), now: time.Now}, nil
}

// entryOf returns the entry a cacheable response rec to r is kept as,
// stamped with the time it was stored and tagged with the route's tags.
// Every path that stores a response (a miss, warming) goes through it.
func (rt *route) entryOf(r *http.Request, rec *recorder) entry {
	var now time.Time
	if !rt.m.noStoredTime {
		now = rt.m.now()
	}
	e := rec.toEntry(rt.opts.StoreHeaders, now)
	e.tags = rt.cachedTags(r)
	return e
}

// Handle registers h on mux for pattern (a Go 1.22 ServeMux pattern such
// as "GET /posts/{post_id}") behind the cache, as [Middleware.Wrap]
// describes. It returns an error, and registers nothing, when opts do not
// fit the route (a template naming a value the route cannot supply, an ID
// that is not a wildcard of it, a prefix already cached by another route)
// or when mux refuses the pattern.
func (m *Middleware) Handle(mux *http.ServeMux, pattern string, h http.Handler, opts Options) (err error) {
	wrapped, err := m.wrap(pattern, h, opts)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil { // ServeMux panics on a bad or conflicting pattern
			m.forget(wrapped)
			err = fmt.Errorf("httpcache: route %q: %v", pattern, r)
		}
	}()
	mux.Handle(pattern, wrapped)
	return nil
}

// Wrap returns h behind the cache, for a router that matched pattern (a
// Go 1.22 ServeMux pattern) and set its wildcards with
// [http.Request.SetPathValue], as ServeMux does. GET requests read through
// the cache, HEAD requests are answered from it, writes (POST, PUT, PATCH,
// DELETE) invalidate; the package documentation has the rules. The errors
// are those of [Middleware.Handle].
func (m *Middleware) Wrap(pattern string, h http.Handler, opts Options) (http.Handler, error) {
	return m.wrap(pattern, h, opts)
}

func (m *Middleware) wrap(pat string, h http.Handler, opts Options) (*route, error) {
	if h == nil {
		return nil, fmt.Errorf("httpcache: route %q: nil handler", pat)
	}
	p, err := parsePattern(pat)
	if err != nil {
		return nil, err
	}
	if err := checkSyntax(pat); err != nil {
		return nil, err
	}
	rt, err := m.newRoute(p, h, opts)
	if err != nil {
		return nil, fmt.Errorf("httpcache: route %q: %w", pat, err)
	}
	return rt, nil
}

// checkSyntax registers pat on a throwaway ServeMux, which panics on a
// pattern it cannot parse: the error comes before the route's group is made.
func checkSyntax(pat string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("httpcache: route %q: %v", pat, r)
		}
	}()
	http.NewServeMux().Handle(pat, http.NotFoundHandler())
	return nil
}

// forget undoes the registration of rt, keeping its group for the next
// route of its prefix.
func (m *Middleware) forget(rt *route) {
	if rt.group == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.caching, rt.opts.Prefix)
	m.refused[rt.opts.Prefix] = rt
}

// hasVariants reports whether the route caching prefix keeps several keys
// per resource.
func (m *Middleware) hasVariants(prefix string) bool {
	rt := m.cachingRoute(prefix)
	return rt != nil && (rt.opts.variants() || rt.pathKeyed)
}

// cachingRoute returns the route that caches prefix, or nil.
func (m *Middleware) cachingRoute(prefix string) *route {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.caching[prefix]
}

// route is one registered route: the handler and what the cache does
// around it.
type route struct {
	m     *Middleware
	h     http.Handler
	pat   pattern
	opts  Options
	group *tiered.Group[entry] // nil on a route that does not cache
	inv   *invalidator         // nil on a route that does not write
	tags  *tagTemplates
	// pathKeyed is set when the route's match depends on more of the
	// path than its ID (another wildcard, or a pattern ending in "/" that
	// matches a subtree): the path is then part of every key, a variant
	// of the resource.
	pathKeyed bool
}

func (m *Middleware) newRoute(p pattern, h http.Handler, opts Options) (*route, error) {
	o, err := opts.validate(p)
	if err != nil {
		return nil, err
	}
	rt := &route{m: m, h: h, pat: p, opts: o}
	rt.pathKeyed = strings.HasSuffix(p.path, "/") || slices.ContainsFunc(p.wildcards, func(w string) bool { return w != o.ID })
	if rt.tags, err = newTagTemplates(p, o); err != nil {
		return nil, err
	}
	if p.writes() {
		if rt.inv, err = newInvalidator(p, o); err != nil {
			return nil, err
		}
	}
	if p.reads() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, dup := m.caching[o.Prefix]; dup {
			return nil, fmt.Errorf("prefix %q is cached by another route", o.Prefix)
		}
		if rt.group, err = m.groupFor(o); err != nil {
			return nil, err
		}
		m.caching[o.Prefix] = rt
	}
	return rt, nil
}

// groupFor returns the group of a new route caching o.Prefix: the group
// of a refused route of that prefix if it was made with the same options,
// else a new one. The caller holds mu.
func (m *Middleware) groupFor(o Options) (*tiered.Group[entry], error) {
	was := m.refused[o.Prefix]
	if was == nil {
		return tiered.NewGroup[entry](m.c, o.Prefix, o.groupOptions())
	}
	if w := was.opts; w.TTL != o.TTL || w.StaleIfError != o.StaleIfError || w.RevalidateTimeout != o.RevalidateTimeout {
		return nil, fmt.Errorf("prefix %q is held by a route the ServeMux refused, with another TTL, StaleIfError or RevalidateTimeout", o.Prefix)
	}
	delete(m.refused, o.Prefix)
	return was.group, nil
}

// ServeHTTP dispatches on the request's method.
func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if rt.group != nil {
			rt.serveRead(w, r)
			return
		}
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		if rt.inv != nil {
			rt.serveWrite(w, r)
			return
		}
	}
	rt.h.ServeHTTP(w, r)
}

// Stats are the counters of a [Middleware] since it was made. Every field
// only grows. The cache's own counters are in [tiered.Cache.Stats].
type Stats struct {
	HitsL1, HitsL2     uint64 // reads answered from L1, from Redis
	Misses             uint64 // reads that ran the handler after a miss
	Bypassed           uint64 // reads the cache could not answer (Authorization, unkeyed query, ...): X-Cache BYPASS
	Uncacheable        uint64 // handler responses that could not be kept (also counted in Misses): X-Cache BYPASS
	Invalidations      uint64 // writes whose invalidation reached Redis and the other processes
	InvalidationErrors uint64 // writes whose invalidation failed (retried in the background)
	MissingValues      uint64 // templates left out because a value was not supplied
}

type counters struct {
	hitsL1, hitsL2, misses, bypassed, uncacheable atomic.Uint64
	invalidations, invErrors, missing             atomic.Uint64
}

// Stats returns the middleware's counters.
func (m *Middleware) Stats() Stats {
	s := &m.st
	return Stats{
		HitsL1: s.hitsL1.Load(), HitsL2: s.hitsL2.Load(), Misses: s.misses.Load(),
		Bypassed: s.bypassed.Load(), Uncacheable: s.uncacheable.Load(),
		Invalidations: s.invalidations.Load(), InvalidationErrors: s.invErrors.Load(),
		MissingValues: s.missing.Load(),
	}
}
