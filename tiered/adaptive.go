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
	return g.c.sawTTL(d)
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
	return g.c.sawTTL(d)
}

// sawTTL caps a TTL that a value or an answer decided for itself at MaxTTL
// and returns it; one longer than any seen so far lengthens how long a
// failed invalidation is retried.
func (c *Cache) sawTTL(d time.Duration) time.Duration {
	d = min(d, MaxTTL)
	for {
		old := c.longestTTL.Load()
		if int64(d) <= old || c.longestTTL.CompareAndSwap(old, int64(d)) {
			return d
		}
	}
}
