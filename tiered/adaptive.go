package tiered

import "time"

// valueTTL is the TTL, before jitter, of the value v of id: what the
// group's TTLOf says (at most MaxTTL), or the group's TTL when it has none
// or it answers 0 or less. A TTL longer than any seen so far lengthens how
// long a failed invalidation is retried.
func (g *Group[V]) valueTTL(id string, v V) time.Duration {
	if g.ttlOf == nil {
		return g.ttl
	}
	d := g.ttlOf(id, v)
	if d <= 0 {
		return g.ttl
	}
	d = min(d, MaxTTL)
	for {
		old := g.c.longestTTL.Load()
		if int64(d) <= old || g.c.longestTTL.CompareAndSwap(old, int64(d)) {
			return d
		}
	}
}
