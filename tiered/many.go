package tiered

import (
	"context"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// BatchLoaderFunc loads the values of many ids in one call. An id missing
// from the returned map does not exist: it is left out of FetchMany's result
// and cached nowhere. Returning an error caches nothing.
type BatchLoaderFunc[V any] func(ctx context.Context, ids []string) (map[string]V, error)

// FetchMany returns the values of ids (duplicates are read once): from L1,
// then from Redis with one pipeline of single-key GETs for the rest (no
// command crosses cluster slots), then from one call of load for what is
// still missing, whose results are kept in both tiers with a lease and a
// compare-and-set per key, exactly like [Group.Fetch]. Ids that load leaves
// out are absent from the result.
//
// FetchMany runs on the caller's goroutine; load receives ctx bounded by
// LoadTimeout, and a cancelled ctx ends the batch (its leases are released).
// When Redis fails, the values come from load and no error is returned for
// it.
func (g *Group[V]) FetchMany(ctx context.Context, ids []string, load BatchLoaderFunc[V]) (map[string]V, error) {
	out := make(map[string]V, len(ids))
	miss, err := g.lookupMany(ids, out)
	if err != nil || len(miss) == 0 {
		return out, err
	}
	if load == nil {
		return nil, errNilLoader
	}
	if err := g.c.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.c.opts.LoadTimeout)
	defer cancel()
	b := batch[V]{g: g, load: load, out: out, tok: g.c.begin()}
	return out, b.run(ctx, miss)
}

// lookupMany serves what it can of ids from L1 into out and returns the
// other ids, each once.
func (g *Group[V]) lookupMany(ids []string, out map[string]V) ([]string, error) {
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
			if e, ok := g.c.l1.LookupPrefix(g.pfx, id); ok {
				g.l1Hit(e.Hash())
				out[id], _ = e.Value.(V)
				continue
			}
			g.record(Event{Kind: EventMiss, Tier: TierL1})
		}
		miss = append(miss, id)
	}
	return miss, nil
}

// batch is one FetchMany past L1.
type batch[V any] struct {
	g    *Group[V]
	load BatchLoaderFunc[V]
	out  map[string]V
	tok  local.Token
}

func (b *batch[V]) run(ctx context.Context, ids []string) error {
	g := b.g
	if g.c.store == nil {
		return b.loadOnly(ctx, ids, false)
	}
	recs, err := g.c.store.GetMany(ctx, g.keys(ids))
	if err != nil {
		g.c.redisFailed(&g.st, g.name, "get many", "", err)
		return b.loadOnly(ctx, ids, true)
	}
	var need []string
	for i, rec := range recs {
		if v, ok := g.fromRecord(ctx, g.Key(ids[i]), rec, b.tok); ok {
			b.out[ids[i]] = v
		} else {
			need = append(need, ids[i])
		}
	}
	if len(need) == 0 {
		return nil
	}
	acq, err := g.c.store.AcquireMany(ctx, g.keys(need), g.c.leaseTTL())
	if err != nil {
		g.c.redisFailed(&g.st, g.name, "acquire many", "", err)
		return b.loadOnly(ctx, need, true)
	}
	return b.loadLeased(ctx, need, acq)
}

// loadOnly loads ids and keeps the values in L1 only: without Redis for the
// group's TTL, while Redis fails (degraded) for DegradedL1TTL.
func (b *batch[V]) loadOnly(ctx context.Context, ids []string, degraded bool) error {
	g := b.g
	vals, err := b.call(ctx, ids)
	if err != nil {
		return err
	}
	for id, v := range vals {
		b.out[id] = v
		var it local.Item[any]
		switch {
		case !degraded:
			it = g.c.l1Item(v, g.size(v), time.Now().Add(g.c.jitter(g.ttl)).UnixMilli())
		case g.c.opts.DisableDegradedL1:
			continue
		default:
			it = local.Item[any]{Value: v, Cost: cost(g.size(v)), Expire: g.c.l1Expiry(0, true)}
		}
		g.c.fillL1(g.Key(id), b.tok, it)
	}
	return nil
}

