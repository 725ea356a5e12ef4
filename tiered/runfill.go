package tiered

import (
	"context"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// Step 5 of a run (see run.go): the compare-and-set fills, with the
// hand-offs of their leases in the same round trip.

// fill writes the values (and, with NegativeTTL or NegativeTTLOf, the "not found" answers)
// of the ids whose lease this run holds, with a compare-and-set each, and
// releases the leases it does not fill. It hands each lease's outcome off
// too (see [run.wait]), in the fill's pipeline: the value, or a mark that
// there is none, so that the nodes that waited for a lease an invalidation
// removed need not load again.
//
// lerr is the loader's error: nil, or the *notFound of a Fetch's loader.
func (r *run[V]) fill(leases map[string]remote.Lease, lost map[string]bool, vals map[string]V, took time.Duration, tags map[string][]string, lerr error) {
	g, c := r.g, r.g.c
	var fillsBuf [1]remote.Fill // a Fetch fills one key
	var itemsBuf [1]local.Item[any]
	fills, items := fillsBuf[:0], itemsBuf[:0]
	var unused []remote.Lease
	var hands []remote.HandOff
	now := c.clock.Now()
	for id, l := range leases {
		if _, bad := r.tagErrs[id]; bad {
			unused, hands = append(unused, l), append(hands, r.emptyHandOff(l))
			continue
		}
		v, ok := vals[id]
		rec := remote.Record{Kind: remote.KindValue, Token: remote.NewToken(), LoadTime: took, Begin: r.begin, Tags: tags[id]}
		var ttl time.Duration
		if !ok && (g.negTTL > 0 || g.negOf != nil) {
			ttl = g.negativeTTL(id, lerr)
		}
		var it local.Item[any]
		switch {
		case ok:
			payload, err := g.codec.Marshal(v)
			if err != nil {
				c.log.Warn("tiered: cannot encode a loaded value; not caching it", "group", g.name, "key", l.Key, "err", err)
				unused, hands = append(unused, l), append(hands, r.emptyHandOff(l))
				continue
			}
			ttl = c.jitter(g.valueTTL(id, v))
			rec.Payload, rec.Expire = payload, msAfter(now, ttl)
			if c.l1 != nil { // the item boxes v
				it = c.l1Item(v, len(payload), rec.Expire)
				it.Refresh = g.refreshAt(rec)
			}
		case ttl > 0:
			ttl = c.jitter(ttl)
			rec.Kind, rec.Expire = remote.KindAbsent, msAfter(now, ttl)
			it = local.Item[any]{Cost: 1, Expire: c.l1Expiry(rec.Expire, false), Absent: true}
		default:
			unused, hands = append(unused, l), append(hands, r.emptyHandOff(l))
			continue
		}
		if lost[id] {
			hands = append(hands, remote.HandOff{Lease: l, Record: rec, TTL: c.handOffTTL()})
			continue
		}
		it.Begin, it.Tags = rec.Begin, rec.Tags
		if !r.tagsAllow(l.Key, rec) {
			// A tag of the value was invalidated since its load began.
			g.record(Event{Kind: EventLeaseLost})
			unused, hands = append(unused, l), append(hands, r.emptyHandOff(l))
			continue
		}
		if c.l1 != nil && !c.noCAS && (c.l1.Invalidated(l.Key, r.tok) || c.flushVetoesL2 && c.l1.Flushed(r.tok)) {
			// An invalidation of the key reached this node after the load
			// began, possibly before the lease was taken: the lease cannot
			// tell, so the value is not written.
			// A flush of L1 (the bus's first subscription, its return after
			// a loss, a gap) does not veto the write: it invalidates no key,
			// and every invalidation that a flush stands in for removed the
			// lease in Redis before it was published, so the compare-and-set
			// below refuses the fill. The flush vetoes the L1 fill only.
			// The value is handed off all the same: whoever saw the lease
			// began before the invalidation's UNLINK removed it, or no
			// invalidation of this key removed it (the veto is
			// conservative: a pattern, or another key of the bucket,
			// vetoes it too).
			g.record(Event{Kind: EventLeaseLost})
			unused = append(unused, l)
			hands = append(hands, remote.HandOff{Lease: l, Record: rec, TTL: c.handOffTTL()})
			continue
		}
		it.Version = rec.Token
		f := remote.Fill{Lease: l, Record: rec, TTL: ttl + g.fs.keep(rec.Kind), Stamps: c.stampKeys(l.Key, rec.Tags)}
		if !c.noHandOff {
			f.HandOff = c.handOffTTL()
		}
		fills = append(fills, f)
		items = append(items, it)
	}
	if c.noHandOff {
		hands = nil
	}
	if len(fills) == 0 {
		r.handOff(hands) // first: the waits that the release wakes find it
		r.release(unused)
		return
	}
	if c.noCAS {
		r.release(unused)
		r.fillWithoutCAS(fills, items)
		return
	}
	ep := c.tags.epochNow()
	ok, err := r.fillRedis(fills, hands)
	r.release(unused)
	if err != nil {
		// Some fills may have landed; releasing is a compare-and-delete
		// of our own leases, so it removes only those that did not.
		ls := make([]remote.Lease, len(fills))
		for i, f := range fills {
			ls[i] = f.Lease
		}
		c.redisFailed(&g.st, g.name, "fill", "", err)
		r.release(ls)
		return
	}
	for i, filled := range ok {
		if !filled.OK {
			g.record(Event{Kind: EventLeaseLost})
			continue
		}
		r.learnStamps(ep, fills[i], filled.Stamps)
		if !r.stillAllowed(fills[i]) {
			continue
		}
		c.at(hookFilled)
		c.fillL1(fills[i].Lease.Key, r.tok, items[i])
	}
}

// emptyHandOff is the hand-off of lease l whose load ended without a value to
// hand over: the nodes that wait for it take the lease again.
func (r *run[V]) emptyHandOff(l remote.Lease) remote.HandOff {
	return remote.HandOff{Lease: l, Record: remote.Record{Kind: remote.KindLease, Token: l.Token}, TTL: r.g.c.handOffTTL()}
}

// handOff writes hands on their own, for the leases that were not filled.
// A failure is logged: the nodes waiting take their lease again when
// LeaseWait ends.
func (r *run[V]) handOff(hands []remote.HandOff) {
	c := r.g.c
	if len(hands) == 0 || c.noHandOff {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), c.opts.RedisTimeout)
	defer cancel()
	if _, err := c.store.FillHandOff(ctx, nil, hands); err != nil {
		c.redisFailed(&r.g.st, r.g.name, "hand off", "", err)
	}
}

// fillRedis runs the compare-and-set fills, and writes hands in the same
// pipeline: one script call for a single fill without hand-offs.
func (r *run[V]) fillRedis(fills []remote.Fill, hands []remote.HandOff) ([]remote.Filled, error) {
	return r.g.c.store.FillStamped(r.ctx, fills, hands)
}

// fillWithoutCAS is the fill the compare-and-set replaces, kept only so that
// tests can show what goes wrong without it (Cache.noCAS).
func (r *run[V]) fillWithoutCAS(fills []remote.Fill, items []local.Item[any]) {
	c := r.g.c
	for i, f := range fills {
		if err := c.store.Set(r.ctx, f.Lease.Key, f.Record, f.TTL); err != nil {
			continue
		}
		c.at(hookFilled)
		if c.l1 != nil {
			// The table learns the stamps, or L1 would not serve the entry.
			_, _ = c.tagsValid(r.ctx, f.Lease.Key, f.Record.Begin, f.Record.Tags)
			c.l1.Set(f.Lease.Key, items[i])
		}
	}
}

// msAfter is the unix millisecond d after now (ns).
func msAfter(now int64, d time.Duration) int64 { return (now + int64(d)) / int64(time.Millisecond) }
