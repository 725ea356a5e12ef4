package main

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// goRedisCSC is go-redis v9's own client-side caching
// (Options.ClientSideCacheConfig, new in 9.2x): GET served from the
// client's local cache until Redis pushes an invalidation; on a miss load
// and SET, DEL on write. It needs RESP3 key tracking, which miniredis lacks.
type goRedisCSC struct {
	ne    *nodeEnv
	rdb   *redis.Client
	local *trackedCache
	found atomic.Uint64 // GETs that found a value, in the local cache or in Redis
}

func goRedisCSCSystem() *system {
	return &system{
		name: "go-redis CSC",
		config: "v9.23.0 built-in client-side caching (RESP3), a LocalCache of MaxEntries = the entry budget, " +
			"wrapped to count hits and see invalidations; cache-aside fill, DEL on write; JSON values",
		prop:          propMessages,
		realRedisOnly: true,
		open:          openGoRedisCSC,
	}
}

func openGoRedisCSC(ne *nodeEnv) (cacheNode, error) {
	if ne.env.cluster {
		return nil, errors.New("the harness runs go-redis client-side caching on a single server only")
	}
	n := &goRedisCSC{ne: ne}
	n.local = &trackedCache{LocalCache: redis.NewLocalCache(redis.CacheConfig{MaxEntries: ne.budget.entries}), n: n}
	n.rdb = redis.NewClient(&redis.Options{
		Addr:                  ne.env.addrs[0],
		Protocol:              3,
		ContextTimeoutEnabled: true,
		ClientSideCache:       n.local,
	})
	n.rdb.AddHook(countHook{ne.cmds})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.rdb.Ping(ctx).Err(); err != nil {
		n.rdb.Close()
		return nil, err
	}
	return n, nil
}

// trackedCache is go-redis's LocalCache, counting hits and logging the
// invalidations Redis pushes.
type trackedCache struct {
	*redis.LocalCache
	n    *goRedisCSC
	hits atomic.Uint64
}

func (c *trackedCache) Get(ctx context.Context, cacheKey string) ([]byte, bool) {
	b, ok := c.LocalCache.Get(ctx, cacheKey)
	if ok {
		c.hits.Add(1)
		// go-redis runs its process hooks for a command served from the
		// local cache too: take back what the hook counted, nothing was sent.
		c.n.ne.cmds.Add(^uint64(0))
	}
	return b, ok
}

func (c *trackedCache) DeleteByRedisKey(redisKey string) int {
	n := c.LocalCache.DeleteByRedisKey(redisKey)
	t := c.n.ne.t
	if k := parseKeyID(redisKey); k >= 0 && k < t.keys {
		at := t.rel(time.Now())
		c.n.ne.log.applied(k, t.issuedBy(k, at), t.startedBy(k, at), at)
	}
	return n
}

func (n *goRedisCSC) get(ctx context.Context, k int) (value, error) {
	var v value
	data, err := n.rdb.Get(ctx, n.ne.keys[k]).Bytes()
	if err == nil {
		n.found.Add(1)
		return v, json.Unmarshal(data, &v)
	}
	if !errors.Is(err, redis.Nil) {
		return v, err
	}
	if v, err = n.ne.load(ctx, k); err != nil {
		return v, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v, err
	}
	return v, n.rdb.Set(ctx, n.ne.keys[k], b, n.ne.ttl).Err()
}

func (n *goRedisCSC) invalidate(ctx context.Context, keys []int) error {
	var errs []error
	for _, k := range keys {
		errs = append(errs, n.rdb.Del(ctx, n.ne.keys[k]).Err())
	}
	return errors.Join(errs...)
}

func (n *goRedisCSC) invalidateGroup(ctx context.Context, g int) error {
	return n.invalidate(ctx, groupKeys(g, n.ne.t.keys))
}

func (n *goRedisCSC) tiers() tierCounts {
	// The local cache keeps misses too (nil replies); counting its hits as
	// values found assumes the misses it served were few, which holds but
	// in the stampede (where the found values bound it).
	found := n.found.Load()
	l1 := min(n.local.hits.Load(), found)
	return tierCounts{L1Hits: l1, L2Hits: found - l1}
}

func (n *goRedisCSC) close() error { return n.rdb.Close() }
