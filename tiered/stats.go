package tiered

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Tier names a level of the cache.
type Tier uint8

// The tiers.
const (
	TierL1 Tier = 1 // the in-process cache
	TierL2 Tier = 2 // Redis
)

// String returns "l1" or "l2".
func (t Tier) String() string {
	switch t {
	case TierL1:
		return "l1"
	case TierL2:
		return "l2"
	}
	return "unknown"
}

// EventKind says what an [Event] reports.
type EventKind uint8

// The events a [Recorder] receives.
const (
	EventHit         EventKind = iota + 1 // a read found a value in Tier
	EventMiss                             // a read found nothing in Tier
	EventLoad                             // a loader call ended: Duration, Err
	EventCollapsed                        // a caller joined a load already in flight
	EventLeaseWon                         // this node took the lease and loads
	EventLeaseBusy                        // another node held the lease: this node loaded without filling
	EventLeaseLost                        // the fill's compare-and-set failed: an invalidation or another write won
	EventDecodeError                      // a value in Redis did not decode; it was removed
	EventRedisError                       // a Redis call failed: Err; reads fell back to the loader
	EventL1Rejected                       // Ristretto's admission policy dropped an L1 fill
	EventL1Evicted                        // an entry was evicted from L1 to make room

	EventInvalidationSent     // an Invalidate, InvalidatePattern or Set reached Redis and the bus
	EventInvalidationReceived // an invalidation from another node was applied: Duration is its propagation lag
	EventInvalidationRetried  // a failed invalidation succeeded in the background
	EventPatternApplied       // a pattern was applied to this node's L1
	EventBusLost              // the bus subscription was lost: L1 flushed and degraded (Err)
	EventBusRestored          // the bus subscription is confirmed (again): L1 flushed; Duration is how long it was lost (0 the first time)
	EventBusGap               // a message from another node went missing: L1 flushed
	EventBusMalformed         // a bus message could not be decoded (Err)
	EventFlush                // the whole L1 was invalidated

	EventLeaseWaited  // a miss waited for another node's lease: Duration; Err nil when the value arrived
	EventLeaseRenewed // a slow load extended its lease
	EventRefresh      // an early (XFetch) refresh ended: Duration, Err (nil on success)
	EventBreakerOpen  // Redis failed too often: calls stop for a cool-down (Err: the last failure)
	EventBreakerClose // a probe succeeded: calls to Redis resume

	EventPatternFlush // a pattern beyond the limits or the work budget flushed L1 in its place (Err)
	EventBusRejected  // a bus message was dropped unread: too large, or not signed under BusKey (Err)
	EventLeaseForeign // a lease that outlives this fleet's LeaseTTL was waited for once, then the key loaded without filling
	EventFailSafe     // an expired value was served as a fallback (GroupOptions.FailSafe): Err is the load's error, nil for a soft timeout
	EventStale        // an invalidated value was served within its group's MaxStale window while one load replaces it
)

var eventNames = [...]string{
	EventHit: "hit", EventMiss: "miss", EventLoad: "load", EventCollapsed: "collapsed",
	EventLeaseWon: "lease_won", EventLeaseBusy: "lease_busy", EventLeaseLost: "lease_lost",
	EventDecodeError: "decode_error", EventRedisError: "redis_error",
	EventL1Rejected: "l1_rejected", EventL1Evicted: "l1_evicted",
	EventInvalidationSent: "invalidation_sent", EventInvalidationReceived: "invalidation_received",
	EventInvalidationRetried: "invalidation_retried", EventPatternApplied: "pattern_applied",
	EventBusLost: "bus_lost", EventBusRestored: "bus_restored", EventBusGap: "bus_gap",
	EventBusMalformed: "bus_malformed", EventFlush: "flush",
	EventLeaseWaited: "lease_waited", EventLeaseRenewed: "lease_renewed", EventRefresh: "refresh",
	EventBreakerOpen: "breaker_open", EventBreakerClose: "breaker_close",
	EventPatternFlush: "pattern_flush", EventBusRejected: "bus_rejected", EventLeaseForeign: "lease_foreign",
	EventFailSafe: "fail_safe", EventStale: "stale",
}

