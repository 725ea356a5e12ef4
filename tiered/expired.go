package tiered

import (
	"context"
	"errors"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// expiredLoad is the load of an id whose Redis key held an expired value
// (old, decoded as stale) kept by fail-safe:
//
//  1. take the id's reload lock in Redis (beside the key, like an early
//     refresh's). A throttle mark in its place means a load failed lately:
//     serve the fallback without loading. Another node's lock: wait for its
//     outcome (bounded by LeaseWait, and LoadSoftTimeout).
//  2. load; on success replace old with a compare-and-set on its write
//     token (an invalidation or another write wins), then L1;
//  3. on failure, if Redis still holds old (not invalidated) and no
//     invalidation of the key reached this node since the read, replace the
//     lock with a throttle mark for FailSafeThrottle and serve old.
type expiredLoad[V any] struct {
	g     *Group[V]
	key   string
	id    string
	load  LoaderFunc[V]
	old   remote.Record
	stale V
	tok   local.Token
	begin int64 // the Redis time before the loader ran: the new value's tags count from it
	// began is when the Fetch's read of Redis began (Cache.monoNow), which
	// LoadSoftTimeout counts from; 0 without a soft timeout.
	began int64
}

// startExpired runs the rest of a Fetch's load on a new goroutine when
// Redis held an expired value kept by fail-safe; began is when the Fetch's
// read of Redis began (see expiredLoad.softLeft).
func (g *Group[V]) startExpired(ctx context.Context, key string, fl *flight, load LoaderFunc[V], old remote.Record, tok local.Token, began int64) {
	c := g.c
	x := &expiredLoad[V]{g: g, key: key, id: key[len(g.prefix):], load: load, old: old, tok: tok, began: began}
	c.flights.start(key, fl, func() (any, error) {
		rctx, cancel := c.runContext(ctx)
		defer cancel()
		return x.run(ctx, rctx)
	})
}

func (x *expiredLoad[V]) lockKey() string { return refreshLockPrefix + x.key }

// softLeft is what is left of LoadSoftTimeout: it counts from the start of
// the Fetch's read of Redis, so that the round trips that found the
// expired value and took (or found) the reload lock come out of it, and a
// second wait for another node's lock does not start it again. The
// caller's wait for the fallback is then the soft timeout itself.
func (x *expiredLoad[V]) softLeft() time.Duration {
	g, c := x.g, x.g.c
	if c.softFromLock {
		return g.fs.soft
	}
	return max(time.Duration(x.began+int64(g.fs.soft)-c.monoNow()), 0)
}

// run is the whole expired load; ctx is the caller's (for a background
// load's values), rctx the run's.
func (x *expiredLoad[V]) run(ctx, rctx context.Context) (any, error) {
	g, c := x.g, x.g.c
	if err := g.codec.Unmarshal(x.old.Payload, &x.stale); err != nil {
		g.discard(rctx, x.key, x.old, err)
		return x.plain(rctx)
	}
	if g.fs.soft > 0 && c.softLoading(x.key) && x.fresh(rctx) {
		// A FetchMany's load of it on this node is past its soft timeout
		// (it took no reload lock): serve old as that FetchMany did.
		return x.serve(nil, 0), nil
	}
	for try := 0; ; try++ {
		lock, won, mark, err := c.store.Acquire(rctx, x.lockKey(), c.opts.LeaseTTL)
		switch {
		case err != nil:
			if rctx.Err() != nil {
				return nil, ErrClosed
			}
			c.redisFailed(&g.st, g.name, "fail-safe lock", x.key, err)
			return x.unlocked(rctx)
		case won:
			g.record(Event{Kind: EventLeaseWon})
			return x.locked(ctx, rctx, lock)
		case mark.Kind == remote.KindAbsent && !c.noThrottle:
			return x.throttled(rctx, mark.Expire)
		case mark.Kind != remote.KindLease || try > 0:
			return x.unlocked(rctx)
		}
		g.record(Event{Kind: EventLeaseBusy})
		if out, err, done := x.await(rctx, mark.Token); done {
			return out, err
		}
	}
}

// listen registers the wait for the reload lock with the cache's wake
// table and marks the lock, still held with lockToken, as waited for (see
// remote.Store.MarkWaiting), unless wake notices are off. woken receives
// the notices (nil: none, or the lock has changed already: a closed
// channel then, so that the first pause ends at once).
func (x *expiredLoad[V]) listen(ctx context.Context, lockToken uint64) (woken chan wakeNote, stop func()) {
	c := x.g.c
	if !c.wakeWaits() {
		return nil, func() {}
	}
	woken, stop = c.listen([]string{c.store.RedisKey(x.lockKey())})
	recs, err := c.store.MarkWaiting(ctx, []remote.Lease{{Key: x.lockKey(), Token: lockToken}})
	if err == nil && (recs[0].Kind != remote.KindLease || recs[0].Token != lockToken) {
		// The holder is done already: read at once.
		stop()
		ch := make(chan wakeNote)
		close(ch)
		return ch, func() {}
	}
	return woken, stop
}

// throttled is the outcome of a read that found the throttle mark (until,
// unix ms): a load failed lately, so old is served without loading, if it
// is still fresh (a tag or a Clear may have invalidated it, or an
// invalidation of the key reached this node, since the mark was set);
// else the id is loaded without the lock, and a failure is the caller's.
func (x *expiredLoad[V]) throttled(ctx context.Context, until int64) (any, error) {
	if !x.fresh(ctx) {
		return x.unlocked(ctx)
	}
	return x.serve(errThrottled, until), nil
}

// plain loads the id the way a miss does (its Redis key no longer holds
// old, or old does not decode).
func (x *expiredLoad[V]) plain(rctx context.Context) (any, error) {
	var out any
	var oerr error
	r := x.g.newRun(rctx, x.tok, single(x.load), func(_ string, v V, err error) { out, oerr = v, err })
	r.exec([]string{x.id}, true)
	return out, oerr
}

// fresh reports whether no invalidation of the key, and no flush, reached this node since
// the read that found old, and none of old's tags (Group.Clear and
// Cache.Clear included) was invalidated since its load began: a tag
// invalidation leaves the key in Redis, so only its stamp tells.
func (x *expiredLoad[V]) fresh(ctx context.Context) bool {
	c := x.g.c
	if c.noFallbackCheck {
		return true
	}
	// A flush counts too: it may stand for a lost message that invalidated
	// the key, and the soft timeout serves the fallback without reading
	// Redis again.
	if c.l1 != nil && (c.l1.Invalidated(x.key, x.tok) || c.l1.Flushed(x.tok)) {
		return false
	}
	ok, err := c.tagsValid(ctx, x.key, x.old.Begin, x.old.Tags)
	return err == nil && ok
}

// stillHeld reports whether old may serve as a fallback after a failed
// load: no invalidation reached this node since the read, and Redis still
// holds old (an invalidation removes it).
func (x *expiredLoad[V]) stillHeld(ctx context.Context) bool {
	g, c := x.g, x.g.c
	if c.noFallbackCheck {
		return true
	}
	if !x.fresh(ctx) {
		return false
	}
	rec, err := c.store.Get(ctx, x.key)
	if err != nil {
		c.redisFailed(&g.st, g.name, "fail-safe check", x.key, err)
		return false
	}
	return rec.Kind == remote.KindValue && rec.Token == x.old.Token
}

// serve records a fallback served for err (nil: a soft timeout) and keeps
// it in L1 until until (unix ms, the end of the throttle; 0: not kept).
func (x *expiredLoad[V]) serve(err error, until int64) any {
	x.g.record(Event{Kind: EventFailSafe, Err: err})
	return x.keep(until)
}

// keep is serve without the record: a background load past its soft
// timeout serves nobody.
func (x *expiredLoad[V]) keep(until int64) any {
	g, c := x.g, x.g.c
	if until > 0 && c.l1 != nil {
		end := (x.old.Expire*int64(time.Millisecond) + int64(g.fs.window)) - c.tick
		it := local.Item[any]{
			Value: x.stale, Cost: cost(x.stale, len(x.old.Payload)), Version: x.old.Token,
			Expire: min(until*int64(time.Millisecond)-c.tick, end), Fallback: end,
			Begin: x.old.Begin, Tags: x.old.Tags, // a tag invalidation ends it, as it ends old
		}
		c.fillL1(x.key, x.tok, it)
	}
	return fallback[V]{x.stale}
}

// call runs the loader once, bounded by LoadTimeout, and records it (a
// panic or a runtime.Goexit too).
func (x *expiredLoad[V]) call(ctx context.Context) (V, time.Duration, error) {
	g, c := x.g, x.g.c
	x.begin = c.loadBegin(ctx, x.key)
	lctx, cancel := context.WithTimeout(ctx, c.opts.LoadTimeout)
	defer cancel()
	start := c.stopwatch()
	returned := false
	defer func() {
		if !returned {
			g.loadAborted(start(), recover())
		}
	}()
	v, err := x.load(lctx, x.id)
	returned = true
	took := start()
	g.loads.add(took)
	e := Event{Kind: EventLoad, Duration: took, Err: err}
	if errors.Is(err, ErrNotFound) {
		e.Err = nil
	}
	g.record(e)
	return v, took, err
}

// unlocked loads without the lock and caches nothing (Redis failed, or the
// lock could not be had); a failed load serves old if no invalidation
// reached this node.
func (x *expiredLoad[V]) unlocked(ctx context.Context) (any, error) {
	v, _, err := x.call(ctx)
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, ErrNotFound) || !x.fresh(ctx):
		return nil, err
	}
	return x.serve(err, 0), nil
}

