package main

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// rueidisNode is github.com/redis/rueidis with its client-side caching: GET
// through DoCache (served from the connection's local cache until Redis
// pushes an invalidation), on a miss load and SET EX, DEL on write. It
// needs RESP3 key tracking, which miniredis lacks.
type rueidisNode struct {
	ne             *nodeEnv
	c              rueidis.Client
	l1Hits, l2Hits atomic.Uint64
}

func rueidisSystem() *system {
	return &system{
		name: "rueidis CSC",
		config: "v1.0.79 client-side caching (DoCache, RESP3 tracking); CacheSizeEachConn = the byte budget; " +
			"cache-aside fill (SET EX), DEL on write; JSON values",
		prop:          propMessages,
		realRedisOnly: true,
		open:          openRueidis,
	}
}

func openRueidis(ne *nodeEnv) (cacheNode, error) {
	n := &rueidisNode{ne: ne}
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       ne.env.addrs,
		CacheSizeEachConn: int(ne.budget.bytes),
		OnInvalidations:   n.invalidated,
	})
	if err != nil {
		return nil, err
	}
	n.c = c
	return n, nil
}

// invalidated runs on the connection's reader for every invalidation push.
func (n *rueidisNode) invalidated(msgs []rueidis.RedisMessage) {
	at := n.ne.t.rel(time.Now())
	for _, m := range msgs {
		key, err := m.ToString()
		if err != nil {
			continue
		}
		if k := parseKeyID(key); k >= 0 && k < n.ne.t.keys {
			n.ne.log.applied(k, n.ne.t.issuedBy(k, at), n.ne.t.startedBy(k, at), at)
		}
	}
}

func (n *rueidisNode) get(ctx context.Context, k int) (value, error) {
	var v value
	key := n.ne.keys[k]
	resp := n.c.DoCache(ctx, n.c.B().Get().Key(key).Cache(), n.ne.l1TTL)
	if !resp.IsCacheHit() {
		n.ne.cmds.Add(1)
	}
	data, err := resp.AsBytes()
	if err == nil {
		// A miss is cached too (as nil): only a value found counts as a hit.
		if resp.IsCacheHit() {
			n.l1Hits.Add(1)
		} else {
			n.l2Hits.Add(1)
		}
		return v, json.Unmarshal(data, &v)
	}
	if !rueidis.IsRedisNil(err) {
		return v, err
	}
	if v, err = n.ne.load(ctx, k); err != nil {
		return v, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v, err
	}
	n.ne.cmds.Add(1)
	return v, n.c.Do(ctx, n.c.B().Set().Key(key).Value(rueidis.BinaryString(b)).Px(n.ne.ttl).Build()).Error()
}

func (n *rueidisNode) invalidate(ctx context.Context, keys []int) error {
	var errs []error
	for _, k := range keys {
		n.ne.cmds.Add(1)
		errs = append(errs, n.c.Do(ctx, n.c.B().Del().Key(n.ne.keys[k]).Build()).Error())
	}
	return errors.Join(errs...)
}

func (n *rueidisNode) invalidateGroup(ctx context.Context, g int) error {
	return n.invalidate(ctx, groupKeys(g, n.ne.t.keys))
}

func (n *rueidisNode) tiers() tierCounts {
	return tierCounts{L1Hits: n.l1Hits.Load(), L2Hits: n.l2Hits.Load()}
}

func (n *rueidisNode) close() error {
	n.c.Close()
	return nil
}
