package main

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// redisOnly is the cache-aside most services start with: GET; on a miss,
// load and SET with the TTL; DEL after a write. No in-process tier, no
// miss collapsing.
type redisOnly struct {
	ne     *nodeEnv
	rdb    redis.UniversalClient
	l2Hits atomic.Uint64
}

func redisOnlySystem() *system {
	return &system{
		name:   "redis only",
		config: "go-redis v9 cache-aside: GET, on a miss load and SET EX, DEL on write; JSON values; no L1",
		prop:   propNone,
		open: func(ne *nodeEnv) (cacheNode, error) {
			return &redisOnly{ne: ne, rdb: ne.env.client(ne.cmds)}, nil
		},
	}
}

func (n *redisOnly) key(k int) string { return n.ne.keys[k] }

func (n *redisOnly) get(ctx context.Context, k int) (value, error) {
	var v value
	data, err := n.rdb.Get(ctx, n.key(k)).Bytes()
	if err == nil {
		n.l2Hits.Add(1)
		return v, json.Unmarshal(data, &v)
	}
	if !errors.Is(err, redis.Nil) {
		return v, err
	}
	if v, err = n.ne.load(ctx, k); err != nil {
		return v, err
	}
	data, err = json.Marshal(v)
	if err != nil {
		return v, err
	}
	return v, n.rdb.Set(ctx, n.key(k), data, n.ne.ttl).Err()
}

func (n *redisOnly) invalidate(ctx context.Context, keys []int) error {
	// One DEL per key: on a cluster a multi-key DEL fails across slots.
	var errs []error
	for _, k := range keys {
		errs = append(errs, n.rdb.Del(ctx, n.key(k)).Err())
	}
	return errors.Join(errs...)
}

func (n *redisOnly) invalidateGroup(ctx context.Context, g int) error {
	return n.invalidate(ctx, groupKeys(g, n.ne.t.keys))
}

func (n *redisOnly) tiers() tierCounts { return tierCounts{L2Hits: n.l2Hits.Load()} }

func (n *redisOnly) close() error { return n.rdb.Close() }

// groupKeys returns the keys of group g (below keys).
func groupKeys(g, keys int) []int {
	var out []int
	for k := g * groupSize; k < (g+1)*groupSize && k < keys; k++ {
		out = append(out, k)
	}
	return out
}