// locked loads under the lock; with LoadSoftTimeout the load runs on its
// own goroutine and the caller gets old once the soft timeout passes.
func (x *expiredLoad[V]) locked(ctx, rctx context.Context, lock remote.Lease) (any, error) {
	g, c := x.g, x.g.c
	if g.fs.soft <= 0 {
		return x.reload(rctx, lock, true)
	}
	type outcome struct {
		v     any
		err   error
		panic any
	}
	out := make(chan outcome, 1)
	bctx, cancel := c.runContext(ctx)
	c.flights.running.Add(1) // Close waits for it; this load's flight is still counted
	go func() {
		defer c.flights.running.Done()
		defer cancel()
		returned := false
		defer func() {
			if !returned {
				var p any = errGoexit
				if r := recover(); r != nil {
					p = asPanicError(r) // the loader's stack, not the caller's
				}
				out <- outcome{panic: p}
			}
		}()
		v, err := x.reload(bctx, lock, false)
		returned = true
		out <- outcome{v: v, err: err}
	}()
	// abandon leaves the load to go on unread: a panic of its loader then
	// reaches nobody as a panic, and is logged as one that did would be.
	abandon := func() {
		c.flights.running.Add(1) // Close waits for the log line too
		go func() {
			defer c.flights.running.Done()
			if pe, ok := (<-out).panic.(*PanicError); ok && c.flights.onPanic != nil {
				c.flights.onPanic(x.key, pe)
			}
		}()
	}
	soft := c.softTimer(x.softLeft())
	defer soft.Stop()
	select {
	case o := <-out:
		rethrow(o.panic)
		if _, ok := o.v.(fallback[V]); ok {
			g.record(Event{Kind: EventFailSafe, Err: errLoadFailed})
		}
		return o.v, o.err
	case <-soft.C:
	case <-rctx.Done():
		abandon()
		return nil, ErrClosed
	}
	if !x.fresh(rctx) {
		o := <-out // an invalidation came in: old is no fallback
		rethrow(o.panic)
		if _, ok := o.v.(fallback[V]); ok {
			g.record(Event{Kind: EventFailSafe, Err: errLoadFailed})
		}
		return o.v, o.err
	}
	abandon()
	return x.serve(nil, 0), nil
}

