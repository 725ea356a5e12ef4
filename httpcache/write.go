package httpcache

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/tiercache/tiercache/tiered"
)

// maxExpansions bounds the keys one template yields from supplied values
// with several values each.
const maxExpansions = 1024

// invalidator holds a write route's templates, parsed and checked at
// registration.
type invalidator struct {
	wildcards []string
	keys      []extraKey
	patterns  []*tiered.Template
}

type extraKey struct {
	prefix string
	id     *tiered.Template
}

func newInvalidator(p pattern, o Options) (*invalidator, error) {
	inv := &invalidator{wildcards: p.wildcards}
	avail := append(slices.Clone(p.wildcards), o.Supplied...)
	for _, prefix := range slices.Sorted(maps.Keys(o.ExtraKeys)) {
		if prefix == "" {
			return nil, errors.New("ExtraKeys: empty prefix")
		}
		t, err := tiered.ParseKey(o.ExtraKeys[prefix])
		if err == nil {
			err = t.Check(avail...)
		}
		if err != nil {
			return nil, fmt.Errorf("ExtraKeys[%q]: %w", prefix, err)
		}
		inv.keys = append(inv.keys, extraKey{prefix: prefix, id: t})
	}
	for _, src := range o.ExtraPatterns {
		t, err := tiered.ParsePattern(src)
		if err == nil {
			err = t.Check(avail...)
		}
		if err != nil {
			return nil, fmt.Errorf("ExtraPatterns: %w", err)
		}
		inv.patterns = append(inv.patterns, t)
	}
	return inv, nil
}

// serveWrite runs a write's handler with its response held back, then
// invalidates (unless the status says the write did not happen), then
// sends the response: a client that sees the response can read its write.
func (rt *route) serveWrite(w http.ResponseWriter, r *http.Request) {
	ws := &writeState{m: rt.m, supplied: rt.opts.Supplied}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, ws))
	rec := newRecorder()
	returned := false
	defer func() {
		if !returned && !rt.opts.SkipInvalidateOn5xx { // a panic: the write may have committed
			rt.invalidate(r, ws)
		}
	}()
	rt.h.ServeHTTP(rec, r)
	returned = true
	rec.finish()
	if rt.invalidates(rec.status) {
		rt.invalidate(r, ws)
	}
	rec.sendTo(w, false)
}

// invalidates reports whether a write that answered status may have
// changed data: 2xx and 3xx, and 5xx unless the route opted out; never
// 4xx.
func (rt *route) invalidates(status int) bool {
	switch {
	case status >= 400 && status < 500:
		return false
	case status >= 500:
		return !rt.opts.SkipInvalidateOn5xx
	}
	return true
}

// invalidate removes what the write changed from every tier of every
// process. A failure is logged and counted, and the cache retries it in
// the background; the response goes out regardless.
func (rt *route) invalidate(r *http.Request, ws *writeState) {
	m := rt.m
	keys, patterns := rt.targets(r, ws)
	ctx := context.WithoutCancel(r.Context()) // a client that leaves does not cancel it
	var errs []error
	if len(keys) > 0 {
		errs = append(errs, m.c.Invalidate(ctx, keys...))
	}
	if len(patterns) > 0 {
		errs = append(errs, m.c.InvalidatePattern(ctx, patterns...))
	}
	tags := rt.invalidatedTags(r, ws)
	if len(tags) > 0 {
		errs = append(errs, m.c.InvalidateTags(ctx, tags...))
	}
	if err := errors.Join(errs...); err != nil {
		m.st.invErrors.Add(1)
		m.log.Error("httpcache: invalidation failed; the cache retries it in the background",
			"method", r.Method, "path", r.URL.Path, "keys", keys, "patterns", patterns, "err", err)
		return
	}
	if len(keys)+len(patterns)+len(tags) > 0 {
		m.st.invalidations.Add(1)
	}
}

// targets returns the keys and patterns a write on r invalidates.
func (rt *route) targets(r *http.Request, ws *writeState) (keys, patterns []string) {
	m := rt.m
	addResource := func(prefix, id string) {
		if id == "" {
			return
		}
		k := resourceKey(prefix, id)
		keys = append(keys, k)
		if m.hasVariants(prefix) {
			patterns = append(patterns, variantPattern(k))
		}
	}
	if rt.opts.Prefix != "" {
		if id, ok := rt.resourceID(r); ok {
			addResource(rt.opts.Prefix, id)
		}
	}
	values := func(name string) []string {
		if slices.Contains(rt.inv.wildcards, name) {
			if v := r.PathValue(name); v != "" {
				return []string{v}
			}
			return nil
		}
		return ws.get(name)
	}
	for _, ek := range rt.inv.keys {
		for _, id := range rt.expand(ek.id, values, false) {
			addResource(ek.prefix, id)
		}
	}
	for _, t := range rt.inv.patterns {
		patterns = append(patterns, rt.expand(t, values, true)...)
	}
	added, addedPatterns := ws.added()
	return append(keys, added...), append(patterns, addedPatterns...)
}

// expand fills t once for every combination of its placeholders' values.
// In a pattern, values are escaped as ids are in keys, then as glob
// literals (by t). A placeholder with no value leaves t out, counted and
// logged.
func (rt *route) expand(t *tiered.Template, values func(string) []string, pattern bool) []string {
	names := t.Names()
	lists := make([][]string, len(names))
	combos := 1
	for i, n := range names {
		lists[i] = values(n)
		combos *= len(lists[i])
		if combos == 0 || combos > maxExpansions {
			rt.m.st.missing.Add(1)
			rt.m.log.Error("httpcache: template left out: a value is missing or has too many values",
				"template", t.String(), "name", n, "values", len(lists[i]))
			return nil
		}
	}
	out := make([]string, 0, combos)
	idx := make([]int, len(names))
	for {
		s, err := t.Expand(func(n string) (string, bool) {
			v := lists[slices.Index(names, n)][idx[slices.Index(names, n)]]
			if pattern {
				v = escapeID(v)
			}
			return v, true
		})
		if err == nil {
			out = append(out, s)
		}
		i := 0
		for ; i < len(idx); i++ { // the next combination, like an odometer
			if idx[i]++; idx[i] < len(lists[i]) {
				break
			}
			idx[i] = 0
		}
		if i == len(idx) {
			return out
		}
	}
}
