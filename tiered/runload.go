package tiered

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// Step 4 of a run (see run.go): call the loader once for the ids left,
// bounded by LoadTimeout, then fill what it returned.

// loadAndFill calls the loader once for the ids of leases (filled with a
// compare-and-set) and unfilled (cached nowhere), and delivers them.
func (r *run[V]) loadAndFill(leases map[string]remote.Lease, unfilled []string) {
	unfilled = r.holdBack(unfilled)
	ids := append(make([]string, 0, len(leases)+len(unfilled)), unfilled...)
	for id := range leases {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return
	}
	slices.SortFunc(ids, func(a, b string) int { return r.pos[a] - r.pos[b] })
	r.begin = r.loadBeginOf(leases)
	rn := r.renew(leases)
	returned := false
	defer func() {
		if !returned { // the loader panicked or called runtime.Goexit
			p := recover()
			rn.stop()
			r.giveUp(leases)
			if p != nil {
				panic(p)
			}
		}
	}()
	vals, took, err := r.callSoft(ids)
	returned = true
	lost := rn.stop()
	if err != nil && !isNotFound(err) {
		r.giveUp(leases)
		for _, id := range ids {
			if !r.fallBack(id, err) {
				r.done(id, *new(V), err)
			}
		}
		return
	}
	tags := r.tagAll(leases, vals)
	r.fill(leases, lost, vals, took, tags, err)
	r.replaceOlds(vals, took)
	for _, id := range ids {
		if _, bad := r.tagErrs[id]; bad {
			continue // tagAll delivered its error
		}
		if v, ok := vals[id]; ok {
			r.done(id, v, nil)
		} else {
			r.done(id, v, absentErr(err))
		}
	}
}

// giveUp tells the nodes that wait for the leases of a load that failed
// that no value is coming, then releases the leases: a wait that the
// release's wake notice sends to look finds the hand-off already there.
func (r *run[V]) giveUp(leases map[string]remote.Lease) {
	ls := leaseList(leases)
	hands := make([]remote.HandOff, len(ls))
	for i, l := range ls {
		hands[i] = r.emptyHandOff(l)
	}
	r.handOff(hands)
	r.release(ls)
}

// isNotFound reports whether err is a loader's "not found": a Fetch's
// (its *notFound), or a batch loader's error wrapping ErrNotFound, which
// says that none of its ids exists: the same answer as an empty map.
func isNotFound(err error) bool {
	if err == nil {
		return false // errors.As would allocate its target all the same
	}
	var nf *notFound
	return errors.As(err, &nf) || errors.Is(err, ErrNotFound)
}

// absentErr is the error delivered for an id the loader did not find: the
// loader's own error when it gave one, else ErrNotFound.
func absentErr(err error) error {
	var nf *notFound
	if errors.As(err, &nf) {
		return nf.err
	}
	if errors.Is(err, ErrNotFound) {
		return err // a batch loader's: none of its ids exists
	}
	return ErrNotFound
}

func leaseList(m map[string]remote.Lease) []remote.Lease {
	ls := make([]remote.Lease, 0, len(m))
	for _, l := range m {
		ls = append(ls, l)
	}
	return ls
}

// call runs the loader once for ids, bounded by LoadTimeout, and records
// it. Values for ids that were not asked for are dropped. A "not found"
// (isNotFound) is not a load error.
func (r *run[V]) call(ids []string) (map[string]V, time.Duration, error) {
	g := r.g
	ctx, cancel := context.WithTimeout(r.ctx, g.c.opts.LoadTimeout)
	defer cancel()
	start := g.c.stopwatch()
	var vals map[string]V
	var err error
	returned := false
	defer func() {
		took := start()
		if !returned {
			g.loadAborted(took, recover())
			return
		}
		if isNotFound(err) {
			g.record(Event{Kind: EventLoad, Duration: took})
			return
		}
		g.record(Event{Kind: EventLoad, Duration: took, Err: err})
	}()
	loaderIDs := ids
	if r.batch {
		loaderIDs = slices.Clone(ids)
	}
	vals, err = r.load(ctx, loaderIDs)
	returned = true
	took := start()
	g.loads.add(took)
	if err != nil {
		return nil, took, err
	}
	if onlyAsked(vals, ids) {
		return vals, took, nil
	}
	asked := make(map[string]V, len(ids))
	for _, id := range ids {
		if v, ok := vals[id]; ok {
			asked[id] = v
		}
	}
	return asked, took, nil
}

// onlyAsked reports whether vals, the loader's answer for a run of one id
// (a Fetch, or a FetchMany of one), holds no other id: the run then keeps
// it instead of copying it, as it only reads it.
func onlyAsked[V any](vals map[string]V, ids []string) bool {
	if len(ids) != 1 || len(vals) > 1 {
		return false
	}
	_, ok := vals[ids[0]]
	return ok || len(vals) == 0
}

// loadL1Only loads ids and keeps the values in L1 only: without Redis for
// the group's TTL, while Redis fails (degraded) for DegradedL1TTL.
func (r *run[V]) loadL1Only(ids []string, degraded bool) {
	g, c := r.g, r.g.c
	if c.store == nil {
		r.begin = c.localMicros()
	} // degraded: 0, before every tag invalidation
	vals, _, err := r.call(ids)
	if err != nil && !isNotFound(err) {
		for _, id := range ids {
			r.done(id, *new(V), err)
		}
		return
	}
	tags := r.tagAll(nil, vals)
	for _, id := range ids {
		v, ok := vals[id]
		if !ok {
			r.done(id, v, absentErr(err))
			continue
		}
		if _, bad := r.tagErrs[id]; bad {
			continue // tagAll delivered its error
		}
		var it local.Item[any]
		switch {
		case !degraded:
			it = c.l1Item(v, g.size(v), msAfter(c.clock.Now(), c.jitter(g.valueTTL(id, v))))
		case c.opts.DisableDegradedL1:
			r.done(id, v, nil)
			continue
		default:
			it = local.Item[any]{Value: v, Cost: cost(v, g.size(v)), Expire: c.l1Expiry(0, true)}
		}
		it.Begin, it.Tags = r.begin, tags[id]
		c.fillL1(g.Key(id), r.tok, it)
		r.done(id, v, nil)
	}
}

// loadAborted records a load whose loader did not return, after took: p is
// its panic, re-raised here, or nil for runtime.Goexit (no outcome, and
// not a success). Call it deferred, with recover() as p.
func (g *Group[V]) loadAborted(took time.Duration, p any) {
	if p == nil {
		g.record(Event{Kind: EventLoad, Duration: took, Err: errGoexit})
		return
	}
	g.record(Event{Kind: EventLoad, Duration: took, Err: fmt.Errorf("tiered: loader panicked: %v", p)})
	panic(p)
}