// reload is the load under the lock: the value replaces old in both tiers,
// or a failure serves old (recorded with record) and throttles the fleet.
func (x *expiredLoad[V]) reload(ctx context.Context, lock remote.Lease, record bool) (any, error) {
	g, c := x.g, x.g.c
	held := true
	defer func() {
		if held {
			x.unlock(ctx, lock)
		}
	}()
	v, took, err := x.call(ctx)
	switch {
	case err == nil:
		switch rerr := x.replace(ctx, v, took); {
		case errors.Is(rerr, ErrBadTag):
			return nil, rerr // cached nowhere, as on a miss
		case rerr != nil:
			c.redisFailed(&g.st, g.name, "fail-safe fill", x.key, rerr)
		}
		return v, nil
	case ctx.Err() != nil:
		return nil, ErrClosed // Close cut the load short
	case errors.Is(err, ErrNotFound):
		// The row is gone: its old value is no fallback any more.
		if _, derr := c.store.Discard(ctx, x.key, x.old); derr != nil {
			c.redisFailed(&g.st, g.name, "fail-safe discard", x.key, derr)
		}
		return nil, err
	}
	until := msAfter(c.clock.Now(), g.fs.throttle)
	if !x.failed(ctx, lock, until, &held) {
		return nil, err
	}
	defer c.at(hookFallback)
	if !record {
		return x.keep(until), nil
	}
	return x.serve(err, until), nil
}

