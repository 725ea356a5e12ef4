package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// The tiercache variants under test, in report order. Adding one takes a
// constant here, a case in tieredSystem, and there the line that sets its
// option (tweak).
const (
	tieredNoBus    = iota // L1 with DisableBus: what the bus prevents
	tieredFull            // the default configuration
	tieredNoJitter        // DisableJitter: the expiry scenario's contrast
	tieredFailSafe        // FailSafe and LoadSoftTimeout: the outage scenario's contrast
	tieredMaxStale        // MaxStale: bounded staleness after an invalidation
	tieredVariants        // how many there are
)

// Fail-safe settings of the tiercache, fail-safe variant. FailSafe covers
// the outage scenario's failing and slow phases with room to spare;
// LoadSoftTimeout is twice the load latency (4 ms at the default 2 ms), so
// that a load at the normal latency finishes within it and one ten times
// slower does not.
const failSafeWindow = 10 * time.Second

// maxStaleWindow is the window of the tiercache, MaxStale variant: every
// stale read it serves must be younger (the report's stale age column).
const maxStaleWindow = 50 * time.Millisecond

func softTimeout(latency time.Duration) time.Duration { return max(2*latency, time.Millisecond) }

// tieredSetup is what a variant changes in the cache's options.
type tieredSetup struct {
	cache func(o *tiered.Options, ne *nodeEnv)
	group func(o *tiered.GroupOptions, ne *nodeEnv)
}

func tieredSystem(variant int) *system {
	s := &system{
		name:    "tiercache",
		config:  "defaults (L1 Ristretto, bus, leases, 10% TTL jitter); L1MaxBytes = the entry budget in heap bytes (docs/performance.md, L1 memory); JSON values",
		prop:    propMessages,
		monitor: true,
	}
	var v tieredSetup
	switch variant {
	case tieredFull:
	case tieredNoBus:
		s.name = "tiercache, no bus"
		s.config = "DisableBus: L1 with nothing to tell the other nodes"
		s.prop, s.monitor = propNone, false
		v.cache = func(o *tiered.Options, ne *nodeEnv) { o.DisableBus = true }
	case tieredNoJitter:
		s.name = "tiercache, no jitter"
		s.config = "DisableJitter (expiry scenario only)"
		s.only = []string{"expiry"}
		v.cache = func(o *tiered.Options, ne *nodeEnv) { o.DisableJitter = true }
	case tieredFailSafe:
		s.name = "tiercache, fail-safe"
		s.config = fmt.Sprintf("GroupOptions.FailSafe %v, LoadSoftTimeout twice the load latency, FailSafeThrottle its default %v (outage scenario only)",
			failSafeWindow, tiered.DefaultFailSafeThrottle)
		s.only = []string{"outage"}
		v.group = func(o *tiered.GroupOptions, ne *nodeEnv) {
			o.FailSafe, o.LoadSoftTimeout = failSafeWindow, softTimeout(ne.t.latency)
		}
	case tieredMaxStale:
		s.name = "tiercache, MaxStale 50ms"
		s.config = fmt.Sprintf("GroupOptions.MaxStale %v: after a write, readers get the previous value for up to %v while one load runs (zipf and invalidate scenarios only)", maxStaleWindow, maxStaleWindow)
		s.only = []string{"zipf", "invalidate"}
		v.group = func(o *tiered.GroupOptions, ne *nodeEnv) { o.MaxStale = maxStaleWindow }
	default:
		panic(fmt.Sprintf("no tiercache variant %d", variant))
	}
	s.open = func(ne *nodeEnv) (cacheNode, error) { return openTiered(ne, v) }
	return s
}

// tieredNode is one node of tiercache: a Cache with its own go-redis client
// and the group that holds the values.
type tieredNode struct {
	ne  *nodeEnv
	rdb redis.UniversalClient
	c   *tiered.Cache
	g   *tiered.Group[value]
	ld  tiered.LoaderFunc[value]
	// unrecorded is loader calls started less loads the library recorded.
	unrecorded atomic.Int64
}

func openTiered(ne *nodeEnv, v tieredSetup) (cacheNode, error) {
	rdb := ne.env.client(ne.cmds)
	opts := tiered.Options{
		Redis:         rdb,
		Namespace:     ne.prefix,
		L1MaxBytes:    ne.budget.heap,
		L1TTL:         ne.l1TTL,
		TTL:           ne.ttl,
		DisableJitter: !ne.jitter,
		RedisTimeout:  time.Second, // a shared 2-core machine under load stalls for more than the default
	}
	if v.cache != nil {
		v.cache(&opts, ne)
	}
	n := &tieredNode{ne: ne, rdb: rdb}
	// Every variant gets the same Recorder (a few ns per hit): it hands bus
	// deliveries to the checker, and counts recorded loads so that the
	// library's count is read once complete.
	opts.Recorder = tiered.RecorderFunc(func(e tiered.Event) {
		switch e.Kind {
		case tiered.EventInvalidationReceived:
			ne.log.received(ne.t.rel(time.Now()), e.Duration)
		case tiered.EventLoad:
			n.unrecorded.Add(-1)
		}
	})
	c, err := tiered.New(opts)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	gopts := tiered.GroupOptions{TTL: ne.ttl}
	if v.group != nil {
		v.group(&gopts, ne)
	}
	g, err := tiered.NewGroup[value](c, "v", gopts)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = c.WaitBus(ctx)
		cancel()
	}
	if err != nil {
		c.Close()
		rdb.Close()
		return nil, err
	}
	n.c, n.g = c, g
	n.ld = n.loadID // built once: a method value allocated per call would cost every hit
	return n, nil
}

func (n *tieredNode) loadID(ctx context.Context, id string) (value, error) {
	k := parseKeyID(id)
	if k < 0 {
		return value{}, fmt.Errorf("bad id %q", id)
	}
	n.unrecorded.Add(1)
	return n.ne.load(ctx, k)
}

// settle waits until the library has recorded every loader call it made,
// so that its count can be compared with the source's.
func (n *tieredNode) settle(ctx context.Context) error {
	for n.unrecorded.Load() != 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %d: %d loads not recorded: %w", n.ne.idx, n.unrecorded.Load(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

func (n *tieredNode) get(ctx context.Context, k int) (value, error) {
	return n.g.Fetch(ctx, n.ne.t.id(k), n.ld)
}

func (n *tieredNode) invalidate(ctx context.Context, keys []int) error {
	list := make([]string, len(keys))
	for i, k := range keys {
		list[i] = n.ne.t.id(k)
	}
	return n.g.Invalidate(ctx, list...)
}

func (n *tieredNode) invalidateGroup(ctx context.Context, g int) error {
	return n.c.InvalidatePattern(ctx, n.g.Key(groupPattern(g)))
}

// hello sends one invalidation that the bus monitors recognise, so that they
// learn which bus node this is.
func (n *tieredNode) hello(ctx context.Context) error {
	return n.c.Invalidate(ctx, helloKey(n.ne.idx))
}

func (n *tieredNode) waitL1() { n.c.WaitL1() }

func (n *tieredNode) tiers() tierCounts {
	s := n.c.Stats()
	return tierCounts{L1Hits: s.L1Hits, L2Hits: s.L2Hits, LoaderCalls: s.Loads, BusTrouble: s.BusLost + s.BusGaps + s.BusMalformed, FailSafe: s.FailSafe}
}

func (n *tieredNode) close() error {
	n.c.Close()
	return n.rdb.Close()
}

const helloPrefix = "hello:"

func helloKey(node int) string { return helloPrefix + strconv.Itoa(node) }
