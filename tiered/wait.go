package tiered

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/remote"
)

// The wait of a run (its step 3): for the ids whose lease another node
// holds, poll Redis, or take what a wake notice brings, until each holds a
// value, its lease vanishes, or LeaseWait passes.
// await waits for the values of ids, whose leases other nodes hold. An id
// whose lease disappears without a value gets one more try at the lease;
// if another node wins that, this run waits for it once more. It returns
// the leases it took and the ids to load without filling.
func (r *run[V]) await(ids []string) (leases map[string]remote.Lease, unfilled []string) {
	leases = make(map[string]remote.Lease)
	for round := 0; len(ids) > 0; round++ {
		vanished, timedOut, err := r.wait(ids)
		unfilled = append(unfilled, timedOut...)
		if err != nil {
			return leases, append(unfilled, r.failed("wait for lease", vanished, err)...)
		}
		if len(vanished) == 0 || round == 1 {
			return leases, append(unfilled, vanished...)
		}
		won, busy, more, err := r.acquire(vanished)
		if err != nil {
			return leases, append(unfilled, r.failed("acquire", vanished, err)...)
		}
		for id, l := range won {
			leases[id] = l
		}
		unfilled = append(unfilled, more...)
		ids = busy
	}
	return leases, unfilled
}

// Poll intervals of a lease wait: from the first, doubling, up to a
// quarter of the group's typical load time within [firstPoll, lastPoll]
// (lastPoll until a load time is known), each drawn at random within
// [d/2, d] so that waiters spread out. A waiter then sees the value about
// an eighth of a load time after it lands, at the cost of about four
// GETs per load time waited.
const (
	firstPoll = 500 * time.Microsecond
	lastPoll  = 8 * time.Millisecond
)

// loadTime is a moving average of a group's load times: this node's loads
// and the ones other nodes' values report (their envelope's LoadTime).
type loadTime struct{ ns atomic.Int64 }

// add folds d in with a weight of 1/8.
func (l *loadTime) add(d time.Duration) {
	if d <= 0 {
		return
	}
	for {
		old := l.ns.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/8
		}
		if l.ns.CompareAndSwap(old, next) {
			return
		}
	}
}

// handOffWait is how long a wait watches for the hand-off of a lease that
// vanished: twice the group's typical load time plus two polls, as the
// holder began its load before this node saw the lease. 0, no watching,
// until a load time is known.
func (g *Group[V]) handOffWait() time.Duration {
	if d := g.c.handOffWatch; d > 0 {
		return d
	}
	t := time.Duration(g.loads.ns.Load())
	if t == 0 {
		return 0
	}
	return 2*t + 2*g.loads.pollLimit()
}

// pollLimit is the longest pause between two polls of a lease wait.
func (l *loadTime) pollLimit() time.Duration {
	t := time.Duration(l.ns.Load())
	if t == 0 {
		return lastPoll
	}
	return min(max(t/4, firstPoll), lastPoll)
}