// loadLeased loads the ids that Redis did not have: those whose lease this
// call took are filled with a compare-and-set; those another node was
// loading, or that were filled meanwhile, are not written.
func (b *batch[V]) loadLeased(ctx context.Context, ids []string, acq []remote.Acquired) error {
	g := b.g
	var toLoad []string
	leases := make(map[string]remote.Lease)
	for i, a := range acq {
		switch {
		case a.Won:
			g.record(Event{Kind: EventLeaseWon})
			leases[ids[i]] = a.Lease
			toLoad = append(toLoad, ids[i])
		default:
			if v, ok := g.fromRecord(ctx, g.Key(ids[i]), a.Found, b.tok); ok {
				b.out[ids[i]] = v
				continue
			}
			g.record(Event{Kind: EventLeaseBusy})
			toLoad = append(toLoad, ids[i])
		}
	}
	if len(toLoad) == 0 {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			b.releaseAll(ctx, leases)
			panic(r)
		}
	}()
	vals, err := b.call(ctx, toLoad)
	if err != nil {
		b.releaseAll(ctx, leases)
		return err
	}
	return b.fill(ctx, vals, leases)
}

// fill writes the loaded values whose lease this call holds, and releases
// the leases of ids the loader did not return.
func (b *batch[V]) fill(ctx context.Context, vals map[string]V, leases map[string]remote.Lease) error {
	g := b.g
	var fills []remote.Fill
	var fillIDs []string
	unused := make(map[string]remote.Lease)
	for id, l := range leases {
		v, ok := vals[id]
		if !ok {
			unused[id] = l
			continue
		}
		payload, err := g.codec.Marshal(v)
		if err != nil {
			unused[id] = l
			g.c.log.Warn("tiered: cannot encode a loaded value; not caching it", "group", g.name, "key", g.Key(id), "err", err)
			continue
		}
		ttl := g.c.jitter(g.ttl)
		rec := remote.Record{Kind: remote.KindValue, Token: remote.NewToken(), Expire: time.Now().Add(ttl).UnixMilli(), Payload: payload}
		fills = append(fills, remote.Fill{Lease: l, Record: rec, TTL: ttl})
		fillIDs = append(fillIDs, id)
	}
	for id, v := range vals {
		b.out[id] = v
	}
	b.releaseAll(ctx, unused)
	if len(fills) == 0 {
		return nil
	}
	ok, err := g.c.store.FillMany(ctx, fills)
	if err != nil {
		g.c.redisFailed(&g.st, g.name, "fill many", "", err)
		return nil
	}
	for i, filled := range ok {
		if !filled {
			g.record(Event{Kind: EventLeaseLost})
			continue
		}
		f := fills[i]
		g.c.fillL1(f.Lease.Key, b.tok, g.c.l1Item(vals[fillIDs[i]], len(f.Record.Payload), f.Record.Expire))
	}
	return nil
}

// call runs the batch loader once and records it. Values for ids that were
// not asked for are dropped.
func (b *batch[V]) call(ctx context.Context, ids []string) (map[string]V, error) {
	start := time.Now()
	vals, err := b.load(ctx, ids)
	b.g.record(Event{Kind: EventLoad, Duration: time.Since(start), Err: err})
	if err != nil {
		return nil, err
	}
	asked := make(map[string]V, len(ids))
	for _, id := range ids {
		if v, ok := vals[id]; ok {
			asked[id] = v
		}
	}
	return asked, nil
}

func (b *batch[V]) releaseAll(ctx context.Context, leases map[string]remote.Lease) {
	if len(leases) == 0 {
		return
	}
	ls := make([]remote.Lease, 0, len(leases))
	for _, l := range leases {
		ls = append(ls, l)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.g.c.opts.RedisTimeout)
	defer cancel()
	if err := b.g.c.store.ReleaseMany(ctx, ls); err != nil {
		b.g.c.redisFailed(&b.g.st, b.g.name, "release many", "", err)
	}
}

func (g *Group[V]) keys(ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = g.prefix + id
	}
	return keys
}
