package httpcache

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/tiercache/tiercache/tiered"
)

// WarmOptions configure [Middleware.Warm]. The zero value of every field
// is its documented default.
type WarmOptions struct {
	// BatchSize and Concurrency are those of [tiered.WarmOptions]:
	// handler runs per batch (one after the other) and batches at once.
	// Defaults: 100 and 4.
	BatchSize, Concurrency int
	// Progress, if set, is called after every batch (see
	// [tiered.WarmOptions]).
	Progress func(tiered.WarmProgress)
}

// Warm fills the cache of the route that caches prefix with its handler's
// responses for ids before traffic asks for them, as a start-up step: the
// decorator's cache warming, with [tiered.Group.Warm]'s leases and
// compare-and-set fills (a write that invalidates a resource while it is
// being warmed wins) and jittered TTLs. Ids already cached are left alone.
//
// Each id is served to the handler as a GET of the route's path with its
// ID wildcard set to the id, without query string, headers or caller: the
// entry a request without them reads. The route must be keyed by a path
// wildcard (ID), have no other wildcard, no Caller and no Host in
// VaryHeaders. An id whose response is not cacheable fails; failures are
// reported as by Group.Warm (a *[tiered.WarmError] naming them).
func (m *Middleware) Warm(ctx context.Context, prefix string, ids []string, opts WarmOptions) error {
	rt := m.cachingRoute(prefix)
	switch {
	case rt == nil:
		return fmt.Errorf("httpcache: warm: no route caches prefix %q", prefix)
	case rt.opts.ID == "" || rt.opts.Caller != nil || len(rt.pat.wildcards) != 1 || slices.Contains(rt.opts.VaryHeaders, "Host"):
		return fmt.Errorf("httpcache: warm %q: the route must be keyed by its one path wildcard, without Caller or Host", prefix)
	}
	reqs := make(map[string]*http.Request, len(ids)) // by id within the group
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		r, err := rt.warmRequest(ctx, id)
		if err != nil {
			return err
		}
		key, ok := rt.cacheID(r)
		if !ok {
			return fmt.Errorf("httpcache: warm %q: id %q cannot be cached", prefix, id)
		}
		if _, dup := reqs[key]; !dup {
			reqs[key] = r
			keys = append(keys, key)
		}
	}
	return rt.group.Warm(ctx, keys, tiered.WarmOptions[entry]{
		BatchSize: opts.BatchSize, Concurrency: opts.Concurrency, Progress: opts.Progress,
		Load: func(ctx context.Context, key string) (entry, error) {
			rec := rt.record(reqs[key], ctx)
			if err := ctx.Err(); err != nil {
				return entry{}, fmt.Errorf("httpcache: the handler ran out of time: %w", err)
			}
			if !rt.cacheable(rec) {
				return entry{}, fmt.Errorf("%w: status %d", errUncacheable, rec.status)
			}
			return rt.entryOf(reqs[key], rec), nil
		},
	})
}

// warmRequest is the GET that stands for a request of the resource id.
func (rt *route) warmRequest(ctx context.Context, id string) (*http.Request, error) {
	if id == "" {
		return nil, fmt.Errorf("httpcache: warm %q: empty id", rt.opts.Prefix)
	}
	path, ok := rt.pat.fill(rt.opts.ID, id)
	if !ok {
		return nil, fmt.Errorf("httpcache: warm %q: the route has other wildcards", rt.opts.Prefix)
	}
	u, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("httpcache: warm %q: id %q: %w", rt.opts.Prefix, id, err)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return nil, err
	}
	r.URL, r.RequestURI, r.Pattern = u, u.RequestURI(), rt.pat.src
	r.Host = rt.pat.host
	if r.Host == "" {
		r.Host = "localhost"
	}
	r.SetPathValue(rt.opts.ID, id)
	return r, nil
}