// wait polls Redis for ids until each holds a value (delivered), the lease
// it waits for vanished (returned in vanished: removed, expired, or
// replaced by another node's lease, as happens when invalidations keep
// beating the fills), or LeaseWait passed (timedOut). err is a failed Redis
// call or the run's end; the ids not settled are then in vanished.
//
// A lease that vanishes is watched on: its holder hands off what it loaded
// (see [run.fill]) under the lease's hand-off key, and this run saw the
// lease, so it began before whatever removed it and may take that value.
// Meanwhile the key itself is polled too, for a value another node filled.
// An id is vanished when its holder reports that it has no value, or when
// no hand-off came within [Group.handOffWait] (the holder may have died,
// or run a version that does not hand off), or LeaseWait passed.
func (r *run[V]) wait(ids []string) (vanished, timedOut []string, err error) {
	g := r.g
	var foreign []string // leases that outlive LeaseTTL: waited for once
	defer func() { timedOut = append(timedOut, foreign...) }()
	start := time.Now()
	deadline := start.Add(g.c.opts.LeaseWait)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var watched []string
	watches := map[string]watch{} // of the ids in watched
	watchFor := g.handOffWait()
	ended := func(id string, ok bool) {
		e := Event{Kind: EventLeaseWaited, Duration: time.Since(start)}
		if !ok {
			e.Err = errLeaseWait
		}
		g.record(e)
	}
	limit := g.loads.pollLimit()
	woken, byKey, stop := r.listen(ids)
	defer stop()
	if woken != nil {
		ids = slices.Clone(ids) // notes settle ids out of it in place
	}
	marking := woken != nil // the first read marks the leases as waited for
	// lookNow skips the next pause: a notice ended the last one, and a
	// lease it announced has vanished since, so its holder has written its
	// hand-off already (the hand-off comes before the notice).
	lookNow, woke := false, false
	d := firstPoll
	for ; ; d = min(2*d, limit) {
		switch {
		case marking:
			d /= 2 // the first pause is still firstPoll
		case lookNow:
			lookNow = false
		default:
			var (
				note wakeNote
				ok   bool
			)
			if note, woke, ok = r.pause(d, deadline, &timer, woken); !ok {
				return append(append(vanished, ids...), watched...), nil, r.ctx.Err()
			}
			if woke {
				var all bool
				ids, watched, all = r.takeNotes(note, woken, byKey, ids, watched, ended)
				if len(ids)+len(watched) == 0 {
					return vanished, nil, nil
				}
				if all {
					continue // the notes said everything: nothing to read
				}
			}
		}
		keys := g.keys(ids)
		for _, id := range watched {
			keys = append(keys, g.Key(id), watches[id].key)
		}
		var (
			recs []remote.Record
			left []time.Duration
			err  error
		)
		if marking {
			marking = false
			recs, err = r.markWaiting(ids) // nothing is watched yet
		} else {
			recs, left, err = r.poll(keys, len(ids), foreign == nil)
			if woke {
				g.c.wakeReads.Add(1)
			}
		}
		if err != nil {
			return append(append(vanished, ids...), watched...), nil, err
		}
		if left != nil {
			foreign = []string{} // checked: once per wait
		}
		now := time.Now()
		pending, watching := ids[:0:0], watched[:0:0]
		for i, id := range ids {
			rec := recs[i]
			switch {
			case r.settle(id, rec):
				g.loads.add(rec.LoadTime)
				ended(id, true)
			case rec.Kind == remote.KindLease && rec.Token == r.holders[id] && left != nil && r.isForeign(left[i]):
				g.record(Event{Kind: EventLeaseForeign})
				ended(id, false)
				foreign = append(foreign, id)
			case rec.Kind == remote.KindLease && rec.Token == r.holders[id]:
				pending = append(pending, id)
			case watchFor > 0 && r.watchable(id):
				hk, _ := r.handOffKey(id)
				watches[id] = watch{key: hk, until: now.Add(watchFor)}
				watching = append(watching, id)
				lookNow = lookNow || woke
			default:
				ended(id, false)
				vanished = append(vanished, id)
			}
		}
		for j, id := range watched {
			rec, hand := recs[len(ids)+2*j], recs[len(ids)+2*j+1]
			switch {
			case holds(rec) && r.settle(id, rec):
				g.loads.add(rec.LoadTime)
				ended(id, true)
			case holds(hand) && r.settle(id, hand):
				g.loads.add(hand.LoadTime)
				ended(id, true)
			case hand.Kind == remote.KindLease || !now.Before(watches[id].until):
				// The holder's load ended without a value, or no hand-off
				// came in time: the holder may be gone, or not hand off.
				ended(id, false)
				vanished = append(vanished, id)
			default:
				watching = append(watching, id)
			}
		}
		ids, watched = pending, watching
		if len(ids)+len(watched) == 0 {
			return vanished, nil, nil
		}
		if !time.Now().Before(deadline) {
			for _, id := range ids {
				ended(id, false)
			}
			for _, id := range watched {
				ended(id, false)
			}
			return append(vanished, watched...), ids, nil
		}
	}
}

// takeNotes settles the ids (pending or watched) whose wake notices,
// first and those queued on woken, carry a value or a cached "not
// found" from the fill of the very lease the wait saw: what a read of the
// key right after that fill returned.
// It returns the ids left, and all when no notice asks for a read (every
// one carried what it announced and settled its id).
func (r *run[V]) takeNotes(first wakeNote, woken <-chan wakeNote, byKey map[string]string, ids, watched []string, ended func(string, bool)) (restIDs, restWatched []string, all bool) {
	all = true
	for n, more := first, true; more; {
		id, known := byKey[n.rkey]
		switch {
		case !known || !n.has || !holds(n.rec) || n.lease != r.holders[id] && !r.g.c.noNoteLeaseCheck:
			// A notice of another lease's fill may be older than what
			// this wait saw (it can come after a later invalidation,
			// which this node may have applied itself): read instead.
			all = false
		case settleIn(r, &ids, id, n.rec), settleIn(r, &watched, id, n.rec):
			r.g.loads.add(n.rec.LoadTime)
			ended(id, true)
		default:
			all = false
		}
		select {
		case n = <-woken:
		default:
			more = false
		}
	}
	return ids, watched, all
}

// settleIn settles id from rec if id is in *ids, and then takes it out.
func settleIn[V any](r *run[V], ids *[]string, id string, rec remote.Record) bool {
	i := slices.Index(*ids, id)
	if i < 0 || !r.settle(id, rec) {
		return false
	}
	*ids = slices.Delete(*ids, i, i+1)
	return true
}

