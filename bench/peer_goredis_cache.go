package main

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"
)

// goRedisCache is github.com/go-redis/cache/v9 as its README sets it up: a
// TinyLFU local cache in front of Redis, read through with Once (which
// collapses concurrent misses in the process), MessagePack values.
type goRedisCache struct {
	ne    *nodeEnv
	rdb   redis.UniversalClient
	c     *cache.Cache
	local *countingLocal
}

func goRedisCacheSystem() *system {
	return &system{
		name:   "go-redis/cache",
		config: "v9.0.0: TinyLFU local cache sized to the entry budget, Once read-through, msgpack; Delete on write; no cross-node invalidation",
		prop:   propNone,
		open: func(ne *nodeEnv) (cacheNode, error) {
			rdb := ne.env.client(ne.cmds)
			local := &countingLocal{LocalCache: cache.NewTinyLFU(ne.budget.entries, ne.l1TTL)}
			c := cache.New(&cache.Options{Redis: rdb, LocalCache: local, StatsEnabled: true})
			return &goRedisCache{ne: ne, rdb: rdb, c: c, local: local}, nil
		},
	}
}

// countingLocal counts the local cache's hits; go-redis/cache counts only
// Redis hits.
type countingLocal struct {
	cache.LocalCache
	hits atomic.Uint64
}

func (l *countingLocal) Get(key string) ([]byte, bool) {
	b, ok := l.LocalCache.Get(key)
	if ok {
		l.hits.Add(1)
	}
	return b, ok
}

func (n *goRedisCache) get(ctx context.Context, k int) (value, error) {
	var v value
	err := n.c.Once(&cache.Item{
		Ctx:   ctx,
		Key:   n.ne.keys[k],
		Value: &v,
		TTL:   n.ne.ttl,
		Do: func(it *cache.Item) (any, error) {
			return n.ne.load(it.Context(), k)
		},
	})
	return v, err
}

func (n *goRedisCache) invalidate(ctx context.Context, keys []int) error {
	var errs []error
	for _, k := range keys {
		errs = append(errs, n.c.Delete(ctx, n.ne.keys[k]))
	}
	return errors.Join(errs...)
}

func (n *goRedisCache) invalidateGroup(ctx context.Context, g int) error {
	return n.invalidate(ctx, groupKeys(g, n.ne.t.keys))
}

func (n *goRedisCache) tiers() tierCounts {
	s := n.c.Stats()
	return tierCounts{L1Hits: n.local.hits.Load(), L2Hits: s.Hits}
}

func (n *goRedisCache) close() error { return n.rdb.Close() }
