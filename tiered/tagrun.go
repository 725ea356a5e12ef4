package tiered

import (
	"github.com/tiercache/tiercache/remote"
)

// The tag steps of a run (see run.go): the load's begin is the Redis time
// taken after the leases were won and before the loader runs; each value's
// tags come from the group's Tags; a fill is checked against the tags'
// stamps before it is sent (from the table, else from Redis), in its
// script on one server, and, on a cluster, where the script cannot see
// the stamps, against the table once more after it landed.

// loadBeginOf returns the Redis time before the load of the ids of leases
// begins: the earliest time at which they were taken, when every taking
// read it (remote.Lease.Taken: a single read takes its lease so), else one
// TIME on the server of one of the keys (on a cluster the masters' clocks
// may differ: see Options.TagClockSkew). Without a lease, one TIME when
// the run replaces expired values (replaceOlds), else 0: nothing is filled
// and the begin does not matter. An earlier begin only makes more tag
// invalidations count as after the load's start: more fills refused,
// never a stale one kept.
func (r *run[V]) loadBeginOf(leases map[string]remote.Lease) int64 {
	if len(leases) == 0 {
		for id := range r.olds {
			return r.g.c.loadBegin(r.ctx, r.g.Key(id))
		}
		return 0
	}
	var begin int64
	for _, l := range leases {
		if l.Taken == 0 {
			return r.g.c.loadBegin(r.ctx, l.Key)
		}
		if begin == 0 || l.Taken < begin {
			begin = l.Taken
		}
	}
	return begin
}

// tagAll decides the tags of the loaded values. A value whose tags are
// refused gets the error (its callers receive it, and it is cached
// nowhere): it is recorded in r.tagErrs and delivered here.
func (r *run[V]) tagAll(_ map[string]remote.Lease, vals map[string]V) map[string][]string {
	g := r.g
	if g.tagFn == nil {
		return nil
	}
	out := make(map[string][]string, len(vals))
	for id, v := range vals {
		tags, err := g.tagsOf(id, v)
		if err != nil {
			if r.tagErrs == nil {
				r.tagErrs = make(map[string]error)
			}
			r.tagErrs[id] = err
			r.done(id, *new(V), err)
			continue
		}
		out[id] = tags
	}
	return out
}

// tagsAllow reports whether rec may be filled under key: none of its tags
// was invalidated since its load began, as far as the table (or Redis,
// for a tag the table does not know) tells. A failed Redis call does not
// fill.
func (r *run[V]) tagsAllow(key string, rec remote.Record) bool {
	c := r.g.c
	if !c.store.Clustered() {
		// The fill's script checks the stamps, and returns them to learn.
		return c.noTagCheck || c.tags.check(groupOf(key), rec.Begin, rec.Tags) != tagsInvalid
	}
	ok, err := c.tagsValid(r.ctx, key, rec.Begin, rec.Tags)
	if err != nil {
		r.g.c.redisFailed(&r.g.st, r.g.name, "tag stamps", key, err)
	}
	return ok && err == nil
}

// learnStamps keeps in the table the stamps a fill's script read (see
// Cache.stampKeys for their order), unless the table was reset since ep.
func (r *run[V]) learnStamps(ep uint64, f remote.Fill, stamps []int64) {
	if len(stamps) == 0 {
		return
	}
	group := groupOf(f.Lease.Key)
	if r.g.c.tags.trusted.Load() && r.g.c.tags.check(group, f.Record.Begin, f.Record.Tags) != tagsUnknown {
		return // known already: the bus keeps them current
	}
	var buf [8]string // ids of up to six tags, without allocating
	ids := r.g.c.tagIDs(buf[:0], group, f.Record.Tags)
	if len(ids) == len(stamps) {
		r.g.c.tags.learn(ep, ids, stamps)
	}
}

// stillAllowed checks, after a fill landed on a cluster, that no tag of
// its value was invalidated meanwhile as far as the table knows; if one
// was, it removes the value again (compare-and-delete) and reports false.
// On one server the fill's script made the check.
func (r *run[V]) stillAllowed(f remote.Fill) bool {
	c := r.g.c
	if c.noTagCheck || !c.store.Clustered() {
		return true
	}
	if c.tags.check(groupOf(f.Lease.Key), f.Record.Begin, f.Record.Tags) != tagsInvalid {
		return true
	}
	r.g.record(Event{Kind: EventLeaseLost})
	rec := f.Record
	rec.Raw = remote.Encode(rec)
	if _, err := c.store.Discard(r.ctx, f.Lease.Key, rec); err != nil {
		c.redisFailed(&r.g.st, r.g.name, "discard", f.Lease.Key, err)
	}
	return false
}