// pause waits before the next poll of a lease wait: about d (drawn within
// [d/2, d], cut at deadline), or until a wake notice for one of the
// waited keys arrives on woken (nil: none; then woke, with the notice).
// ok is false when the run ended.
func (r *run[V]) pause(d time.Duration, deadline time.Time, timer **time.Timer, woken <-chan wakeNote) (note wakeNote, woke, ok bool) {
	p := d/2 + rand.N(d/2+1)
	if f := r.g.c.pollPause; f > 0 {
		p = f
	}
	if left := time.Until(deadline); p > left {
		p = max(left, 0)
	}
	if *timer == nil {
		*timer = time.NewTimer(p)
	} else {
		(*timer).Reset(p)
	}
	select {
	case <-(*timer).C:
		return note, false, true
	case note = <-woken:
		(*timer).Stop() // since Go 1.23 a stopped timer delivers nothing stale
		return note, true, true
	case <-r.ctx.Done():
		return note, false, false
	}
}

// listen registers the wait for ids with the cache's wake table, unless
// wake notices are off; byKey maps each Redis key to its id, and stop
// unregisters the wait.
func (r *run[V]) listen(ids []string) (woken chan wakeNote, byKey map[string]string, stop func()) {
	c := r.g.c
	if !c.wakeWaits() {
		return nil, nil, func() {}
	}
	rkeys := make([]string, len(ids))
	byKey = make(map[string]string, len(ids))
	for i, id := range ids {
		rkeys[i] = c.store.RedisKey(r.g.Key(id))
		byKey[rkeys[i]] = id
	}
	woken, stop = c.listen(rkeys)
	return woken, byKey, stop
}

// wakeWaits reports whether waits listen for wake notices: the store has a
// wake channel and they are not switched off.
func (c *Cache) wakeWaits() bool { return c.store.Wake() != "" && !c.noWakeWait }

// listen registers a wait for the Redis keys rkeys with the wake table:
// woken receives their notices (never blocking the sender; see
// wakeTable.wake) until stop.
func (c *Cache) listen(rkeys []string) (woken chan wakeNote, stop func()) {
	woken = make(chan wakeNote, min(len(rkeys), 64))
	c.wakes.add(rkeys, woken)
	return woken, func() { c.wakes.remove(rkeys, woken) }
}

// markWaiting is the first read of a wait with wake notices: it reads the
// keys of ids and marks each lease still there as waited for, so that its
// fill publishes a notice (see [remote.Store.MarkWaiting]).
func (r *run[V]) markWaiting(ids []string) ([]remote.Record, error) {
	ls := make([]remote.Lease, len(ids))
	for i, id := range ids {
		ls[i] = remote.Lease{Key: r.g.Key(id), Token: r.holders[id]}
	}
	return r.g.c.store.MarkWaiting(r.ctx, ls)
}

// poll reads keys; with ttls, it also returns the remaining life of the
// first n (one pipeline either way).
func (r *run[V]) poll(keys []string, n int, ttls bool) ([]remote.Record, []time.Duration, error) {
	st := r.g.c.store
	if !ttls || r.g.c.noForeignLease {
		recs, err := st.GetMany(r.ctx, keys)
		return recs, nil, err
	}
	return st.GetManyLifetimes(r.ctx, keys, n)
}

// isForeign reports whether a lease with left to live was not taken by
// this fleet's rules (by hand, or by a buggy or older writer): it has more
// life left than LeaseTTL, or no expiry. Its value may never come, so it
// is waited for once only, then the key is loaded without filling
// (EventLeaseForeign).
func (r *run[V]) isForeign(left time.Duration) bool {
	return left == -1 || left > r.g.c.opts.LeaseTTL
}

// watch is a vanished lease that a wait watches for its hand-off: the
// hand-off's key, and when the watch ends.
type watch struct {
	key   string
	until time.Time
}

// holds reports whether rec is something to deliver: a value or a cached
// "not found".
func holds(rec remote.Record) bool {
	return rec.Kind == remote.KindValue || rec.Kind == remote.KindAbsent
}

// handOffKey is the key of the hand-off of the lease this run waits for on
// id.
func (r *run[V]) handOffKey(id string) (string, bool) {
	return r.g.c.store.HandOffKey(remote.Lease{Key: r.g.Key(id), Token: r.holders[id]})
}

// watchable reports whether a vanished lease of id may still be handed
// off.
func (r *run[V]) watchable(id string) bool {
	if r.g.c.noHandOff {
		return false
	}
	_, ok := r.handOffKey(id)
	return ok
}