// String returns the event's snake_case name.
func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one thing that happened in a [Cache]. Group is empty for events
// that belong to no group (L1 admission, evictions).
type Event struct {
	Kind     EventKind
	Group    string
	Tier     Tier          // EventHit, EventMiss
	Duration time.Duration // EventLoad, EventLeaseWaited, EventRefresh; EventInvalidationReceived: the propagation lag; EventBusRestored: the downtime
	Err      error         // EventLoad, EventRefresh (nil on success), EventRedisError, EventBusLost, EventBusMalformed
}

// Recorder receives the events of a [Cache], for metrics. Record is called
// synchronously on the goroutine that caused the event, the L1 hit path
// included: it must be fast, must not block, and must be safe for concurrent
// use.
type Recorder interface {
	Record(Event)
}

// RecorderFunc adapts a function to [Recorder].
type RecorderFunc func(Event)

// Record calls f(e).
func (f RecorderFunc) Record(e Event) { f(e) }

// Stats are counters since a [Cache] was created. Every field only grows.
type Stats struct {
	L1Hits, L1Misses uint64 // reads served by L1, reads L1 could not serve
	L2Hits, L2Misses uint64 // L2 reads that found a value, L2 reads that found none (a lease counts as none)
	Loads            uint64 // loader calls (a batch loader call counts once, as do the Load calls of one Warm batch)
	LoadErrors       uint64 // loader calls that returned an error (not ErrNotFound) or panicked
	Collapsed        uint64 // callers that joined a load already in flight instead of starting one
	LeasesWon        uint64 // leases taken
	LeasesBusy       uint64 // misses that found another node's lease
	LeasesLost       uint64 // fills whose compare-and-set failed, and slow loads whose lease expired
	LeasesWaited     uint64 // misses that waited for another node's lease instead of loading
	LeasesRenewed    uint64 // lease extensions of slow loads
	Refreshes        uint64 // early refreshes run (XFetch)
	RefreshErrors    uint64 // early refreshes that failed (the old value stayed)
	BreakerOpens     uint64 // times the Redis breaker opened
	BreakerCloses    uint64 // times the Redis breaker closed again
	DecodeErrors     uint64 // values in Redis that did not decode (and were removed)
	RedisErrors      uint64 // failed Redis calls
	L1Rejected       uint64 // L1 fills dropped by admission (cache-wide, not per group)
	L1Evicted        uint64 // L1 entries evicted (cache-wide, not per group)

	// Invalidation and bus counters are cache-wide.
	InvalidationsSent     uint64 // invalidations that reached Redis and the bus
	InvalidationsReceived uint64 // invalidations from other nodes applied here
	InvalidationsRetried  uint64 // failed invalidations that succeeded in the background
	PatternsApplied       uint64 // patterns applied to this node's L1
	L1Removed             uint64 // L1 entries removed by invalidations
	BusLost               uint64 // bus subscriptions lost (each followed by a reconnect)
	BusRestored           uint64 // bus subscriptions confirmed, the first one included
	BusReconnects         uint64 // bus subscriptions confirmed again after a loss
	BusGaps               uint64 // messages from other nodes found missing
	BusMalformed          uint64 // bus messages that could not be decoded
	Flushes               uint64 // whole-L1 invalidations
	PatternFlushes        uint64 // patterns that flushed L1 in their place (beyond the limits or the work budget)
	BusRejected           uint64 // bus messages dropped unread (too large, or not signed under BusKey)
	LeasesForeign         uint64 // leases that outlived this fleet's LeaseTTL: waited for once, then loaded without filling

	// FailSafe counts the reads served an expired value as a fallback
	// (see GroupOptions.FailSafe and LoadSoftTimeout).
	FailSafe uint64
	// Stale counts the reads served an invalidated value within the
	// group's MaxStale window (see GroupOptions.MaxStale).
	Stale uint64

	// BusDowntime is how long the bus subscription was lost, summed over
	// the losses that ended (each ended by one of BusReconnects).
	BusDowntime time.Duration
}

