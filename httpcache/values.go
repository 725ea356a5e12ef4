package httpcache

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// ErrNotWrite is returned by [SetValues], [Invalidate],
// [InvalidateResource] and [InvalidatePattern] for a request that is not a
// write served by a route of a [Middleware].
var ErrNotWrite = errors.New("httpcache: not a write request of a cached route")

type stateKey struct{}

// writeState is what a write's handler adds to its invalidation.
type writeState struct {
	m        *Middleware
	supplied []string // the names the route declared

	mu       sync.Mutex // protects the fields below
	values   map[string][]string
	keys     []string
	patterns []string
}

func stateOf(r *http.Request) (*writeState, error) {
	ws, ok := r.Context().Value(stateKey{}).(*writeState)
	if !ok {
		return nil, ErrNotWrite
	}
	return ws, nil
}

// SetValues supplies values of the placeholder name (declared in
// [Options.Supplied]) for the templates of the write r: "user_id" of the
// post's owner, or two values of "category_id", the old category and the
// new one (each template then yields one key or pattern per value). Later
// calls add values; empty values are ignored. It may be called from any
// goroutine until the handler returns; what it adds after that is ignored.
//
// It returns [ErrNotWrite] when r is not (or does not derive from) the
// request a write route of a Middleware passed to its handler, and an error
// naming the route's Supplied names when name is not one of them; then it
// adds nothing. Otherwise it returns nil: the invalidation runs after the
// handler returns, and its failure is not returned here (it is logged,
// counted in Stats.InvalidationErrors and retried by the cache).
func SetValues(r *http.Request, name string, values ...string) error {
	ws, err := stateOf(r)
	if err != nil {
		return err
	}
	if !slices.Contains(ws.supplied, name) {
		return fmt.Errorf("httpcache: value %q is not in the route's Options.Supplied %v", name, ws.supplied)
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.values == nil {
		ws.values = make(map[string][]string)
	}
	for _, v := range values {
		if v != "" && !slices.Contains(ws.values[name], v) {
			ws.values[name] = append(ws.values[name], v)
		}
	}
	return nil
}

// Invalidate adds keys (within the cache's namespace, as
// [tiered.Group.Key] returns them) to what the write r invalidates after
// its handler returns. Empty keys are ignored.
//
// It returns [ErrNotWrite] when r is not (or does not derive from) the
// request a write route of a Middleware passed to its handler, and adds
// nothing; otherwise nil. The keys are invalidated after the handler
// returns: a failure then is logged, counted in Stats.InvalidationErrors
// and retried by the cache, never returned here.
func Invalidate(r *http.Request, keys ...string) error {
	return addTargets(r, keys, nil)
}

// InvalidatePattern adds Redis glob patterns over keys to what the write
// r invalidates (see [tiered.Cache.InvalidatePattern]; escape values with
// [tiered.Escape]). Empty patterns are ignored.
//
// It returns [ErrNotWrite] when r is not (or does not derive from) the
// request a write route of a Middleware passed to its handler, and adds
// nothing; otherwise nil. Patterns are checked only when they are
// invalidated, after the handler returns: a pattern the cache refuses
// (longer than tiered.MaxPatternBytes, or with more wildcards than
// tiered.MaxPatternWildcards) keeps every pattern of the write from being
// applied, and that or any other failure is logged and counted in
// Stats.InvalidationErrors, never returned here.
func InvalidatePattern(r *http.Request, patterns ...string) error {
	return addTargets(r, nil, patterns)
}

// InvalidateResource adds the resources ids of the route that caches
// prefix to what the write r invalidates: each key as [Key] builds it and,
// if that route is registered on the same Middleware and keeps variants
// (query strings, callers), every variant. Empty ids are ignored.
//
// It returns [ErrNotWrite] when r is not (or does not derive from) the
// request a write route of a Middleware passed to its handler, and adds
// nothing; otherwise nil, whether or not a route caches prefix. The keys
// are invalidated after the handler returns: a failure then is logged,
// counted in Stats.InvalidationErrors and retried by the cache, never
// returned here.
func InvalidateResource(r *http.Request, prefix string, ids ...string) error {
	ws, err := stateOf(r)
	if err != nil {
		return err
	}
	var keys, patterns []string
	for _, id := range ids {
		if id == "" {
			continue
		}
		k := resourceKey(prefix, id)
		keys = append(keys, k)
		if ws.m.hasVariants(prefix) {
			patterns = append(patterns, variantPattern(k))
		}
	}
	ws.add(keys, patterns)
	return nil
}

// Key returns the key of the resource id of the route that caches prefix,
// without variant: what [Invalidate] and [tiered.Cache.Invalidate] take.
// The id is encoded ("%" and "|" percent-encoded), as in every key the
// middleware writes.
func Key(prefix, id string) string { return resourceKey(prefix, id) }

func addTargets(r *http.Request, keys, patterns []string) error {
	ws, err := stateOf(r)
	if err != nil {
		return err
	}
	ws.add(slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "" }),
		slices.DeleteFunc(slices.Clone(patterns), func(p string) bool { return p == "" }))
	return nil
}

func (ws *writeState) add(keys, patterns []string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.keys = append(ws.keys, keys...)
	ws.patterns = append(ws.patterns, patterns...)
}

func (ws *writeState) get(name string) []string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.values[name])
}

func (ws *writeState) added() (keys, patterns []string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return slices.Clone(ws.keys), slices.Clone(ws.patterns)
}
