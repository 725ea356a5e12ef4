package tiered

// This file holds what metric adapters read when they are scraped; the
// events themselves reach them through the Recorder.

// StatsByGroup returns the counters of each group, by group name, and under
// the name "" those of the cache itself: the events that belong to no group
// (invalidations, the bus, L1 admission and evictions, Redis errors of
// invalidations and publishes). The values sum to [Cache.Stats]. Each
// counter is read once, atomically, and only grows, so a metric exporter can
// report them as counters. It is safe for concurrent use and cheap enough to
// call on every scrape (it locks no hot path).
func (c *Cache) StatsByGroup() map[string]Stats {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	m := make(map[string]Stats, len(c.groups)+1)
	m[""] = c.stats.snapshot()
	for name, g := range c.groups {
		m[name] = g.statsSnapshot()
	}
	return m
}

// L1State describes the L1 at one moment; see [Cache.L1State].
type L1State struct {
	// Entries counts the entries in L1's key index: those it holds or is
	// about to apply, including invalid ones (expired, or flushed) that were
	// not yet replaced, deleted or evicted.
	Entries int
	// Bytes is the heap L1 accounts for, out of MaxBytes
	// ([Options.L1MaxBytes]): the charges of the entries it holds (each
	// its value's size, its key's and its share of the index) plus its
	// fixed structures.
	Bytes, MaxBytes int64
	// Stored counts the fills handed to L1 since [New]. Each is then
	// admitted or refused by its admission policy ([Stats.L1Rejected]), so
	// Stored - L1Rejected counts the admissions. It only grows.
	Stored uint64
	// Degraded is true while the bus subscription is not confirmed (at
	// start-up, and from a loss until it is restored): L1 then serves only
	// entries younger than [Options.DegradedL1TTL].
	Degraded bool
}

// L1State returns the L1's size, admissions and mode; the zero L1State
// with [Options.DisableL1]. It is safe for concurrent use, Close included,
// and takes each of L1's 256 index locks once, briefly: fine for a metrics
// scrape, not for a request path.
func (c *Cache) L1State() L1State {
	if c.l1 == nil {
		return L1State{}
	}
	return L1State{
		Entries:  c.l1.Len(),
		Bytes:    c.l1.Cost(),
		MaxBytes: c.l1.MaxCost(),
		Stored:   c.l1.Stored(),
		Degraded: c.l1.Degraded(),
	}
}

// BreakersOpen returns how many Redis endpoints (the server, or each
// master of a cluster) have a circuit breaker that refuses calls now: open
// and within its [Options.BreakerCooldown], or probing. An endpoint that
// no call reaches after it opened (a master replaced by a failover) stops
// counting when its cool-down ends. It is 0 without Redis or with the
// breakers off, and safe for concurrent use, Close included.
func (c *Cache) BreakersOpen() int {
	if c.store == nil {
		return 0
	}
	return c.store.BreakersOpen()
}
