package tiered

import (
	"context"
	"time"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// refreshLockPrefix starts the key of an early refresh's lock, within the
// namespace. An encoded group name never contains "%!" (EncodeName writes
// "%" only as "%25" or "%3A"), so no group key has this prefix.
const refreshLockPrefix = "%!refresh:"

// startRefresh reloads key in the background, once per key in this process
// at a time, when a read found its value (write token version) past the
// early-refresh deadline. The reader does not wait for it.
func (g *Group[V]) startRefresh(ctx context.Context, key string, version uint64, load LoaderFunc[V]) {
	c := g.c
	fl, joined, err := c.refreshes.join(key)
	if err != nil || joined {
		return
	}
	c.refreshes.start(key, fl, func() (any, error) {
		rctx, cancel := c.runContext(ctx)
		defer cancel()
		g.refresh(rctx, key, version, load)
		return nil, nil
	})
}

// refresh is one early refresh of key across the fleet:
//
//  1. take the key's refresh lock in Redis (a lease on a separate key); if
//     another node holds it, that node refreshes;
//  2. read the key: if it no longer holds the value the reader saw (another
//     node refreshed it, or it was invalidated), keep what Redis has;
//  3. load, then replace the value with a compare-and-set on its write
//     token, so that an invalidation or a write in between wins; put the new
//     value in L1 only if no invalidation of the key happened since step 2.
//
// A failed refresh changes nothing: the old value is served until it
// expires.
func (g *Group[V]) refresh(ctx context.Context, key string, version uint64, load LoaderFunc[V]) {
	c := g.c
	lock, won, _, err := c.store.Acquire(ctx, refreshLockPrefix+key, c.opts.LeaseTTL)
	if err != nil {
		c.redisFailed(&g.st, g.name, "refresh lock", key, err)
		return
	}
	if !won {
		return
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.RedisTimeout)
		defer cancel()
		if _, err := c.store.Release(rctx, lock); err != nil {
			c.redisFailed(&g.st, g.name, "refresh unlock", key, err)
		}
	}()
	tok := c.begin()
	old, err := c.store.Get(ctx, key)
	if err != nil {
		c.redisFailed(&g.st, g.name, "refresh read", key, err)
		return
	}
	if old.Kind != remote.KindValue || old.Token != version {
		g.fromRecord(ctx, key, old, tok, nil) // someone else refreshed: keep theirs here too
		return
	}
	begin := c.loadBegin(ctx, key)
	lctx, cancel := context.WithTimeout(ctx, c.opts.LoadTimeout)
	defer cancel()
	start := c.stopwatch()
	v, err := load(lctx, key[len(g.prefix):])
	took := start()
	g.record(Event{Kind: EventLoad, Duration: took, Err: err})
	if err == nil {
		err = g.replace(ctx, key, old, v, took, tok, begin)
	}
	g.record(Event{Kind: EventRefresh, Duration: took, Err: err})
	if err != nil {
		c.log.Warn("tiered: early refresh failed; serving the old value until it expires", "group", g.name, "key", key, "err", err)
	}
}

// replace writes v over old with a compare-and-set, then into L1 unless an
// invalidation happened since tok. Losing the compare-and-set is not an
// error: an invalidation or another write won.
func (g *Group[V]) replace(ctx context.Context, key string, old remote.Record, v V, took time.Duration, tok local.Token, begin int64) error {
	c := g.c
	tags, err := g.tagsOf(key[len(g.prefix):], v)
	if err != nil {
		return err
	}
	payload, err := g.codec.Marshal(v)
	if err != nil {
		return encodeErr(key, err)
	}
	ttl := c.jitter(g.valueTTL(key[len(g.prefix):], v))
	rec := remote.Record{Kind: remote.KindValue, Token: remote.NewToken(), LoadTime: took, Expire: msAfter(c.clock.Now(), ttl), Payload: payload, Begin: begin, Tags: tags}
	if ok, err := c.tagsValid(ctx, key, begin, tags); err != nil || !ok {
		return err // a tag of the new value was invalidated since its load began
	}
	ok, err := c.store.Replace(ctx, key, old, rec, ttl+g.fs.window)
	if err != nil || !ok {
		return err
	}
	it := c.l1Item(v, len(payload), rec.Expire)
	it.Version, it.Refresh, it.Begin, it.Tags = rec.Token, g.refreshAt(rec), begin, tags
	c.fillL1(key, tok, it)
	return nil
}
