package tiered

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// ErrClosed is returned by every call on a closed [Cache] or its groups.
var ErrClosed = errors.New("tiered: cache closed")

// ErrNotFound says that an id does not exist. A loader returns it (or an
// error wrapping it) to say so; [Group.Fetch] and [Group.Get] return it for
// an id cached as not existing (see GroupOptions.NegativeTTL).
var ErrNotFound = errors.New("tiered: not found")

// ErrNotCached is returned by [Group.Get] when the id is in no tier.
var ErrNotCached = errors.New("tiered: not cached")

// Cache is a two-tier cache: an in-process L1 in front of a shared Redis L2.
// Values are read and written through typed groups ([NewGroup]). A Cache is
// safe for concurrent use; Close releases it.
type Cache struct {
	opts       Options
	l1         *local.Cache[any] // nil with DisableL1
	clock      local.Clock
	tick       int64         // the clock's resolution in ns: subtracted from L1 expiries
	store      *remote.Store // nil without Redis
	wakes      wakeTable     // the lease waits that wake notices signal
	bus        *bus.Bus      // nil without Redis or with DisableBus
	retries    *retryQueue
	monoStart  time.Time    // New's time, with its monotonic reading: what monoNow counts from
	longestTTL atomic.Int64 // the longest TTL of any group, in ns: how long a failed invalidation is retried
	log        *slog.Logger
	rec        Recorder
	flights    flights
	refreshes  flights   // early refreshes in progress, one per key
	tags       *tagTable // this node's mirror of the tag stamps
	// nsStampKey and groupStamps (encoded group name -> *groupTags) are
	// the stamp keys (and the group's tag id) of the implicit tags, made
	// once.
	nsStampKey  string
	groupStamps sync.Map

	redisFails  atomic.Int64 // failed Redis calls not yet logged
	redisLogged atomic.Int64 // when the last one was logged (unix ns)
	random      func() float64
	stats       counters // events that belong to no group

	groupsMu sync.Mutex // protects groups and staleWindows
	groups   map[string]groupStats
	// staleWindows maps the key prefix (encoded name and ":") of each group
	// with a MaxStale window to it; anyStale says whether there is one, so
	// that a cache without such groups invalidates as it always did.
	staleWindows map[string]time.Duration
	anyStale     atomic.Bool
	// noStaleWindow serves stale values past their MaxStale window, so that
	// a test can show it catches that; nothing else may set it.
	noStaleWindow bool
	// noStaleCAS takes the lease over a stale value with a plain write
	// instead of a compare-and-set, for the same purpose.
	noStaleCAS bool
	// noStaleAtRead serves a stale value found with another node's lease
	// through a run, as before a Fetch's read could serve it itself.
	noStaleAtRead bool
	// noPatternStale unlinks a pattern's keys of a group with a MaxStale
	// window as in a strict group, for the same purpose.
	noPatternStale bool

	closing context.Context // done when Close begins; ends in-flight loads
	// runClosings are children of closing that the runs' contexts use
	// (see runContext).
	runClosings [runClosingShards]context.Context
	stop        context.CancelFunc
	clockStop   func()
	closeOnce   sync.Once
	bg          sync.WaitGroup      // the retry goroutine and patternLoop
	patternQ    chan queuedPatterns // received pattern messages for patternLoop
	receipts    receipts            // counts received messages in arrival order

	// pipeInvalidations: an invalidation of keys sends its UNLINKs and its
	// message in one pipeline (a single server carrying store and bus).
	pipeInvalidations bool
	noPipe            bool // test switch: UNLINKs, then the message (SetNoPipe)

	// noCAS replaces every compare-and-set fill by a plain write. Tests set
	// it to show that the stale-fill tests catch the bug the compare-and-set
	// prevents; nothing else may.
	noCAS bool
	// noRelease leaves the leases of failed loads and fills in Redis, for
	// the same purpose.
	noRelease bool
	// noHandOff switches the hand-off of loaded values to the nodes that
	// waited for a lease off, so that a test can show what it saves.
	noHandOff bool
	// handOffWatch, if not 0, replaces handOffWait's estimate, so that a
	// test's loader may take as long as the test needs.
	handOffWatch time.Duration
	// noFallbackCheck serves fail-safe fallbacks without checking that no
	// invalidation removed them, and noThrottle leaves no throttle mark
	// after a failed load, so that tests can show they catch the bugs
	// these prevent. softTimeout, if set, starts the timers of
	// LoadSoftTimeout.
	noFallbackCheck, noThrottle bool
	// serialFailure checks a failed reload's fallback, then writes the
	// throttle mark, one round trip after the other, as before they ran
	// together; for measurements.
	serialFailure bool
	// keepFailedMark leaves the throttle mark of a failed reload whose
	// fallback went meanwhile, for tests.
	keepFailedMark bool
	softTimeout    func(time.Duration) *time.Timer
	// softFromLock counts a Fetch's LoadSoftTimeout from the reload lock
	// instead of from its read, so that a test can show it catches that.
	softFromLock bool
	// softLoads counts, per key, the FetchMany loads that go on in the
	// background after their soft timeout served the key's expired value
	// (see softLoadStarted); softMu protects it. noSoftJoin ignores them,
	// so that a test can show a second read then loads the key again.
	softMu     sync.Mutex
	softLoads  map[string]int
	noSoftJoin bool
	// noSoftMany makes FetchMany wait for its batch's load whatever
	// LoadSoftTimeout says, and noBackgroundWait leaves the runs that go
	// on in the background after serving their callers uncounted, so
	// that Close does not wait for them; tests show they catch both.
	noSoftMany, noBackgroundWait bool
	// noFlush switches off the flush on a lost subscription and the
	// degraded L1 that follows, for the same purpose.
	noFlush atomic.Bool
	// flushVetoesL2 makes an L1 flush veto the Redis fills of the loads in
	// progress too (the behaviour before a flush vetoed L1 fills only), so
	// that a test can show it catches the double load at cold start.
	flushVetoesL2 bool
	// hook, if set, runs at named points of a load (see Cache.at); tests
	// use it to land an invalidation exactly there.
	hook func(point string)
	// holdPublish, if set, runs before a bus message is sent and may block
	// it: tests use it to keep a message in flight.
	holdPublish func()
	// dropNext makes the next invalidation message (not a heartbeat)
	// vanish after its sequence number was used, as a message lost on the
	// way would; for tests only.
	dropNext atomic.Bool
	// noTagCheck switches every tag check off (fills and reads), noTagApply
	// makes the node ignore the bus's tag messages, and noTagReset keeps
	// the tag table across a lost subscription or a gap: tests set them to
	// show that they catch what each prevents; nothing else may.
	noTagCheck, noTagApply, noTagReset bool
	// noForeignLease waits for a foreign lease as for any other, as before
	// foreign leases were recognized; for tests only.
	noForeignLease bool
	// noWakeWait makes lease waits neither mark leases nor listen for wake
	// notices, as before notices; pollPause, if set, replaces every poll
	// pause of a lease wait: tests set them to show what notices change.
	noWakeWait bool
	pollPause  time.Duration
	wakeReads  atomic.Int64 // reads of Redis that a wake notice caused, for tests
	// noNoteLeaseCheck takes the value of any fill's notice, whichever
	// lease it replaced; for tests only.
	noNoteLeaseCheck bool
}

