package httpcache

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/tiercache/tiercache/tiered"
)

// Route tags: a route that caches gives each response the tags of
// Options.Tags, and a write invalidates the tags of
// Options.InvalidateTags, in every group at once and in O(1) Redis work
// ([tiered.Cache.InvalidateTags]): "user:{user_id}" on the routes of a
// user's profile, posts and feed, and on the write that changes the user.
// Templates use the {name} placeholders of ExtraKeys: a caching route's
// tags name its path wildcards; a write's name its wildcards or supplied
// values (a name with several values yields one tag per value).
// Substituted values are escaped as ids in keys ("%" and "|"), so a value
// cannot forge another template's tag.

// tagTemplates holds a route's tag templates, parsed and checked at
// registration.
type tagTemplates struct {
	cached      []*tiered.Template // Options.Tags
	invalidated []*tiered.Template // Options.InvalidateTags
}

func newTagTemplates(p pattern, o Options) (*tagTemplates, error) {
	if len(o.Tags) > 0 && !p.reads() {
		return nil, errors.New("Tags need a route that caches (GET or HEAD)")
	}
	if len(o.InvalidateTags) > 0 && !p.writes() {
		return nil, errors.New("InvalidateTags need a write method")
	}
	if len(o.Tags) > tiered.MaxTags {
		return nil, fmt.Errorf("Tags: %d templates, more than %d", len(o.Tags), tiered.MaxTags)
	}
	tt := &tagTemplates{}
	parse := func(field string, srcs []string, avail []string) ([]*tiered.Template, error) {
		var out []*tiered.Template
		for _, src := range srcs {
			if src == "" {
				return nil, fmt.Errorf("%s: empty template", field)
			}
			t, err := tiered.ParseKey(src)
			if err == nil {
				err = t.Check(avail...)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", field, err)
			}
			out = append(out, t)
		}
		return out, nil
	}
	var err error
	if tt.cached, err = parse("Tags", o.Tags, p.wildcards); err != nil {
		return nil, err
	}
	if tt.invalidated, err = parse("InvalidateTags", o.InvalidateTags, append(slices.Clone(p.wildcards), o.Supplied...)); err != nil {
		return nil, err
	}
	return tt, nil
}

// cachedTags returns the tags of a response to r; nil when the route has
// none, or when a tag cannot be made (the response is then cached
// untagged: counted and logged).
func (rt *route) cachedTags(r *http.Request) []string {
	if rt.tags == nil || len(rt.tags.cached) == 0 {
		return nil
	}
	values := func(name string) []string {
		if v := r.PathValue(name); v != "" {
			return []string{escapeID(v)}
		}
		return nil
	}
	var out []string
	for _, t := range rt.tags.cached {
		out = append(out, rt.expand(t, values, false)...)
	}
	return out
}

// invalidatedTags returns the tags a write on r invalidates.
func (rt *route) invalidatedTags(r *http.Request, ws *writeState) []string {
	if rt.tags == nil || len(rt.tags.invalidated) == 0 {
		return nil
	}
	values := func(name string) []string {
		var vs []string
		if slices.Contains(rt.pat.wildcards, name) {
			if v := r.PathValue(name); v != "" {
				vs = []string{v}
			}
		} else {
			vs = ws.get(name)
		}
		for i, v := range vs {
			vs[i] = escapeID(v)
		}
		return vs
	}
	var out []string
	for _, t := range rt.tags.invalidated {
		out = append(out, rt.expand(t, values, false)...)
	}
	return out
}

// entryTags is the Tags of a route's group: the tags the load put on the
// entry.
func entryTags(_ string, e entry) []string { return e.tags }