func (s *Stats) add(o Stats) {
	s.L1Hits += o.L1Hits
	s.L1Misses += o.L1Misses
	s.L2Hits += o.L2Hits
	s.L2Misses += o.L2Misses
	s.Loads += o.Loads
	s.LoadErrors += o.LoadErrors
	s.Collapsed += o.Collapsed
	s.LeasesWon += o.LeasesWon
	s.LeasesBusy += o.LeasesBusy
	s.LeasesLost += o.LeasesLost
	s.LeasesWaited += o.LeasesWaited
	s.LeasesRenewed += o.LeasesRenewed
	s.Refreshes += o.Refreshes
	s.RefreshErrors += o.RefreshErrors
	s.BreakerOpens += o.BreakerOpens
	s.BreakerCloses += o.BreakerCloses
	s.DecodeErrors += o.DecodeErrors
	s.RedisErrors += o.RedisErrors
	s.L1Rejected += o.L1Rejected
	s.L1Evicted += o.L1Evicted
	s.InvalidationsSent += o.InvalidationsSent
	s.InvalidationsReceived += o.InvalidationsReceived
	s.InvalidationsRetried += o.InvalidationsRetried
	s.PatternsApplied += o.PatternsApplied
	s.L1Removed += o.L1Removed
	s.BusLost += o.BusLost
	s.BusRestored += o.BusRestored
	s.BusReconnects += o.BusReconnects
	s.BusDowntime += o.BusDowntime
	s.BusGaps += o.BusGaps
	s.BusMalformed += o.BusMalformed
	s.Flushes += o.Flushes
	s.PatternFlushes += o.PatternFlushes
	s.BusRejected += o.BusRejected
	s.LeasesForeign += o.LeasesForeign
	s.FailSafe += o.FailSafe
	s.Stale += o.Stale
}

// stripes spreads a hot counter over cache lines so that goroutines on
// different cores rarely add to the same one.
const stripes = 32

type paddedCounter struct {
	n atomic.Uint64
	_ [56]byte // one cache line each
}

// stripedCounter is a counter for the hit path. The padding keeps its
// stripes off the cache lines of the fields around it, which the hit path
// reads.
type stripedCounter struct {
	_ [64]byte
	c [stripes]paddedCounter
}

// inc adds one to the stripe of the calling goroutine. A stripe chosen per
// key or at random would have every core write every stripe, so that each
// add finds its cache line on the other core (measured: an L1 hit took 3.5x
// longer on 2 cores than on 1). The stripe is picked from the address of a
// variable on the caller's stack: each goroutine has its own stack, so a
// goroutine keeps adding to one stripe while others, likely on other
// cores, add to others. (A stack can move when it grows; the stripe then
// changes, which is harmless.)
func (c *stripedCounter) inc() {
	var onStack byte
	c.c[stripeOf(uintptr(unsafe.Pointer(&onStack)))].n.Add(1)
}

// stripeOf mixes a stack address into a stripe index. Goroutine stacks are
// at least 2 KiB apart, so the bits above 11 tell goroutines apart.
func stripeOf(addr uintptr) uint64 {
	return (uint64(addr>>11) * 0x9E3779B97F4A7C15) >> (64 - 5)
}

func (c *stripedCounter) load() uint64 {
	var n uint64
	for i := range c.c {
		n += c.c[i].n.Load()
	}
	return n
}

