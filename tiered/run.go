package tiered

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// run is one load of some ids of a group past L1, on behalf of the flights
// that wait for them (one for Fetch, several for FetchMany). Its steps,
// for the ids Redis did not have:
//
//  1. the invalidation state was recorded before Redis was read (tok);
//  2. take the leases in one pipelined atomic step; an id filled meanwhile
//     is served from Redis;
//  3. for an id another node holds the lease of, wait for that node's
//     value (bounded by LeaseWait), or for its hand-off if the lease
//     disappears; if neither comes, take the lease once more, and wait
//     once more if another node won it; an id still without a value is
//     loaded here without filling anything;
//  4. call the loader once for every id left; a slow load renews its
//     leases;
//  5. compare-and-set each value into Redis only if the key still holds
//     our lease, and into L1 only if no invalidation of the key happened
//     since step 1, and hand each lease's outcome off to the nodes that
//     waited for it. A failed compare-and-set means an invalidation won:
//     the value goes to this run's callers and the waiting nodes, and is
//     cached nowhere. A loader error releases the leases.
//
// Without Redis, or when Redis fails, the values come from the loader and
// stay in L1 only (for DegradedL1TTL when Redis failed); with FailClosed a
// Redis failure is returned instead.
//
// A run delivers exactly one outcome per id through done, on the run's
// goroutine: a value, an error wrapping ErrNotFound, or another error.
type run[V any] struct {
	g    *Group[V]
	ctx  context.Context // the callers' values, not their cancellation; ended by Close
	tok  local.Token
	load BatchLoaderFunc[V]
	done func(id string, v V, err error)
	pos  map[string]int // each id's place in the ids asked for, to keep their order
	// holders maps the ids this run waits for to the lease it found:
	// another lease in their place means that holder is gone.
	holders map[string]uint64
	begin   int64            // the Redis time before the loader ran (see tags.go)
	tagErrs map[string]error // the ids whose tags were refused (tagAll)
	// olds are the expired values kept by fail-safe found in the keys of
	// ids loaded without a lease (see keepOld).
	olds map[string]remote.Record
	// onStale, set for the runs of a group with a MaxStale window that
	// may serve stale values, hands a stale value to the callers of id
	// before the run's outcome; bg is set once it did (see stale.go).
	onStale func(id string, v V)
	// onFallback, set for FetchMany's runs of a group with FailSafe,
	// hands the expired value of id to its callers as a fallback instead
	// of the load's error (see failsafe_many.go).
	onFallback func(id string, v V)
	// softServed are the ids onFallback served at the batch's soft
	// timeout while the load went on (see callSoft).
	softServed map[string]bool
	bg         bool
}

func (g *Group[V]) newRun(ctx context.Context, tok local.Token, load BatchLoaderFunc[V], done func(string, V, error)) *run[V] {
	return &run[V]{g: g, ctx: ctx, tok: tok, load: load, done: done}
}

// runContext is the context of a run: the values of ctx without its
// cancellation, cancelled by Close. The CancelFunc is kept for the
// callers' shape; it has nothing to release (see runCtx).
func (c *Cache) runContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return &runCtx{vals: ctx, closing: c.runClosings[rand.N(len(c.runClosings))]}, noCancel
}

// runClosingShards is how many children of closing the runs' contexts
// spread over: each context derived from a run registers with one of them
// (a lock and a map write, and the same to leave), so concurrent runs do
// not all take one lock.
const runClosingShards = 8

func noCancel() {}

// runCtx is a run's context: Close's cancellation (Done, Err, no deadline)
// with the values of the caller's context. It costs one allocation where
// WithCancel(WithoutCancel(ctx)) tied to Close by AfterFunc cost six, and a
// context derived from it (a load's timeout, a Redis call's) registers
// with closing directly: Value answers the context package's own
// cancellation key with closing, whose Done channel is runCtx's.
type runCtx struct {
	vals    context.Context
	closing context.Context // a child of Cache.closing, cancelled with it
}