// groupStats is what the Cache keeps of each group: its counters, and
// the L1 warming that needs the group's codec.
type groupStats interface {
	statsSnapshot() Stats
	warmL1(ctx context.Context, keys []string) (int, error)
}

// New returns a Cache configured by opts. It does no I/O: an unreachable
// Redis shows up in the first calls (reads fall back to the loader). It
// fails, and starts nothing, when opts are invalid.
func New(opts Options) (*Cache, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cache{opts: o, log: o.Logger, rec: o.Recorder, groups: make(map[string]groupStats), random: rand.Float64, monoStart: time.Now()}
	c.wakes.keyOnly = len(o.BusKey) > 0
	if o.random != nil {
		c.random = o.random
	}
	if o.Redis != nil {
		c.store, err = remote.New(o.Redis, remote.Options{
			Namespace: o.Namespace, Timeout: o.RedisTimeout,
			BreakerFailures: o.BreakerFailures, BreakerCooldown: o.BreakerCooldown,
			DisableBreaker: o.DisableBreaker, OnBreaker: c.onBreaker,
			WaitReplicas: o.InvalidateReplicas, WaitTimeout: o.InvalidateReplicasTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("tiered: %w", err)
		}
		c.nsStampKey = c.store.TagKey(nsTag)
		if on, known := contextTimeouts(o.Redis); known && !on {
			c.log.Warn("tiered: the redis client has ContextTimeoutEnabled off: go-redis will not apply RedisTimeout to its sockets, so a hung server blocks calls for the client's ReadTimeout",
				"redis_timeout", o.RedisTimeout)
		}
	}
	clock := local.NewTickingClock(0)
	c.clock, c.tick = clock, int64(clock.Resolution())
	if o.clock != nil {
		c.clock = o.clock
	}
	c.tags = newTagTable(o.TagClockSkew, o.Redis == nil)
	c.tags.keep.Store(o.Redis == nil || o.DisableBus) // with a bus: once subscribed
	c.tags.trusted.Store(o.Redis == nil)
	if !o.DisableL1 {
		c.l1, err = local.New[any](local.Options{
			Recheck:      c.recheckL1,
			MaxCost:      o.L1MaxBytes,
			ChargeMemory: true,
			Clock:        c.clock,
			OnReject:     func(string) { c.stats.record(c.rec, Event{Kind: EventL1Rejected}) },
			OnEvict:      func(string) { c.stats.record(c.rec, Event{Kind: EventL1Evicted}) },
			Split:        splitKey,
		})
		if err != nil {
			clock.Stop()
			return nil, fmt.Errorf("tiered: %w", err)
		}
	}
	c.closing, c.stop = context.WithCancel(context.Background())
	var runStops [runClosingShards]context.CancelFunc
	for i := range c.runClosings {
		c.runClosings[i], runStops[i] = context.WithCancel(c.closing)
	}
	stop := c.stop
	c.stop = func() { // closing's children end with it; this only says so to vet
		stop()
		for _, f := range runStops {
			f()
		}
	}
	c.flights.onPanic = func(key string, p *PanicError) {
		c.log.Error("tiered: loader panicked", "key", key, "panic", p.Value, "stack", string(p.Stack))
	}
	c.refreshes.onPanic = c.flights.onPanic
	c.clockStop = clock.Stop
	c.retries = newRetryQueue()
	c.longestTTL.Store(int64(o.TTL))
	if o.Redis != nil && !o.DisableBus {
		c.degrade() // until the subscription is confirmed
		c.patternQ = make(chan queuedPatterns, patternQueueLen)
		c.bus, err = bus.New(bus.Options{
			Client: o.Redis, Channel: c.busChannel(), Handler: busHandler{c},
			Heartbeat: o.Heartbeat, Timeout: o.RedisTimeout, Logger: c.log, Observe: c.observeBus,
			Sharded: o.ShardedPubSub, Publish: c.publishMessage, Keys: o.BusKey,
			Wake: c.wakeChannel(), OnWake: c.wakes.wake, WakeReady: c.wakeReady,
		})
		if err != nil {
			c.stop()
			if c.l1 != nil {
				c.l1.Close()
			}
			clock.Stop()
			return nil, fmt.Errorf("tiered: %w", err)
		}
	}
	c.pipeInvalidations = c.bus != nil && c.bus.Pipelines() && c.store.Pipelines(o.Redis)
	c.bg.Add(1)
	go c.retryLoop()
	if c.bus != nil {
		c.bg.Add(1)
		go c.patternLoop()
	}
	return c, nil
}

// Close cancels the loads in progress (their loaders' ctx is cancelled;
// a load not yet at its loader, such as one waiting for another node's
// lease, ends with ErrClosed and calls no loader), waits for them to end, stops the bus and the background retries, and
// releases the L1. Calls that start after Close returns get ErrClosed. It
// does not close the Redis client. Close is idempotent and always returns
// nil.
//
// Close must not run concurrently with other calls on the cache or its
// groups: stop serving traffic first. (The L1 hit path takes no lock, and
// Ristretto's Close is not safe against a concurrent Get; guarding every
// hit would cost two atomic writes per hit.)
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.stop()
		if c.bus != nil {
			c.bus.Close()
		}
		c.bg.Wait()
		c.refreshes.close()
		c.flights.close()
		if c.l1 != nil {
			c.l1.Close()
		}
		c.clockStop()
	})
	return nil
}