// failed is the rest of a load under the lock that failed: it replaces the
// lock with the throttle mark until until (clearing *held when it did) and
// reports whether old may serve as the fallback (stillHeld). The two take
// a round trip each, so they run together: the caller waits for one round
// trip, not two, before its fallback. When old went while the load ran
// (no fallback: the caller gets the load's error), the mark is removed
// again, a second round trip on that path only: a failure that served no
// fallback throttles nothing, or a new value that expires within the
// throttle would be served as a fallback without a reload.
func (x *expiredLoad[V]) failed(ctx context.Context, lock remote.Lease, until int64, held *bool) bool {
	c := x.g.c
	if c.noThrottle {
		return x.stillHeld(ctx)
	}
	if c.serialFailure {
		if !x.stillHeld(ctx) {
			return false
		}
		_, marked := x.markThrottle(ctx, lock, until)
		*held = !marked
		return true
	}
	type marking struct {
		mark remote.Record
		ok   bool
	}
	done := make(chan marking, 1)
	go func() {
		m, ok := x.markThrottle(ctx, lock, until)
		done <- marking{m, ok}
	}()
	fallback := x.stillHeld(ctx)
	m := <-done
	*held = !m.ok
	if !fallback && m.ok && !c.keepFailedMark {
		x.unmark(ctx, m.mark)
	}
	return fallback
}

// markThrottle replaces the reload lock with the throttle mark, which holds
// the fleet back from loading the id until until (unix ms). It returns the
// mark and whether the call succeeded (the lock is then no longer this
// load's to release).
func (x *expiredLoad[V]) markThrottle(ctx context.Context, lock remote.Lease, until int64) (remote.Record, bool) {
	g, c := x.g, x.g.c
	mark := remote.Record{Kind: remote.KindAbsent, Token: remote.NewToken(), Expire: until}
	if _, err := c.store.Fill(ctx, lock, mark, g.fs.throttle); err != nil {
		c.redisFailed(&g.st, g.name, "fail-safe throttle", x.key, err)
		return mark, false
	}
	return mark, true
}

// unmark removes the throttle mark this load wrote, if it is still there
// (a compare-and-delete on its bytes).
func (x *expiredLoad[V]) unmark(ctx context.Context, mark remote.Record) {
	g, c := x.g, x.g.c
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.RedisTimeout)
	defer cancel()
	mark.Raw = remote.Encode(mark)
	if _, err := c.store.Discard(rctx, x.lockKey(), mark); err != nil {
		c.redisFailed(&g.st, g.name, "fail-safe unmark", x.key, err)
	}
}

// unlock releases the reload lock.
func (x *expiredLoad[V]) unlock(ctx context.Context, lock remote.Lease) {
	g, c := x.g, x.g.c
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.RedisTimeout)
	defer cancel()
	if _, err := c.store.Release(rctx, lock); err != nil {
		c.redisFailed(&g.st, g.name, "fail-safe unlock", x.key, err)
	}
}

