package main

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	gocache "github.com/eko/gocache/lib/v4/cache"
	"github.com/eko/gocache/lib/v4/marshaler"
	gostore "github.com/eko/gocache/lib/v4/store"
	redisstore "github.com/eko/gocache/store/redis/v4"
	ristrettostore "github.com/eko/gocache/store/ristretto/v4"
	"github.com/redis/go-redis/v9"
)

// gocacheNode is github.com/eko/gocache/lib/v4 as its README chains stores:
// a Ristretto store in front of a Redis store, with the marshaler
// (msgpack) on top; cache-aside (Get, on a miss load and Set), Delete on
// write. Nothing tells the other nodes.
type gocacheNode struct {
	ne    *nodeEnv
	rdb   redis.UniversalClient
	rc    *ristretto.Cache[string, any]
	chain *gocache.ChainCache[any]
	m     *marshaler.Marshaler
	local *countingStore
	l2    *countingStore
}

func gocacheSystem() *system {
	return &system{
		name: "eko/gocache",
		config: "lib v4.2.4, store/ristretto v4.3.2 + store/redis v4.2.6 in a chain, marshaler (msgpack); " +
			"Ristretto MaxCost = the entry budget at cost 1 per entry, NumCounters 10x",
		prop: propNone,
		open: openGocache,
	}
}

func openGocache(ne *nodeEnv) (cacheNode, error) {
	rc, err := ristretto.NewCache(&ristretto.Config[string, any]{
		NumCounters: int64(10 * ne.budget.entries),
		MaxCost:     int64(ne.budget.entries),
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	rdb := ne.env.client(ne.cmds)
	n := &gocacheNode{ne: ne, rdb: rdb, rc: rc}
	n.local = &countingStore{StoreInterface: ristrettostore.NewRistretto(rc, gostore.WithCost(1))}
	n.l2 = &countingStore{StoreInterface: redisstore.NewRedis(rdb)}
	n.chain = gocache.NewChain[any](gocache.New[any](n.local), gocache.New[any](n.l2))
	n.m = marshaler.New(n.chain)
	return n, nil
}

// countingStore counts a store's hits.
type countingStore struct {
	gostore.StoreInterface
	hits atomic.Uint64
}

func (s *countingStore) Get(ctx context.Context, key any) (any, error) {
	v, err := s.StoreInterface.Get(ctx, key)
	if err == nil {
		s.hits.Add(1)
	}
	return v, err
}

func (s *countingStore) GetWithTTL(ctx context.Context, key any) (any, time.Duration, error) {
	v, ttl, err := s.StoreInterface.GetWithTTL(ctx, key)
	if err == nil {
		s.hits.Add(1)
	}
	return v, ttl, err
}

func (n *gocacheNode) get(ctx context.Context, k int) (value, error) {
	var v value
	_, err := n.m.Get(ctx, n.ne.keys[k], &v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, gostore.NotFound{}) {
		return v, err
	}
	if v, err = n.ne.load(ctx, k); err != nil {
		return v, err
	}
	return v, n.m.Set(ctx, n.ne.keys[k], v, gostore.WithExpiration(n.ne.ttl))
}

func (n *gocacheNode) invalidate(ctx context.Context, keys []int) error {
	var errs []error
	for _, k := range keys {
		errs = append(errs, n.m.Delete(ctx, n.ne.keys[k]))
	}
	return errors.Join(errs...)
}

func (n *gocacheNode) invalidateGroup(ctx context.Context, g int) error {
	return n.invalidate(ctx, groupKeys(g, n.ne.t.keys))
}

func (n *gocacheNode) tiers() tierCounts {
	return tierCounts{L1Hits: n.local.hits.Load(), L2Hits: n.l2.hits.Load()}
}

func (n *gocacheNode) close() error {
	n.chain.Close()
	n.rc.Close()
	return n.rdb.Close()
}