// Stats returns the counters of the whole cache: every group's, summed, and
// the cache-wide L1 counters.
func (c *Cache) Stats() Stats {
	s := c.stats.snapshot()
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	for _, g := range c.groups {
		s.add(g.statsSnapshot())
	}
	return s
}

// WaitL1 blocks until the L1 fills made so far are visible to reads (the L1
// applies new entries asynchronously). Tests and warm-up code use it; the
// read path never needs it.
func (c *Cache) WaitL1() {
	if c.l1 != nil {
		c.l1.Wait()
	}
}

// handOffTTL is how long a hand-off stays in Redis: long enough for the
// waiting nodes' next poll (every few milliseconds), short enough that
// writing one per load costs little memory; never past LeaseWait, which
// bounds every wait.
func (c *Cache) handOffTTL() time.Duration { return min(c.opts.LeaseWait, maxHandOffTTL) }

// maxHandOffTTL bounds handOffTTL.
const maxHandOffTTL = time.Second

// jitter draws a TTL uniformly from [ttl*(1-Jitter), ttl] in whole
// milliseconds (Redis keeps milliseconds), so that no key outlives ttl.
func (c *Cache) jitter(ttl time.Duration) time.Duration {
	ms := ttl.Milliseconds()
	if c.opts.Jitter == 0 || ms <= 1 {
		return ttl
	}
	lo := int64(math.Ceil(float64(ms) * (1 - c.opts.Jitter)))
	if lo >= ms {
		return time.Duration(ms) * time.Millisecond
	}
	return time.Duration(lo+rand.Int64N(ms-lo+1)) * time.Millisecond
}

