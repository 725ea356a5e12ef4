package tiered

import (
	"context"
	"strings"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// Bounded staleness after invalidation (GroupOptions.MaxStale).
//
// The invalidation: each key of a group with a window is not unlinked but
// marked stale in Redis ([remote.Store.MarkStale]): a value becomes a
// stale envelope in the key's own slot, with PX = the window and the
// window's end (the invalidation call's start + MaxStale) in its header;
// a lease is removed as by UNLINK, so a load that began before the
// invalidation never fills. L1 entries go as in a strict group, on every
// node: no L1 keeps a stale value, so no node needs to learn the window
// from a bus message.
//
// The read: a reader that misses L1 and finds the stale envelope inside
// its window takes the key's lease over it with a compare-and-set on the
// envelope's identity, the lease carrying the envelope as its payload. It
// serves the stale value at once and goes on loading in the background
// (bounded by LoadTimeout), filling through that lease like any load. A
// reader that finds the envelope taken (a lease carrying it) serves it too,
// without loading: exactly one load runs fleet-wide. Past the window, the
// envelope is taken over with a plain lease (a strict miss), and a lease
// carrying it is waited for as any lease.
//
// The bound: a value is served stale only while the reader's clock is
// before the window's end, which the invalidating node computed from its
// clock when the invalidation call began; the two are the same clock on
// one machine, and differ by the clock skew across machines. A second
// invalidation keeps the first one's window (staleSrc), so a value is
// never served past MaxStale after the invalidation that first made it
// stale. A tag invalidation (Clear included) of the stale value ends its
// window: every stale value's tags are checked before it is served.

// staleValue is the outcome of a load's flight that served the previous
// value within the MaxStale window while the load goes on.
type staleValue[V any] struct{ v V }

// hookStaleLoaded is the point (Cache.at) where a load that went on in the
// background after serving a stale value (or a batch's fallbacks at its
// soft timeout) has ended.
const hookStaleLoaded = "stale-loaded"

// addStaleGroup records the window of the group whose keys begin with
// prefix. c.groupsMu must be held.
func (c *Cache) addStaleGroup(prefix string, window time.Duration) {
	if c.staleWindows == nil {
		c.staleWindows = make(map[string]time.Duration)
	}
	c.staleWindows[prefix] = window
	c.anyStale.Store(true)
}

// staleNow is the time (unix ns) that stale windows are counted in: the
// wall clock, read at once (not the cheap clock, which may lag), or a
// test's clock.
func (c *Cache) staleNow() int64 {
	if c.opts.clock != nil {
		return c.clock.Now()
	}
	return time.Now().UnixNano()
}

// markStale invalidates in Redis the keys of inv that belong to a group
// with a MaxStale window (see remote.Store.MarkStale), each window
// counted from inv.at, and returns the others, to be unlinked.
func (c *Cache) markStale(ctx context.Context, inv invalidation) ([]string, error) {
	byWindow, strict := c.splitStale(inv.keys)
	now := c.staleNow() / int64(time.Millisecond)
	for w, keys := range byWindow {
		if err := c.store.MarkStale(ctx, keys, windowEnd(inv, w), now); err != nil {
			return nil, err
		}
	}
	return strict, nil
}

// splitStale sorts keys into those of groups with a MaxStale window, by
// window, and the others (strict).
func (c *Cache) splitStale(keys []string) (byWindow map[time.Duration][]string, strict []string) {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	for _, k := range keys {
		w := c.windowOfLocked(k)
		if w <= 0 {
			strict = append(strict, k)
			continue
		}
		if byWindow == nil {
			byWindow = map[time.Duration][]string{}
		}
		byWindow[w] = append(byWindow[w], k)
	}
	return byWindow, strict
}

// staleEnds is, for each key of inv, the end (unix ms) of the window inv
// opens for it, 0 for a key of a strict group.
func (c *Cache) staleEnds(inv invalidation) []int64 {
	ends := make([]int64, len(inv.keys))
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	for i, k := range inv.keys {
		if w := c.windowOfLocked(k); w > 0 {
			ends[i] = windowEnd(inv, w)
		}
	}
	return ends
}

// windowOfLocked is the MaxStale window of key's group, 0 for a strict
// one. c.groupsMu must be held.
func (c *Cache) windowOfLocked(key string) time.Duration {
	if i := strings.IndexByte(key, ':'); i >= 0 {
		return c.staleWindows[key[:i+1]]
	}
	return 0
}

// windowEnd is the end (unix ms) of the window w that inv opens.
func windowEnd(inv invalidation, w time.Duration) int64 {
	return (inv.at + int64(w)) / int64(time.Millisecond)
}

// stale says what a run did with a key that holds a stale value.
type stale uint8

const (
	staleNone   stale = iota // not a stale value in its window: go on as usual
	staleServed              // served; another node loads it
	staleLeased              // the lease was taken over it (served, if within the window)
	staleRetry               // the key changed meanwhile: read it again
	staleFailed              // Redis failed: load without filling
	staleEnded               // Redis failed and the error (or ErrClosed) was delivered
)

// staleFound handles what the key of id held (rec) for a run of a group
// with a MaxStale window: a lease carrying a stale value within its
// window is served; a stale envelope is taken over with a lease (carrying
// it, and served, within the window; a plain lease past it).
func (r *run[V]) staleFound(id string, rec remote.Record, leases map[string]remote.Lease) stale {
	g, c := r.g, r.g.c
	switch rec.Kind {
	case remote.KindLease:
		if r.waitLoads {
			return staleNone // Warm waits for that load
		}
		v, ok := g.leaseStale(r.ctx, g.Key(id), rec)
		if !ok {
			return staleNone // none, or past its window: wait for the lease as usual
		}
		g.record(Event{Kind: EventLeaseBusy})
		r.serveStale(id, v)
		return staleServed
	case remote.KindStale:
	default:
		return staleNone
	}
	v, ok := g.usableStale(r.ctx, g.Key(id), rec)
	l := remote.Lease{Key: g.Key(id), Token: remote.NewToken()}
	lease := remote.Record{Kind: remote.KindLease, Token: l.Token, Expire: time.Now().Add(c.opts.LeaseTTL).UnixMilli()}
	if ok {
		lease.Payload = rec.Raw
	}
	var won bool
	var err error
	if c.noStaleCAS {
		won, err = true, c.store.Set(r.ctx, l.Key, lease, c.opts.LeaseTTL)
	} else {
		won, err = c.store.Replace(r.ctx, l.Key, rec, lease, c.opts.LeaseTTL)
	}
	switch {
	case err != nil:
		if len(r.failed("take stale lease", []string{id}, err)) == 0 {
			return staleEnded // FailClosed, or Close
		}
		return staleFailed
	case !won:
		return staleRetry
	}
	g.record(Event{Kind: EventLeaseWon})
	leases[id] = l
	if ok && !r.waitLoads { // Warm waits for its load
		r.serveStale(id, v)
	}
	return staleLeased
}

// usableStale decodes the stale value s of key if it may be served: the
// reader's clock is before the end of its window, and none of its tags was
// invalidated since its load began.
func (g *Group[V]) usableStale(ctx context.Context, key string, s remote.Record) (V, bool) {
	var v V
	c := g.c
	if !c.noStaleWindow && c.staleNow() >= s.Expire*int64(time.Millisecond) {
		return v, false
	}
	if ok, err := c.tagsValid(ctx, key, s.Begin, s.Tags); err != nil || !ok {
		return v, false
	}
	if err := g.codec.Unmarshal(s.Payload, &v); err != nil {
		return v, false
	}
	return v, true
}

// leaseStale decodes the stale value that rec, a lease of key, carries
// (taken over the stale envelope), if it carries one that may be served.
func (g *Group[V]) leaseStale(ctx context.Context, key string, rec remote.Record) (V, bool) {
	s, ok := rec.StaleOf()
	if !ok {
		var zero V
		return zero, false
	}
	return g.usableStale(ctx, key, s)
}

// servedStale ends a Fetch's load at its read, when Redis held another
// node's lease carrying a stale value that may be served (usableStale):
// the caller and those who joined it get that value (see startStale for
// the rest), and no run starts, as that node loads.
func (g *Group[V]) servedStale(ctx context.Context, key string, fl *flight, rec remote.Record) (V, bool) {
	v, ok := g.leaseStale(ctx, key, rec)
	if !ok {
		return v, false
	}
	g.record(Event{Kind: EventLeaseBusy})
	g.record(Event{Kind: EventStale})
	if !g.c.flights.endUnwaited(key, fl) {
		g.c.flights.finish(key, fl, staleValue[V]{v}, nil)
	}
	return v, true
}

// serveStale hands v to the callers waiting for id and records it; the
// run then goes on in the background (see endBackground).
func (r *run[V]) serveStale(id string, v V) {
	r.g.record(Event{Kind: EventStale})
	r.goBackground()
	r.onStale(id, v)
}

// goBackground notes, before the run first hands a value to its callers
// ahead of its outcome (a stale value, or a fallback at a batch's soft
// timeout), that it goes on in the background: Close waits for the rest
// of the run, whose flights may all have ended.
func (r *run[V]) goBackground() {
	if !r.bg {
		r.bg = true
		if !r.g.c.noBackgroundWait {
			r.g.c.flights.running.Add(1)
		}
	}
}

// endBackground ends a run that served a stale value or a fallback and
// went on.
func (r *run[V]) endBackground() {
	if r.bg {
		for id := range r.softServed {
			r.g.c.softLoadEnded(r.g.Key(id))
		}
		r.g.c.at(hookStaleLoaded)
		if !r.g.c.noBackgroundWait {
			r.g.c.flights.running.Done()
		}
	}
}

// sortStale is the part of sortInto for a group with a MaxStale window:
// it reports whether it dealt with id (found holding acq), adding it to
// gone or unfilled when it must.
func (r *run[V]) sortStale(id string, found remote.Record, leases map[string]remote.Lease, gone, unfilled *[]string) bool {
	switch r.staleFound(id, found, leases) {
	case staleServed, staleLeased, staleEnded:
		return true
	case staleRetry:
		*gone = append(*gone, id)
		return true
	case staleFailed:
		*unfilled = append(*unfilled, id)
		return true
	}
	return false
}

// startStale is the rest of a Fetch's load for a group with a MaxStale
// window (see leadL2Read): the run may end the caller's wait early with a
// stale value, and then goes on.
func (g *Group[V]) startStale(ctx context.Context, key string, fl *flight, load LoaderFunc[V], tok local.Token, readErr error, read bool, acq remote.Acquired) {
	c := g.c
	id := key[len(g.prefix):]
	c.flights.startMany([]string{key}, []*flight{fl}, func(finish func(int, any, error)) {
		rctx, cancel := c.runContext(ctx)
		defer cancel()
		var out any
		var oerr error
		r := g.newRun(rctx, tok, single(load), func(_ string, v V, err error) { out, oerr = v, err })
		r.onStale = func(_ string, v V) { finish(0, staleValue[V]{v}, nil) }
		defer r.endBackground()
		switch {
		case readErr != nil:
			r.redisFailed("get", []string{id}, readErr)
			if oerr != nil {
				out, oerr = g.l1Fallback(key, tok, out, oerr)
			}
		case read:
			r.proceed([]string{id}, []remote.Acquired{acq}, true, false)
		default:
			r.exec([]string{id}, false)
		}
		finish(0, out, oerr)
	})
}