func (r *runCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (r *runCtx) Done() <-chan struct{}       { return r.closing.Done() }
func (r *runCtx) Err() error                  { return r.closing.Err() }

// Value returns closing's answer, which is non-nil only for the context
// package's cancellation key (closing and its parent carry no values), and
// otherwise the caller's value.
func (r *runCtx) Value(key any) any {
	if v := r.closing.Value(key); v != nil {
		return v
	}
	return r.vals.Value(key)
}

func (r *runCtx) String() string { return "tiered.runContext" }

// exec loads ids; with read it first reads them from Redis. The read and
// the lease taking are one step (SET NX GET: a key that holds a value
// answers with it, a missing key gets this run's lease), except on servers
// older than Redis 7.0, where taking a lease runs a script: those are read
// with GETs first.
func (r *run[V]) exec(ids []string, read bool) {
	g := r.g
	if len(ids) > 1 {
		r.pos = make(map[string]int, len(ids))
		for i, id := range ids {
			r.pos[id] = i
		}
	}
	st := g.c.store
	if st == nil {
		r.loadL1Only(ids, false)
		return
	}
	byScript := st.LeaseByScript()
	if read && byScript {
		recs, err := st.GetMany(r.ctx, g.keys(ids))
		if err != nil {
			r.redisFailed("get many", ids, err)
			return
		}
		var rest []string
		for i, rec := range recs {
			if !r.settle(ids[i], rec) {
				rest = append(rest, ids[i])
			}
		}
		if ids = rest; len(ids) == 0 {
			return
		}
	}
	acq, err := st.AcquireMany(r.ctx, g.keys(ids), g.c.opts.LeaseTTL)
	if err != nil {
		r.redisFailed("acquire", ids, err)
		return
	}
	r.proceed(ids, acq, false, read && !byScript)
}

// proceed goes on from the lease taking of ids (acq, in the order of ids):
// it waits for the leases other nodes hold, then loads and fills. seen and
// read are as for sort.
func (r *run[V]) proceed(ids []string, acq []remote.Acquired, seen, read bool) {
	leases, busy, unfilled := r.sort(ids, acq, seen, read)
	if len(busy) > 0 {
		more, rest := r.await(busy)
		for id, l := range more {
			leases[id] = l
		}
		unfilled = append(unfilled, rest...)
	}
	r.loadAndFill(leases, unfilled)
}

// settle delivers what Redis held for id, if it is a value or a cached
// "not found", and reports whether it did.
func (r *run[V]) settle(id string, rec remote.Record) bool {
	st := r.look(id, rec)
	return st == foundValue || st == foundAbsent
}

// look is settle that tells what it found.
func (r *run[V]) look(id string, rec remote.Record) found {
	v, st := r.g.fromRecord(r.ctx, r.g.Key(id), rec, r.tok, nil)
	switch st {
	case foundValue:
		r.done(id, v, nil)
	case foundAbsent:
		r.done(id, v, ErrNotFound)
	}
	return st
}

// acquire takes the leases of ids and sorts them (see sort).
func (r *run[V]) acquire(ids []string) (leases map[string]remote.Lease, busy, unfilled []string, err error) {
	g := r.g
	acq, err := g.c.store.AcquireMany(r.ctx, g.keys(ids), g.c.opts.LeaseTTL)
	if err != nil {
		return nil, nil, nil, err
	}
	leases, busy, unfilled = r.sort(ids, acq, false, false)
	return leases, busy, unfilled, nil
}

// sort splits the outcome of a lease taking: it returns the leases won, the
// ids whose lease another node holds and that this run will wait for, and
// the ids to load without filling. Unless seen (what the keys held was
// already looked at), ids whose key held a value or a cached "not found"
// are delivered, and the keys that held bytes that do not decode, now
// removed, are taken once more. With read (the lease taking was the run's
// read of the keys), a won lease counts as an L2 miss.
func (r *run[V]) sort(ids []string, acq []remote.Acquired, seen, read bool) (leases map[string]remote.Lease, busy, unfilled []string) {
	leases = make(map[string]remote.Lease)
	gone := r.sortInto(ids, acq, seen, read, leases, &busy, &unfilled)
	if len(gone) == 0 {
		return leases, busy, unfilled
	}
	g := r.g
	again, err := g.c.store.AcquireMany(r.ctx, g.keys(gone), g.c.opts.LeaseTTL)
	if err != nil {
		return leases, busy, append(unfilled, r.failed("acquire", gone, err)...)
	}
	gone = r.sortInto(gone, again, false, false, leases, &busy, &unfilled)
	return leases, busy, append(unfilled, gone...)
}

// sortInto is one pass of sort; it returns the ids found holding bytes
// that were removed.
func (r *run[V]) sortInto(ids []string, acq []remote.Acquired, seen, read bool, leases map[string]remote.Lease, busy, unfilled *[]string) (gone []string) {
	g := r.g
	for i, a := range acq {
		id := ids[i]
		if a.Won {
			if read {
				g.record(Event{Kind: EventMiss, Tier: TierL2})
			}
			g.record(Event{Kind: EventLeaseWon})
			leases[id] = a.Lease
			continue
		}
		if !seen {
			switch r.look(id, a.Found) {
			case foundValue, foundAbsent:
				continue
			case foundGone:
				gone = append(gone, id)
				continue
			}
		}
		if r.onStale != nil && r.sortStale(id, a.Found, leases, &gone, unfilled) {
			continue
		}
		if a.Found.Kind == remote.KindLease && !g.c.opts.DisableLeaseWait {
			g.record(Event{Kind: EventLeaseBusy})
			*busy = append(*busy, id)
			if r.holders == nil {
				r.holders = make(map[string]uint64)
			}
			r.holders[id] = a.Found.Token
			continue
		}
		g.record(Event{Kind: EventLeaseBusy})
		r.keepOld(id, a.Found)
		*unfilled = append(*unfilled, id)
	}
	return gone
}

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
	r.fill(leases, lost, vals, took, tags)
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

// isNotFound reports whether err is the "not found" of a Fetch's loader.
func isNotFound(err error) bool {
	if err == nil {
		return false // errors.As would allocate its target all the same
	}
	var nf *notFound
	return errors.As(err, &nf)
}

// absentErr is the error delivered for an id the loader did not find: the
// loader's own error when it gave one, else ErrNotFound.
func absentErr(err error) error {
	var nf *notFound
	if errors.As(err, &nf) {
		return nf.err
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

// fill writes the values (and, with NegativeTTL, the "not found" answers)
// of the ids whose lease this run holds, with a compare-and-set each, and
// releases the leases it does not fill. It hands each lease's outcome off
// too (see [run.wait]), in the fill's pipeline: the value, or a mark that
// there is none, so that the nodes that waited for a lease an invalidation
// removed need not load again.
func (r *run[V]) fill(leases map[string]remote.Lease, lost map[string]bool, vals map[string]V, took time.Duration, tags map[string][]string) {
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
		case g.negTTL > 0:
			ttl = c.jitter(g.negTTL)
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

// call runs the loader once for ids, bounded by LoadTimeout, and records
// it. Values for ids that were not asked for are dropped. A *notFound
// error (the one id of a Fetch does not exist) is not a load error.
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
			p := recover()
			if p == nil { // runtime.Goexit: no outcome, and not a success
				g.record(Event{Kind: EventLoad, Duration: took, Err: errGoexit})
				return
			}
			g.record(Event{Kind: EventLoad, Duration: took, Err: fmt.Errorf("tiered: loader panicked: %v", p)})
			panic(p)
		}
		if isNotFound(err) {
			g.record(Event{Kind: EventLoad, Duration: took})
			return
		}
		g.record(Event{Kind: EventLoad, Duration: took, Err: err})
	}()
	vals, err = r.load(ctx, ids)
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

// failed handles a failed Redis call of the run: with FailClosed the ids
// get the error and failed returns none; otherwise it records the failure
// and returns ids, to be loaded without filling. A call cut short by Close
// is not a Redis failure: the ids get ErrClosed.
func (r *run[V]) failed(op string, ids []string, err error) []string {
	g := r.g
	if r.ctx.Err() != nil {
		r.closed(ids)
		return nil
	}
	if g.c.opts.FailClosed {
		r.fail(op, ids, err)
		return nil
	}
	key := ""
	if len(ids) == 1 {
		key = g.Key(ids[0])
	}
	g.c.redisFailed(&g.st, g.name, op, key, err)
	return ids
}

// closed delivers ErrClosed to ids: Close ended the run.
func (r *run[V]) closed(ids []string) {
	for _, id := range ids {
		r.done(id, *new(V), ErrClosed)
	}
}

// fail delivers the failed Redis call err to ids.
func (r *run[V]) fail(op string, ids []string, err error) {
	r.g.record(Event{Kind: EventRedisError, Err: err})
	err = fmt.Errorf("tiered: redis %s: %w", op, err)
	for _, id := range ids {
		r.done(id, *new(V), err)
	}
}

// redisFailed is failed for a call before the run took any lease: the ids
// left are loaded and kept in L1 for DegradedL1TTL only.
func (r *run[V]) redisFailed(op string, ids []string, err error) {
	if ids = r.failed(op, ids, err); len(ids) > 0 {
		r.loadL1Only(ids, true)
	}
}

// release gives leases up after a failed load, so the next reader loads at
// once instead of waiting for them to expire.
func (r *run[V]) release(ls []remote.Lease) {
	if len(ls) == 0 || r.g.c.noRelease {
		return
	}
	c := r.g.c
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), c.opts.RedisTimeout)
	defer cancel()
	if err := c.store.ReleaseMany(ctx, ls); err != nil {
		c.redisFailed(&r.g.st, r.g.name, "release", "", err)
	}
}

