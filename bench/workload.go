package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// value is what the simulated database holds per key.
type value struct {
	Key     string `json:"key"`
	Version int64  `json:"version"`
	Body    []byte `json:"body"`
}

// db is the source of truth: versioned values, a load latency, a load count.
type db struct {
	latency time.Duration
	loads   atomic.Int64
	mu      sync.Mutex // protects versions
	version map[string]int64
}

func (d *db) load(ctx context.Context, key string) (value, error) {
	d.loads.Add(1)
	t := time.NewTimer(d.latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return value{}, ctx.Err()
	}
	d.mu.Lock()
	v := d.version[key]
	d.mu.Unlock()
	return value{Key: key, Version: v, Body: make([]byte, 64)}, nil
}

func (d *db) bump(key string) {
	d.mu.Lock()
	d.version[key]++
	d.mu.Unlock()
}

// node is one process's view of a cache under test.
type node interface {
	get(ctx context.Context, key string) (value, error)
	invalidate(ctx context.Context, key string) error
	close()
}

// system is a cache under test: a name and a way to start one node.
type system struct {
	name    string
	newNode func(e *env, d *db) (node, error)
}

func systems() []system {
	return []system{
		{"redis only (cache-aside)", newRedisOnly},
		{"tiercache", func(e *env, d *db) (node, error) { return newTiered(e, d, false) }},
	}
}

type tieredNode struct {
	rdb *redis.Client
	c   *tiered.Cache
	g   *tiered.Group[value]
	d   *db
}

func newTiered(e *env, d *db, noL1 bool) (node, error) {
	rdb := e.client()
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "bench", DisableL1: noL1})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	g, err := tiered.NewGroup[value](c, "v", tiered.GroupOptions{TTL: time.Minute})
	if err == nil {
		err = c.WaitBus(context.Background())
	}
	if err != nil {
		c.Close()
		rdb.Close()
		return nil, err
	}
	return &tieredNode{rdb: rdb, c: c, g: g, d: d}, nil
}

func (n *tieredNode) get(ctx context.Context, key string) (value, error) {
	return n.g.Fetch(ctx, key, n.d.load)
}

func (n *tieredNode) invalidate(ctx context.Context, key string) error { return n.g.Delete(ctx, key) }

func (n *tieredNode) close() { n.c.Close(); n.rdb.Close() }

// redisOnly is the plain cache-aside most services start with: GET, on a
// miss load and SET with a TTL, DEL on a write.
type redisOnly struct {
	rdb *redis.Client
	d   *db
}

func newRedisOnly(e *env, d *db) (node, error) { return &redisOnly{rdb: e.client(), d: d}, nil }

func (n *redisOnly) get(ctx context.Context, key string) (value, error) {
	var v value
	data, err := n.rdb.Get(ctx, "bench-ro:"+key).Bytes()
	if err == nil {
		return v, json.Unmarshal(data, &v)
	}
	if !errors.Is(err, redis.Nil) {
		return v, err
	}
	if v, err = n.d.load(ctx, key); err != nil {
		return v, err
	}
	data, _ = json.Marshal(v)
	return v, n.rdb.Set(ctx, "bench-ro:"+key, data, time.Minute).Err()
}

func (n *redisOnly) invalidate(ctx context.Context, key string) error {
	return n.rdb.Del(ctx, "bench-ro:"+key).Err()
}

func (n *redisOnly) close() { n.rdb.Close() }

// result is what one system did in one run.
type result struct {
	name    string
	ops     int64
	errs    int64
	loads   int64
	elapsed time.Duration
	lat     hist
	stats   *tiered.Stats
}

// runZipf runs cfg.nodes nodes of sut with cfg.workers goroutines each over
// Zipf-distributed keys for cfg.duration.
func runZipf(ctx context.Context, e *env, sut system, cfg config) (result, error) {
	d := &db{latency: cfg.latency, version: make(map[string]int64)}
	nodes := make([]node, cfg.nodes)
	for i := range nodes {
		n, err := sut.newNode(e, d)
		if err != nil {
			return result{}, err
		}
		defer n.close()
		nodes[i] = n
	}
	keys := make([]string, cfg.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	res := result{name: sut.name}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for ni, n := range nodes {
		for w := 0; w < cfg.workers; w++ {
			wg.Add(1)
			go func(seed int64) {
				defer wg.Done()
				h, ops, errs := work(ctx, n, d, keys, cfg, seed)
				mu.Lock()
				res.lat.merge(h)
				res.ops += ops
				res.errs += errs
				mu.Unlock()
			}(int64(ni*1000 + w))
		}
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.loads = d.loads.Load()
	if _, ok := nodes[0].(*tieredNode); ok {
		var s tiered.Stats
		for _, n := range nodes {
			st := n.(*tieredNode).c.Stats()
			s.L1Hits += st.L1Hits
			s.L1Misses += st.L1Misses
			s.L2Hits += st.L2Hits
			s.L2Misses += st.L2Misses
		}
		res.stats = &s
	}
	return res, nil
}

func work(ctx context.Context, n node, d *db, keys []string, cfg config, seed int64) (*hist, int64, int64) {
	r := rand.New(rand.NewSource(seed))
	z := rand.NewZipf(r, cfg.skew, 1, uint64(len(keys)-1))
	h := &hist{}
	var ops, errs int64
	for ctx.Err() == nil {
		key := keys[z.Uint64()]
		t0 := time.Now()
		var err error
		if r.Float64() < cfg.writes {
			d.bump(key)
			err = n.invalidate(ctx, key)
		} else {
			_, err = n.get(ctx, key)
		}
		if err != nil {
			if ctx.Err() == nil {
				errs++
			}
			continue
		}
		h.record(time.Since(t0))
		ops++
	}
	return h, ops, errs
}