// l1Expiry returns the L1 expiry (clock nanoseconds) of an entry that
// expires in Redis at l2Expire (unix ms; 0 = no L2): the earlier of that and
// a jittered L1TTL (or degraded L1 TTL) from now, less one clock tick so the
// entry is never served after it expired in Redis.
func (c *Cache) l1Expiry(l2Expire int64, degraded bool) int64 {
	now := c.clock.Now()
	exp := now + int64(c.jitter(c.opts.L1TTL))
	if degraded {
		exp = now + int64(c.jitter(c.opts.DegradedL1TTL))
	}
	if l2Expire > 0 {
		exp = min(exp, l2Expire*int64(time.Millisecond))
	}
	return exp - c.tick
}

// stopwatch starts timing a load: the returned func reports the time
// since. Load times go into the envelope, for early refresh; tests that
// inject a clock time loads with it.
func (c *Cache) stopwatch() func() time.Duration {
	if c.opts.clock != nil {
		start := c.clock.Now()
		return func() time.Duration { return time.Duration(c.clock.Now() - start) }
	}
	start := time.Now()
	return func() time.Duration { return time.Since(start) }
}

// redisFailed records a failed Redis call that a read absorbed; a call
// that fails once Close has begun is not counted.
// During an outage every miss fails: the log line is written at most once
// per redisLogEvery, with the number of failures it stands for (the
// Recorder and Stats see each one).
func (c *Cache) redisFailed(st *counters, group, op, key string, err error) {
	if c.closing.Err() != nil {
		return // Close cut the call short
	}
	st.record(c.rec, Event{Kind: EventRedisError, Group: group, Err: err})
	n := c.redisFails.Add(1)
	now := time.Now().UnixNano()
	last := c.redisLogged.Load()
	if now-last < int64(redisLogEvery) || !c.redisLogged.CompareAndSwap(last, now) {
		return
	}
	c.redisFails.Add(-n)
	c.log.Warn("tiered: redis call failed; serving from the loader", "op", op, "group", group, "key", key, "err", err, "failures", n)
}

