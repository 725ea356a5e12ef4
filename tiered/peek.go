package tiered

// Peek returns the value of id if this node's L1 holds it (an id cached as
// not existing is not a value), without reading
// Redis or loading anything: it tells a caller that needs to know which
// tier served a read (an HTTP cache's X-Cache header) that L1 did. A hit
// is counted as an L1 hit; a miss is not counted, so that the read that
// follows it ([Group.Get], [Group.Fetch]) counts the miss once. Like
// Fetch's hit path, it allocates nothing of its own and reads no clock. The value is
// shared: treat it as read-only.
func (g *Group[V]) Peek(id string) (V, bool) {
	v, _, ok := g.PeekInfo(id)
	return v, ok
}

// PeekInfo is [Group.Peek], and says how the value was served as
// [Group.FetchInfo] does: Served.Fallback is true when L1 holds an expired
// value that fail-safe serves during its throttle. It costs Peek one more
// field read.
func (g *Group[V]) PeekInfo(id string) (V, Served, bool) {
	if l1 := g.c.l1; l1 != nil {
		if e, ok := l1.LookupPrefix(g.pfx, id); ok && !e.Absent {
			g.l1Hit()
			v, _ := e.Value.(V)
			return v, Served{Fallback: e.Fallback != 0}, true
		}
	}
	var zero V
	return zero, Served{}, false
}
