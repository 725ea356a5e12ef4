package tiered

import (
	"time"

	"github.com/tiercache/tiercache/bus"
)

// busHandler applies what the bus delivers to the cache's L1. Its methods
// run on the bus's receive goroutine.
type busHandler struct{ c *Cache }

var _ bus.Handler = busHandler{}

// Apply removes the keys another node invalidated.
// Patterns are applied apart, on patternLoop: a key invalidation that
// arrives after a pattern does not wait for it (see receipts for how they
// are counted).
func (h busHandler) Apply(m bus.Message) {
	c := h.c
	if m.Kind == bus.KindPatterns {
		c.queuePatterns(m)
		return
	}
	n := c.receipts.arrive()
	switch m.Kind {
	case bus.KindKeys:
		c.applyLocal(m.Items, nil)
	case bus.KindFlush:
		c.detachLoads()
		c.flushL1()
	case bus.KindTags:
		c.applyTagMessage(m.Items)
	}
	c.receivedApplied(n, m)
}

// Lost flushes L1 and, until Restored, serves only entries younger than
// DegradedL1TTL: an invalidation published from now on may never arrive.
func (h busHandler) Lost(err error) {
	c := h.c
	c.stats.busLostAt.Store(time.Now().UnixNano())
	if !c.noFlush.Load() {
		c.degrade()
		c.detachLoads()
		c.flushL1()
	}
	c.resetTags(false)
	c.stats.record(c.rec, Event{Kind: EventBusLost, Err: err}) // after acting: observers see the new state
}

// Restored flushes L1 once more (anything loaded during the outage may
// have missed its invalidation) and serves L1 normally again. Its event
// carries the downtime: how long since Lost (0 for the first subscription,
// which ends the degraded start-up rather than a loss).
func (h busHandler) Restored() {
	c := h.c
	lostAt := c.stats.busLostAt.Swap(0)
	if !c.noFlush.Load() {
		if lostAt != 0 { // after an outage, not at start-up (see detachLoads)
			c.detachLoads()
		}
		c.flushL1()
		if c.l1 != nil {
			c.l1.ClearDegraded()
		}
	}
	c.resetTags(true)
	var down time.Duration
	if lostAt != 0 {
		down = max(time.Duration(time.Now().UnixNano()-lostAt), 1) // a reconnect never reports 0
		c.log.Info("tiered: bus subscription restored; L1 flushed", "downtime", down)
	}
	c.stats.record(c.rec, Event{Kind: EventBusRestored, Duration: down})
}

// Gap flushes L1: a message went missing.
func (h busHandler) Gap(bus.NodeID) {
	c := h.c
	if !c.noFlush.Load() {
		c.detachLoads()
		c.flushL1()
	}
	c.resetTags(true)
	c.stats.record(c.rec, Event{Kind: EventBusGap})
}

// degrade makes L1 serve only entries younger than DegradedL1TTL (none with
// DisableDegradedL1).
func (c *Cache) degrade() {
	if c.l1 == nil {
		return
	}
	if c.opts.DisableDegradedL1 {
		c.l1.SetDegraded(0)
		return
	}
	c.l1.SetDegraded(c.opts.DegradedL1TTL)
}

// detachLoads detaches every load in flight, as an invalidation of their
// keys does, ahead of a flush that stands for invalidations this node
// applied or missed (a key too large for a message, a gap, a lost
// subscription, its return after an outage): a read that begins after it
// must not join a load that read Redis before them. The first subscription
// does not: the node has applied no invalidation yet, and the reads of a
// cold start join the first one's load (one load, in the process too).
func (c *Cache) detachLoads() {
	c.flights.forgetMatching(func(string) bool { return true })
}

func (c *Cache) flushL1() {
	if c.l1 != nil {
		c.l1.Flush()
		c.stats.record(c.rec, Event{Kind: EventFlush})
	}
}

// observeBus turns the bus's own events into cache events.
func (c *Cache) observeBus(e bus.Event) {
	switch e.Kind {
	case bus.EventMalformed:
		c.stats.record(c.rec, Event{Kind: EventBusMalformed, Err: e.Err})
	case bus.EventPublishError:
		c.stats.record(c.rec, Event{Kind: EventRedisError, Err: e.Err})
	case bus.EventRejected:
		c.stats.record(c.rec, Event{Kind: EventBusRejected, Err: e.Err})
	}
}