// redisLogEvery spaces the log lines of failed Redis calls.
const redisLogEvery = time.Second

// WaitBus blocks until this node's bus subscription is confirmed (at once
// without a bus), ctx is done, or the cache is closed (ErrClosed). Until
// then L1 serves only entries younger than DegradedL1TTL.
func (c *Cache) WaitBus(ctx context.Context) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	if c.bus == nil {
		return nil
	}
	return c.bus.WaitHealthy(ctx)
}

// maxTTL is how long a failed invalidation is retried: the longest TTL of
// any group, after which every value it was meant to remove has expired.
func (c *Cache) maxTTL() time.Duration { return time.Duration(c.longestTTL.Load()) }

// publishMessage sends one encoded bus message on the namespace's channel
// (PUBLISH, or SPUBLISH with ShardedPubSub).
func (c *Cache) publishMessage(ctx context.Context, payload []byte) error {
	if c.holdPublish != nil {
		c.holdPublish()
	}
	if c.dropNext.Load() && !isHeartbeat(payload) && c.dropNext.CompareAndSwap(true, false) {
		return nil
	}
	return bus.Publisher(c.opts.Redis, c.busChannel(), c.opts.ShardedPubSub)(ctx, payload)
}

// isHeartbeat reports whether payload is a heartbeat; only the test switch
// dropNext asks.
func isHeartbeat(payload []byte) bool {
	m, err := bus.Decode(payload)
	return err == nil && m.Kind == bus.KindHeartbeat
}

// wakeChannel is the namespace's wake channel, or "" when notices are off
// (no bus, a sharded bus, DisableWake).
func (c *Cache) wakeChannel() string {
	o := c.opts
	if o.Redis == nil || o.DisableBus || o.ShardedPubSub || o.DisableWake {
		return ""
	}
	return WakeChannel(o.Namespace)
}

// wakeReady switches the store's wake notices on once this node's bus
// subscription includes the wake channel (which proves that the Redis user
// may use it: a refused PUBLISH would fail the fill scripts), and off
// when the server refused it.
func (c *Cache) wakeReady(on bool) {
	if on {
		c.store.SetWake(c.wakeChannel())
	} else {
		c.store.SetWake("")
	}
}

// WakeChannel returns the pub/sub channel of namespace's wake notices:
// namespace + ":tiercache:wake". Redis scripts publish there the key of a
// lease that a node waits for when the lease is filled or released (see
// Options.DisableWake and docs/protocol.md).
func WakeChannel(namespace string) string { return namespace + ":tiercache:wake" }

// busChannel is the pub/sub channel of the namespace.
func (c *Cache) busChannel() string { return BusChannel(c.opts.Namespace) }

// BusChannel returns the pub/sub channel on which the caches of namespace
// publish and receive invalidations: namespace + ":tiercache:bus". A
// process outside the fleet (cmd/tiercache, a script in another language)
// publishes there; see docs/protocol.md.
func BusChannel(namespace string) string { return namespace + ":tiercache:bus" }

// splitKey returns where a key's group part ends: after its first ":"
// (group names are encoded without one).
func splitKey(key string) int { return strings.IndexByte(key, ':') + 1 }