// replace writes the loaded v over old (see Group.replaceExpired).
func (x *expiredLoad[V]) replace(ctx context.Context, v V, took time.Duration) error {
	return x.g.replaceExpired(ctx, x.key, x.id, x.old, v, took, x.tok, x.begin)
}

// replaceExpired writes the loaded v of id over the expired value old with
// a compare-and-set on old's write token (an invalidation or another write
// wins), then into L1 unless an invalidation of key came in since tok.
func (g *Group[V]) replaceExpired(ctx context.Context, key, id string, old remote.Record, v V, took time.Duration, tok local.Token, begin int64) error {
	c := g.c
	tags, err := g.tagsOf(id, v)
	if err != nil {
		return err
	}
	payload, err := g.codec.Marshal(v)
	if err != nil {
		return encodeErr(key, err)
	}
	ttl := c.jitter(g.valueTTL(id, v))
	rec := remote.Record{Kind: remote.KindValue, Token: remote.NewToken(), LoadTime: took, Expire: msAfter(c.clock.Now(), ttl), Payload: payload, Begin: begin, Tags: tags}
	if ok, err := c.tagsValid(ctx, key, begin, tags); err != nil || !ok {
		return err // a tag of the new value was invalidated since its load began
	}
	ok, err := c.store.Replace(ctx, key, old, rec, ttl+g.fs.window)
	if err != nil {
		return err
	}
	if !ok {
		g.record(Event{Kind: EventLeaseLost})
		return nil
	}
	c.at(hookFilled)
	it := c.l1Item(v, len(payload), rec.Expire)
	it.Version, it.Refresh, it.Begin, it.Tags = rec.Token, g.refreshAt(rec), begin, tags
	c.fillL1(key, tok, it)
	return nil
}

// await waits for the outcome of another node's reload (its lock's token
// is lockToken): done with the value it filled, or old once it set the
// throttle mark (or LoadSoftTimeout passed). It reports !done when the
// other node let the lock go without either (run then takes the lock once
// more), and loads without the lock when LeaseWait passes. It polls, and
// with wake notices on it marks the lock as waited for, as a lease wait
// does, so that the holder's throttle mark or release (after its fill)
// publishes a notice that ends the pause at once.
func (x *expiredLoad[V]) await(ctx context.Context, lockToken uint64) (out any, err error, done bool) {
	g, c := x.g, x.g.c
	deadline := time.Now().Add(c.opts.LeaseWait)
	var softC <-chan time.Time
	if g.fs.soft > 0 {
		soft := c.softTimer(x.softLeft())
		defer soft.Stop()
		softC = soft.C
	}
	woken, stop := x.listen(ctx, lockToken)
	defer stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	limit := g.loads.pollLimit()
	for d := firstPoll; ; d = min(2*d, limit) {
		pause := d
		if c.pollPause > 0 {
			pause = c.pollPause
		}
		timer.Reset(min(pause, max(time.Until(deadline), 0)))
		select {
		case <-timer.C:
		case _, open := <-woken:
			c.wakeReads.Add(1)
			if !open {
				woken = nil // read once at once, then poll
			}
		case <-softC:
			if x.fresh(ctx) {
				return x.serve(nil, 0), nil, true
			}
			softC = nil
			continue
		case <-ctx.Done():
			return nil, ErrClosed, true
		}
		recs, err := c.store.GetMany(ctx, []string{x.key, x.lockKey()})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ErrClosed, true
			}
			c.redisFailed(&g.st, g.name, "fail-safe wait", x.key, err)
			out, err := x.unlocked(ctx)
			return out, err, true
		}
		rec, lk := recs[0], recs[1]
		switch {
		case rec.Kind != remote.KindValue || rec.Token != x.old.Token:
			// A fill, a write or an invalidation changed the key.
			out, err := x.plain(ctx)
			return out, err, true
		case lk.Kind == remote.KindAbsent && !c.noThrottle:
			out, err := x.throttled(ctx, lk.Expire)
			return out, err, true
		case lk.Kind != remote.KindLease:
			return nil, nil, false
		case !time.Now().Before(deadline):
			out, err := x.unlocked(ctx)
			return out, err, true
		}
	}
}
