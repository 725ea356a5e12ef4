package tiered

import "time"

// valueTTL is the TTL, before jitter, of the value v of id: what the
// group's TTLOf says (at most MaxTTL), or the group's TTL when it has none
// or it answers 0 or less.
func (g *Group[V]) valueTTL(id string, v V) time.Duration {
	if g.ttlOf == nil {
		return g.ttl
	}
	d := g.ttlOf(id, v)
	if d <= 0 {
		return g.ttl
	}
	d = min(d, MaxTTL)
	g.noteLife(d)
	return d
}

// negativeTTL is the TTL, before jitter, of the "not found" answer for id
// of a load that ended with lerr (nil, or the *notFound of a Fetch's
// loader): what the group's NegativeTTLOf says of it (at most MaxTTL), or
// NegativeTTL when it has none or it answers 0 or less. 0: the answer is
// not cached.
func (g *Group[V]) negativeTTL(id string, lerr error) time.Duration {
	if g.negOf == nil {
		return g.negTTL
	}
	d := g.negOf(id, absentErr(lerr))
	if d <= 0 {
		return g.negTTL
	}
	d = min(d, MaxTTL)
	g.noteLife(d)
	return d
}

// noteLife records that a record of the group with a TTL of ttl was
// written: it may stay in Redis for ttl, plus the group's FailSafe (an
// expired value kept as a fallback) and MaxStale (a value kept stale after
// its invalidation). The longest such life any group has seen is how long
// a failed invalidation is retried and how long a tag's stamp is kept
// (stampTTL): both must outlive every record they are about.
func (g *Group[V]) noteLife(ttl time.Duration) {
	life := min(ttl, MaxTTL)
	life = min(life+g.fs.window, MaxTTL)
	life = min(life+g.maxStale, MaxTTL)
	c := g.c
	for {
		old := c.longestTTL.Load()
		if int64(life) <= old || c.longestTTL.CompareAndSwap(old, int64(life)) {
			return
		}
	}
}
