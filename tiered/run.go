package tiered

import (
	"context"
	"math/rand/v2"
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
//
// Steps 1-2 are in this file, 3 in wait.go, 4 in runload.go, 5 in
// runfill.go; runlease.go renews and releases the leases, runfail.go
// handles Redis failures and Close.
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
	// waitLoads makes the batch wait for its load whatever LoadSoftTimeout
	// and MaxStale say: no fallback or stale value ends a wait early (set
	// for Warm's batches).
	waitLoads bool
	// batch is set for the runs of FetchMany and Warm, whose loader is the
	// caller's batch loader: it gets its own copy of the ids (it may
	// rewrite them), where a Fetch's adapter only reads its one id.
	batch bool
	bg    bool
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