// renewer extends the leases of a load that runs longer than a third of
// LeaseTTL, every LeaseTTL/3, with a compare-and-PEXPIRE each. A lease
// found gone is lost: counted, logged, and not filled.
type renewer[V any] struct {
	r      *run[V]
	leases map[string]remote.Lease
	mu     sync.Mutex // held while renewing; protects t, stopped, lost
	t      *time.Timer
	done   bool
	lost   map[string]bool
}

func (r *run[V]) renew(leases map[string]remote.Lease) *renewer[V] {
	rn := &renewer[V]{r: r, leases: leases}
	if len(leases) > 0 {
		rn.mu.Lock() // a tick waits for rn.t
		rn.t = time.AfterFunc(r.g.c.opts.LeaseTTL/3, rn.tick)
		rn.mu.Unlock()
	}
	return rn
}

func (rn *renewer[V]) tick() {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.done {
		return
	}
	g, c := rn.r.g, rn.r.g.c
	for id, l := range rn.leases {
		if rn.lost[id] {
			continue
		}
		ok, err := c.store.Renew(rn.r.ctx, l, c.opts.LeaseTTL)
		switch {
		case err != nil:
			c.redisFailed(&g.st, g.name, "renew lease", l.Key, err)
		case ok:
			g.record(Event{Kind: EventLeaseRenewed})
		default:
			if rn.lost == nil {
				rn.lost = make(map[string]bool)
			}
			rn.lost[id] = true
			g.record(Event{Kind: EventLeaseLost})
			c.log.Warn("tiered: a slow load lost its lease; its value will not be cached", "group", g.name, "key", l.Key)
		}
	}
	rn.t.Reset(c.opts.LeaseTTL / 3)
}

// stop ends the renewals (waiting for one in progress) and returns the ids
// whose lease was lost.
func (rn *renewer[V]) stop() map[string]bool {
	if rn.t == nil {
		return nil
	}
	rn.t.Stop()
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.done = true
	return rn.lost
}
