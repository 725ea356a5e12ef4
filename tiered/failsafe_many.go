package tiered

import (
	"context"

	"github.com/tiercache/tiercache/remote"
)

// FetchMany's fail-safe. The ids of a batch whose Redis key held an expired
// value kept by fail-safe (keepOld) are loaded with the batch, without a
// lease (their key holds the value), and the loaded values replace the
// expired ones with a compare-and-set (replaceOlds). What Fetch does when
// such a load cannot be had, FetchMany does per id, by the same rules:
//
//   - before the load, an id whose reload lock holds a throttle mark (a
//     load of it failed lately somewhere in the fleet) is served its
//     expired value and left out of the load (holdBack);
//   - when the batch's load fails (an error, or LoadTimeout), each such id
//     is served its expired value if Redis still holds exactly that write
//     and no invalidation of the key, of its tags or flush reached this
//     node since the batch's read; the fleet is then held back from loading
//     it for FailSafeThrottle, and this node keeps it in L1 as long
//     (fallBack; when another node's lock or mark was there first, the
//     value is served but not kept).
//
// The checks and marks of a failed batch go one id after the other: a
// batch with many expired ids pays a few round trips for each.
//
// LoadSoftTimeout is Fetch's only: a batch's load is not split.

// holdBack serves, before the batch's load, the ids among ids whose
// expired value keepOld noted and whose reload lock holds a throttle mark,
// and returns the ids left to load. It reads the locks in one pipeline,
// and only when the batch holds such ids.
func (r *run[V]) holdBack(ids []string) []string {
	g, c := r.g, r.g.c
	if r.onFallback == nil || len(r.olds) == 0 || c.noThrottle {
		return ids
	}
	var olds, locks []string
	for _, id := range ids {
		if _, ok := r.olds[id]; ok {
			olds = append(olds, id)
			locks = append(locks, refreshLockPrefix+g.Key(id))
		}
	}
	if len(olds) == 0 {
		return ids
	}
	marks, err := c.store.GetMany(r.ctx, locks)
	if err != nil {
		c.redisFailed(&g.st, g.name, "fail-safe lock", "", err)
		return ids
	}
	served := make(map[string]bool)
	for i, id := range olds {
		if marks[i].Kind != remote.KindAbsent {
			continue
		}
		if x, ok := r.expiredOf(id); ok && x.fresh(r.ctx) {
			x.serve(errThrottled, marks[i].Expire)
			r.onFallback(id, x.stale)
			served[id] = true
			delete(r.olds, id) // not loaded: replaceOlds must leave its value alone
		}
	}
	if len(served) == 0 {
		return ids
	}
	left := make([]string, 0, len(ids)-len(served))
	for _, id := range ids {
		if !served[id] {
			left = append(left, id)
		}
	}
	return left
}

// fallBack serves id its expired value after the batch's load failed with
// err, if fail-safe may (see above), and reports whether it did.
func (r *run[V]) fallBack(id string, err error) bool {
	g, c := r.g, r.g.c
	if r.onFallback == nil {
		return false
	}
	if _, ok := r.olds[id]; !ok {
		return false
	}
	x, ok := r.expiredOf(id)
	if !ok || !x.stillHeld(r.ctx) {
		return false
	}
	until := msAfter(c.clock.Now(), g.fs.throttle)
	if c.noThrottle || !x.throttle(r.ctx, until) {
		// No mark of this node's holds the fleet back: serve the value
		// without keeping it in L1, as Fetch does without the lock, so that
		// another node's reload is read here as soon as it fills.
		until = 0
	}
	x.serve(err, until)
	r.onFallback(id, x.stale)
	return true
}

// expiredOf returns the expired load of id that keepOld noted, its value
// decoded; false when it does not decode (it is then no fallback).
func (r *run[V]) expiredOf(id string) (*expiredLoad[V], bool) {
	g := r.g
	x := &expiredLoad[V]{g: g, key: g.Key(id), id: id, old: r.olds[id], tok: r.tok}
	if err := g.codec.Unmarshal(x.old.Payload, &x.stale); err != nil {
		return nil, false
	}
	return x, true
}

// throttle takes the id's reload lock and replaces it with the throttle
// mark, unless another node holds the lock (its reload decides) or a mark
// is there already. It reports whether it wrote the mark.
func (x *expiredLoad[V]) throttle(ctx context.Context, until int64) bool {
	g, c := x.g, x.g.c
	lock, won, _, err := c.store.Acquire(ctx, x.lockKey(), c.opts.LeaseTTL)
	switch {
	case err != nil:
		c.redisFailed(&g.st, g.name, "fail-safe lock", x.key, err)
		return false
	case !won:
		return false
	case !x.markThrottle(ctx, lock, until):
		x.unlock(ctx, lock)
		return false
	}
	return true
}