// counters are the [Stats] of one group, or of the cache itself.
type counters struct {
	l1Hits, l1Misses stripedCounter
	_                [64]byte
	l2Hits, l2Misses atomic.Uint64
	loads, loadErrs  atomic.Uint64
	collapsed        atomic.Uint64
	leaseWon         atomic.Uint64
	leaseBusy        atomic.Uint64
	leaseLost        atomic.Uint64
	leaseWaited      atomic.Uint64
	leaseRenewed     atomic.Uint64
	refreshes        atomic.Uint64
	refreshErrs      atomic.Uint64
	breakerOpens     atomic.Uint64
	breakerCloses    atomic.Uint64
	decodeErrs       atomic.Uint64
	redisErrs        atomic.Uint64
	l1Rejected       atomic.Uint64
	l1Evicted        atomic.Uint64
	invSent          atomic.Uint64
	invReceived      atomic.Uint64
	invRetried       atomic.Uint64
	patterns         atomic.Uint64
	l1Removed        atomic.Uint64
	busLost          atomic.Uint64
	busRestored      atomic.Uint64
	busReconnects    atomic.Uint64
	busDowntime      atomic.Int64 // ns
	busLostAt        atomic.Int64 // unix ns of the loss in progress; 0 when none
	busGaps          atomic.Uint64
	busMalformed     atomic.Uint64
	flushes          atomic.Uint64
	patternFlushes   atomic.Uint64
	busRejected      atomic.Uint64
	leaseForeign     atomic.Uint64
	failSafe         atomic.Uint64
	stale            atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		L1Hits: c.l1Hits.load(), L1Misses: c.l1Misses.load(),
		L2Hits: c.l2Hits.Load(), L2Misses: c.l2Misses.Load(),
		Loads: c.loads.Load(), LoadErrors: c.loadErrs.Load(),
		Collapsed: c.collapsed.Load(),
		LeasesWon: c.leaseWon.Load(), LeasesBusy: c.leaseBusy.Load(), LeasesLost: c.leaseLost.Load(),
		LeasesWaited: c.leaseWaited.Load(), LeasesRenewed: c.leaseRenewed.Load(),
		Refreshes: c.refreshes.Load(), RefreshErrors: c.refreshErrs.Load(),
		BreakerOpens: c.breakerOpens.Load(), BreakerCloses: c.breakerCloses.Load(),
		DecodeErrors: c.decodeErrs.Load(), RedisErrors: c.redisErrs.Load(),
		L1Rejected: c.l1Rejected.Load(), L1Evicted: c.l1Evicted.Load(),
		InvalidationsSent: c.invSent.Load(), InvalidationsReceived: c.invReceived.Load(),
		InvalidationsRetried: c.invRetried.Load(), PatternsApplied: c.patterns.Load(),
		L1Removed: c.l1Removed.Load(), BusLost: c.busLost.Load(), BusRestored: c.busRestored.Load(),
		BusReconnects: c.busReconnects.Load(), BusDowntime: time.Duration(c.busDowntime.Load()),
		BusGaps: c.busGaps.Load(), BusMalformed: c.busMalformed.Load(), Flushes: c.flushes.Load(),
		PatternFlushes: c.patternFlushes.Load(), BusRejected: c.busRejected.Load(), LeasesForeign: c.leaseForeign.Load(),
		FailSafe: c.failSafe.Load(),
		Stale:    c.stale.Load(),
	}
}

// record counts e in c and passes it to r, if any.
func (c *counters) record(r Recorder, e Event) {
	switch e.Kind {
	case EventHit:
		if e.Tier == TierL1 {
			c.l1Hits.inc()
		} else {
			c.l2Hits.Add(1)
		}
	case EventMiss:
		if e.Tier == TierL1 {
			c.l1Misses.inc()
		} else {
			c.l2Misses.Add(1)
		}
	case EventLoad:
		c.loads.Add(1)
		if e.Err != nil {
			c.loadErrs.Add(1)
		}
	case EventRefresh:
		c.refreshes.Add(1)
		if e.Err != nil {
			c.refreshErrs.Add(1)
		}
	case EventBusRestored:
		c.busRestored.Add(1)
		if e.Duration > 0 {
			c.busReconnects.Add(1)
			c.busDowntime.Add(int64(e.Duration))
		}
	default:
		c.count(e.Kind).Add(1)
	}
	if r != nil {
		r.Record(e)
	}
}

func (c *counters) count(k EventKind) *atomic.Uint64 {
	switch k {
	case EventCollapsed:
		return &c.collapsed
	case EventLeaseWon:
		return &c.leaseWon
	case EventLeaseBusy:
		return &c.leaseBusy
	case EventLeaseLost:
		return &c.leaseLost
	case EventDecodeError:
		return &c.decodeErrs
	case EventRedisError:
		return &c.redisErrs
	case EventL1Rejected:
		return &c.l1Rejected
	case EventL1Evicted:
		return &c.l1Evicted
	case EventInvalidationSent:
		return &c.invSent
	case EventInvalidationReceived:
		return &c.invReceived
	case EventInvalidationRetried:
		return &c.invRetried
	case EventPatternApplied:
		return &c.patterns
	case EventBusLost:
		return &c.busLost
	case EventBusRestored:
		return &c.busRestored
	case EventBusGap:
		return &c.busGaps
	case EventBusMalformed:
		return &c.busMalformed
	case EventLeaseWaited:
		return &c.leaseWaited
	case EventLeaseRenewed:
		return &c.leaseRenewed
	case EventBreakerOpen:
		return &c.breakerOpens
	case EventBreakerClose:
		return &c.breakerCloses
	case EventPatternFlush:
		return &c.patternFlushes
	case EventBusRejected:
		return &c.busRejected
	case EventLeaseForeign:
		return &c.leaseForeign
	case EventFailSafe:
		return &c.failSafe
	case EventStale:
		return &c.stale
	}
	return &c.flushes
}
