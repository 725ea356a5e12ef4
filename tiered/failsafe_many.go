package tiered

import (
	"context"
	"runtime"
	"time"

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
// With LoadSoftTimeout, a batch that loads expired ids runs its loader on
// a goroutine of its own (callSoft). When the load has not returned within
// the soft timeout, each expired id that may fall back (the checks above;
// that Redis still holds each write is read in one pipeline) is served its
// value at once, counted as
// EventFailSafe with no Err, and the other ids go on waiting for the load;
// the run then goes on in the background like one that served a stale
// value (see stale.go: Close waits for it). Its load fills and replaces
// as usual; if it fails, the served ids get their throttle marks and L1
// copies as above, and are not counted again. A batch without expired
// ids, or a group without LoadSoftTimeout, starts no timer and no
// goroutine.

// holdBack serves, before the batch's load, the ids among ids whose
// expired value keepOld noted and whose reload lock holds a throttle mark,
// and returns the ids left to load. It reads the locks in one pipeline,
// and only when the batch holds such ids.
func (r *run[V]) holdBack(ids []string) []string {
	g, c := r.g, r.g.c
	if r.onFallback == nil || len(r.olds) == 0 {
		return ids
	}
	served := make(map[string]bool)
	hold := func(x *expiredLoad[V], err error, until int64) {
		x.serve(err, until)
		r.onFallback(x.id, x.stale)
		served[x.id] = true
		delete(r.olds, x.id) // not loaded: replaceOlds must leave its value alone
	}
	var olds, locks []string
	for _, id := range ids {
		if _, ok := r.olds[id]; !ok {
			continue
		}
		if g.fs.soft > 0 && c.softLoading(g.Key(id)) {
			// A load of it on this node is past its soft timeout: join it.
			if x, ok := r.expiredOf(id); ok && x.fresh(r.ctx) {
				hold(x, nil, 0)
				continue
			}
		}
		olds = append(olds, id)
		locks = append(locks, refreshLockPrefix+g.Key(id))
	}
	if len(olds) > 0 && !c.noThrottle {
		marks, err := c.store.GetMany(r.ctx, locks)
		if err != nil {
			c.redisFailed(&g.st, g.name, "fail-safe lock", "", err)
			marks = nil
		}
		for i, m := range marks {
			if m.Kind != remote.KindAbsent {
				continue
			}
			if x, ok := r.expiredOf(olds[i]); ok && x.fresh(r.ctx) {
				hold(x, errThrottled, m.Expire)
			}
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
	if r.softServed[id] {
		// Its callers had the value at the soft timeout, counted then.
		x.keep(until)
		return true
	}
	x.serve(err, until)
	r.onFallback(id, x.stale)
	return true
}

// hookSoftServed is the point (Cache.at) where a batch's soft timeout has
// served the fallbacks it could, while its load goes on.
const hookSoftServed = "fail-safe-soft-served"

// callSoft is call for the batch ids: with the group's LoadSoftTimeout and
// expired ids in the batch (olds), the loader runs on its own goroutine
// and, once the soft timeout passes, serveSoft hands out the fallbacks
// while this goroutine waits on for the load's outcome. A panic or a
// runtime.Goexit of the loader is carried over to this goroutine, so that
// the batch ends as it would have with the loader called here.
func (r *run[V]) callSoft(ids []string) (map[string]V, time.Duration, error) {
	g, c := r.g, r.g.c
	if g.fs.soft <= 0 || r.onFallback == nil || len(r.olds) == 0 || r.waitLoads || c.noSoftMany {
		return r.call(ids)
	}
	type outcome struct {
		vals   map[string]V
		took   time.Duration
		err    error
		panic  *PanicError
		goexit bool
	}
	out := make(chan outcome, 1)
	go func() {
		returned := false
		defer func() {
			if !returned {
				var pe *PanicError
				if p := recover(); p != nil {
					pe = asPanicError(p) // the loader's stack, not the batch's
				}
				out <- outcome{panic: pe, goexit: pe == nil}
			}
		}()
		vals, took, err := r.call(ids) // the loader gets its own copy of ids (run.batch)
		returned = true
		out <- outcome{vals: vals, took: took, err: err}
	}()
	soft := c.softTimer(g.fs.soft)
	var o outcome
	select {
	case o = <-out:
	case <-soft.C:
		select {
		case o = <-out: // the load returned as the timer fired: no fallback to serve
		default:
			r.serveSoft(ids)
			c.at(hookSoftServed)
			o = <-out
		}
	}
	soft.Stop()
	switch {
	case o.goexit:
		runtime.Goexit()
	case o.panic != nil:
		panic(o.panic)
	}
	return o.vals, o.took, o.err
}

// serveSoft serves each id of ids whose expired value may be a fallback
// now that the batch's soft timeout passed: no invalidation, flush or tag
// of it reached this node since the batch's read, and Redis still holds
// exactly that write (one pipeline for the batch). The run goes on in the
// background once it served one.
func (r *run[V]) serveSoft(ids []string) {
	g, c := r.g, r.g.c
	var xs []*expiredLoad[V]
	var keys []string
	for _, id := range ids {
		if _, ok := r.olds[id]; !ok {
			continue
		}
		if x, ok := r.expiredOf(id); ok && x.fresh(r.ctx) {
			xs = append(xs, x)
			keys = append(keys, x.key)
		}
	}
	if len(xs) == 0 {
		return
	}
	if !c.noFallbackCheck {
		recs, err := c.store.GetMany(r.ctx, keys)
		if err != nil {
			if r.ctx.Err() == nil { // not Close
				c.redisFailed(&g.st, g.name, "fail-safe check", "", err)
			}
			return
		}
		held := xs[:0]
		for i, x := range xs {
			if recs[i].Kind == remote.KindValue && recs[i].Token == x.old.Token {
				held = append(held, x)
			}
		}
		xs = held
	}
	for _, x := range xs {
		if r.softServed == nil {
			r.softServed = make(map[string]bool, len(xs))
		}
		r.softServed[x.id] = true
		c.softLoadStarted(x.key)
		x.serve(nil, 0)
		r.goBackground()
		r.onFallback(x.id, x.stale)
	}
}

// softLoadStarted records that a load of key goes on past the soft timeout
// of the FetchMany that served key's expired value: until softLoadEnded,
// this node's reads of key that find that value serve it too instead of
// loading it again (holdBack, expiredLoad.run), as a Fetch's reads wait on
// its reload lock.
func (c *Cache) softLoadStarted(key string) {
	c.softMu.Lock()
	defer c.softMu.Unlock()
	if c.softLoads == nil {
		c.softLoads = make(map[string]int)
	}
	c.softLoads[key]++
}

// softLoadEnded ends what softLoadStarted began, once the load filled or
// failed.
func (c *Cache) softLoadEnded(key string) {
	c.softMu.Lock()
	defer c.softMu.Unlock()
	if c.softLoads[key]--; c.softLoads[key] <= 0 {
		delete(c.softLoads, key)
	}
}

// softLoading reports whether a load of key goes on past a FetchMany's
// soft timeout (see softLoadStarted).
func (c *Cache) softLoading(key string) bool {
	if c.noSoftJoin {
		return false
	}
	c.softMu.Lock()
	defer c.softMu.Unlock()
	return c.softLoads[key] > 0
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
	}
	if _, ok := x.markThrottle(ctx, lock, until); !ok {
		x.unlock(ctx, lock)
		return false
	}
	return true
}

// keepOld notes that the key of id, which a run could not take the lease
// of, holds an expired value kept by fail-safe: the run's load replaces it
// (replaceOlds) rather than leave it to be loaded again by every read.
func (r *run[V]) keepOld(id string, rec remote.Record) {
	if !r.g.fs.expired(r.g.c, rec) {
		return
	}
	if r.olds == nil {
		r.olds = make(map[string]remote.Record)
	}
	r.olds[id] = rec
}

// replaceOlds replaces the expired values keepOld noted with the values
// loaded for them, and removes those of the ids the loader did not find
// (the row is gone: its expired value is no fallback any more).
func (r *run[V]) replaceOlds(vals map[string]V, took time.Duration) {
	g := r.g
	for id, old := range r.olds {
		if _, bad := r.tagErrs[id]; bad {
			continue // refused tags: tagAll gave its callers the error
		}
		v, ok := vals[id]
		if !ok {
			if _, err := g.c.store.Discard(r.ctx, g.Key(id), old); err != nil {
				g.c.redisFailed(&g.st, g.name, "fail-safe discard", g.Key(id), err)
			}
			continue
		}
		if err := g.replaceExpired(r.ctx, g.Key(id), id, old, v, took, r.tok, r.begin); err != nil {
			g.c.redisFailed(&g.st, g.name, "fail-safe fill", g.Key(id), err)
		}
	}
}
