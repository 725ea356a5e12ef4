package main

import (
	"context"
	"slices"
	"sync/atomic"
	"time"
)

// cacheNode is one node's client of a cache under test: what the workloads
// call. Each peer has an adapter in its own file (peer_*.go). Every method
// is safe for concurrent use.
type cacheNode interface {
	// get returns the value of key k, from the cache or, on a miss, from
	// the source of truth (nodeEnv.load), the way the peer's README reads
	// through.
	get(ctx context.Context, k int) (value, error)
	// invalidate tells the cache that keys changed in the source (they
	// were committed before the call).
	invalidate(ctx context.Context, keys []int) error
	// invalidateGroup tells the cache that every key of group g changed:
	// by pattern where the cache has pattern invalidation, else key by key.
	invalidateGroup(ctx context.Context, g int) error
	// tiers returns how reads were served so far.
	tiers() tierCounts
	// close releases the node.
	close() error
}

// tierCounts says how a node's reads were served: from its own memory (L1),
// from Redis (L2), or neither (loaded, or joined a load in flight).
type tierCounts struct {
	L1Hits uint64 `json:"l1_hits"`
	L2Hits uint64 `json:"l2_hits"`
	// LoaderCalls is the loader calls as the cache itself counts them, if
	// it does (tiercache); 0 otherwise.
	LoaderCalls uint64 `json:"loader_calls,omitempty"`
	// BusTrouble counts subscription losses, gaps and malformed messages
	// the cache reported (tiercache).
	BusTrouble uint64 `json:"bus_trouble,omitempty"`
	// FailSafe counts the reads served an expired value as a fallback
	// (tiercache with GroupOptions.FailSafe).
	FailSafe uint64 `json:"fail_safe,omitempty"`
}

func (t *tierCounts) add(o tierCounts) {
	t.L1Hits += o.L1Hits
	t.L2Hits += o.L2Hits
	t.LoaderCalls += o.LoaderCalls
	t.BusTrouble += o.BusTrouble
	t.FailSafe += o.FailSafe
}

// nodeEnv is what a node adapter is built from.
type nodeEnv struct {
	idx    int // the node's index in the fleet
	t      *truth
	env    *env
	log    *nodeLog
	cmds   *atomic.Uint64 // Redis commands the node sent
	prefix string         // the run's key prefix: every key a node writes starts with it
	keys   []string       // prefix+":"+id of every key, made once so that a hit builds none
	ttl    time.Duration  // the scenario's TTL in Redis
	l1TTL  time.Duration  // how long an entry may live in the node's memory
	jitter bool           // whether TTLs are jittered (tiercache's default)
	budget budget
}

// budget is the memory every peer's in-process tier gets: entries for the
// peers that bound entries, bytes (entries times the encoded value size)
// for those that bound bytes.
type budget struct {
	entries int
	bytes   int64
	// heap is tiercache's L1MaxBytes for the same entries: its L1 is
	// charged what an entry holds in memory (the decoded value, the key,
	// the entry and its index share) plus the fixed structures, not the
	// encoded bytes that bytes counts.
	heap int64
}

// load is the loader every adapter uses.
func (ne *nodeEnv) load(ctx context.Context, k int) (value, error) { return ne.t.load(ctx, k) }

// system is a cache under test.
type system struct {
	name string
	// config says how the peer is configured, for the report.
	config string
	prop   propagation
	// realRedisOnly: the peer needs a real server (RESP3 key tracking).
	realRedisOnly bool
	// monitor: the peer is tiercache with its bus; the harness maps its
	// deliveries through a monitor subscription.
	monitor bool
	// only, if set, names the scenarios the variant runs in (all if nil).
	only []string
	open func(ne *nodeEnv) (cacheNode, error)
}

// systems returns every cache under test, in report order.
func systems() []*system {
	out := []*system{
		redisOnlySystem(),
	}
	for v := range tieredVariants {
		out = append(out, tieredSystem(v))
	}
	return append(out,
		goRedisCacheSystem(),
		jetcacheSystem(),
		gocacheSystem(),
		rueidisSystem(),
		goRedisCSCSystem(),
	)
}

// runsIn reports whether the system runs in the named scenario.
func (s *system) runsIn(scenario string) bool {
	return s.only == nil || slices.Contains(s.only, scenario)
}
