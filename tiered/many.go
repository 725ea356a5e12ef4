package tiered

import (
	"context"
	"errors"
	"maps"
)

// BatchLoaderFunc loads the values of many ids in one call. An id missing
// from the returned map does not exist: it is left out of FetchMany's
// result (and, with the group's NegativeTTL, cached as absent). An error
// wrapping [ErrNotFound] is the same answer as an empty map: none of the
// ids exists (it is no load error, and no fail-safe fallback is served for
// it). Any other error caches nothing.
type BatchLoaderFunc[V any] func(ctx context.Context, ids []string) (map[string]V, error)

// FetchMany returns the values of ids (duplicates are read once): from L1,
// then, for the rest, exactly as [Group.Fetch] does for one id but in
// batches: an id that a Fetch or FetchMany of this process is already
// loading joins that load; the others are read from Redis, and the leases
// of the missing ones taken, with one pipeline of single-key SET NX GETs
// (no command crosses cluster slots), and what is still missing is loaded
// with one call of load and kept in both tiers with a compare-and-set per
// key. Ids that do not exist are absent from the result.
//
// The load runs on its own goroutine; FetchMany returns ctx.Err() as soon
// as ctx is done while the load goes on for the callers that share it. An
// error of load (or of a joined Fetch's loader) is returned with the values
// that were found; a loader panic reaches the caller as a panic with a
// *[PanicError]. When Redis fails, the values come from load and no error
// is returned for it (see [Options.FailClosed]). With the group's
// FailSafe, an id whose expired value Redis kept gets that value instead
// of the load's error, as with Fetch (see GroupOptions.FailSafe); with
// LoadSoftTimeout too, such ids get their values once the batch's load
// has taken that long, the others wait for the load, and the load goes on
// in the background (see GroupOptions.LoadSoftTimeout).
func (g *Group[V]) FetchMany(ctx context.Context, ids []string, load BatchLoaderFunc[V]) (map[string]V, error) {
	return g.fetchMany(ctx, ids, load, false)
}

// fetchMany is FetchMany; with waitLoads, the batch this call leads waits for
// its load whatever LoadSoftTimeout and MaxStale say, serves no fail-safe
// fallback, and an id that joined another call's load that ended early
// (a fallback or a stale value, while that load goes on) is fetched again
// once (Warm: it exists to load, and reads what its loader wrote once this
// returns).
func (g *Group[V]) fetchMany(ctx context.Context, ids []string, load BatchLoaderFunc[V], waitLoads bool) (map[string]V, error) {
	return g.fetchManyTries(ctx, ids, load, waitLoads, 2)
}

// errJoinedEarly is the error of a Warm's id that joined, twice, another
// call's load that ended before it loaded (at its soft timeout, or with a
// stale value): nothing was loaded for it.
var errJoinedEarly = errors.New("tiered: the load this id joined ended before loading it (a fallback or a stale value was served); not warmed")

// fetchManyTries is fetchMany with tries: how many times, with waitLoads,
// an id that joined a load that ended early is fetched.
func (g *Group[V]) fetchManyTries(ctx context.Context, ids []string, load BatchLoaderFunc[V], waitLoads bool, tries int) (map[string]V, error) {
	out := make(map[string]V, len(ids))
	miss, err := g.lookupMany(ids, out, waitLoads)
	if err != nil || len(miss) == 0 {
		return out, err
	}
	if load == nil {
		return nil, errNilLoader
	}
	fls := make([]*flight, len(miss))
	var led []int
	for i, id := range miss {
		fl, joined, err := g.c.flights.join(g.Key(id))
		if err != nil {
			g.finishAll(miss, fls, led, err)
			return nil, err
		}
		fls[i] = fl
		if joined {
			g.record(Event{Kind: EventCollapsed})
		} else {
			led = append(led, i)
		}
	}
	if len(led) > 0 {
		g.startBatch(ctx, miss, fls, led, load, waitLoads)
	}
	var first error
	var early []string // with waitLoads: joined loads that ended before loading
	for i, fl := range fls {
		v, err := g.c.flights.wait(ctx, fl)
		switch {
		case err == nil && waitLoads && endedEarly[V](v):
			early = append(early, miss[i])
		case err == nil:
			out[miss[i]] = flightValue[V](v)
		case errors.Is(err, ErrNotFound):
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case first == nil:
			first = err
		}
	}
	if len(early) > 0 {
		if tries <= 1 {
			if first == nil {
				first = errJoinedEarly
			}
			return out, first
		}
		more, err := g.fetchManyTries(ctx, early, load, waitLoads, tries-1)
		maps.Copy(out, more)
		if first == nil {
			first = err
		}
	}
	return out, first
}

// endedEarly reports whether v, the outcome of a flight, is a value served
// before its load ended: a fail-safe fallback or a MaxStale stale value.
func endedEarly[V any](v any) bool {
	switch v.(type) {
	case fallback[V], staleValue[V]:
		return true
	}
	return false
}

// startBatch loads the ids of miss at the indexes led, whose flights this
// call leads, on a new goroutine; waitLoads as for fetchMany.
func (g *Group[V]) startBatch(ctx context.Context, miss []string, fls []*flight, led []int, load BatchLoaderFunc[V], waitLoads bool) {
	keys := make([]string, len(led))
	lfl := make([]*flight, len(led))
	ids := make([]string, len(led))
	at := make(map[string]int, len(led))
	for j, i := range led {
		keys[j], lfl[j], ids[j] = g.Key(miss[i]), fls[i], miss[i]
		at[miss[i]] = j
	}
	g.c.flights.startMany(keys, lfl, func(finish func(j int, v any, err error)) {
		rctx, cancel := g.c.runContext(ctx)
		defer cancel()
		r := g.newRun(rctx, g.c.begin(), load, func(id string, v V, err error) {
			if err != nil {
				finish(at[id], nil, err)
			} else {
				finish(at[id], v, nil)
			}
		})
		if g.fs.window > 0 && !waitLoads { // Warm serves no fallback: it loads, or reports the failure
			r.onFallback = func(id string, v V) { finish(at[id], fallback[V]{v}, nil) }
		}
		r.waitLoads, r.batch = waitLoads, true
		if g.maxStale > 0 {
			r.onStale = func(id string, v V) { finish(at[id], staleValue[V]{v}, nil) }
		}
		if g.maxStale > 0 || g.fs.soft > 0 {
			defer r.endBackground()
		}
		r.exec(ids, true)
	})
}

// finishAll ends the flights this call registered before it failed.
func (g *Group[V]) finishAll(miss []string, fls []*flight, led []int, err error) {
	for _, i := range led {
		g.c.flights.finish(g.Key(miss[i]), fls[i], nil, err)
	}
}

// lookupMany serves what it can of ids from L1 into out and returns the
// other ids, each once. An id cached as absent is left out of both. With
// noFallbacks (Warm), an L1 copy kept as a fail-safe fallback is no hit:
// the id is returned, to be loaded.
func (g *Group[V]) lookupMany(ids []string, out map[string]V, noFallbacks bool) ([]string, error) {
	var miss []string
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if id == "" {
			return nil, errEmptyID
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		if g.c.l1 != nil {
			if e, ok := g.c.l1.LookupPrefix(g.pfx, id); ok && !(noFallbacks && e.Fallback != 0) {
				g.l1Hit()
				if !e.Absent {
					out[id], _ = e.Value.(V)
				}
				continue
			}
			g.record(Event{Kind: EventMiss, Tier: TierL1})
		}
		miss = append(miss, id)
	}
	return miss, nil
}

func (g *Group[V]) keys(ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = g.prefix + id
	}
	return keys
}
