package tiered

import (
	"context"
	"time"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/local"
)

// SetNoCAS switches the compare-and-set fills off (true) or on, so that a
// test can show it catches the stale fill they prevent.
func SetNoCAS(c *Cache, off bool) { c.noCAS = off }

// SetNoRelease switches off (true) the release of the leases of failed
// loads and fills, so that a test can show it catches the leases left
// behind.
func SetNoRelease(c *Cache, off bool) { c.noRelease = off }

// SetNoHandOff switches off (true) the hand-off of loaded values to the
// nodes that waited for a lease an invalidation removed.
func SetNoHandOff(c *Cache, off bool) { c.noHandOff = off }

// SetHandOffWatch sets how long a wait watches for the hand-off of a
// lease that vanished (0: the estimate from the group's load times).
func SetHandOffWatch(c *Cache, d time.Duration) { c.handOffWatch = d }

// SetNoFlush switches off (true) the L1 flush and degraded mode that follow
// a lost bus subscription, so that a test can show it catches the stale
// reads they prevent.
func SetNoFlush(c *Cache, off bool) { c.noFlush.Store(off) }

// SetFlushVetoesL2 makes an L1 flush (the bus's first subscription, its
// return, a gap) veto the Redis fills of the loads in progress too, as it
// did before it vetoed L1 fills only, so that a test can show it catches
// the double load this causes at cold start.
func SetFlushVetoesL2(c *Cache, on bool) { c.flushVetoesL2 = on }

// DropNextPublish makes the next invalidation message vanish after it used
// up its sequence number, as a message lost on the way would. Heartbeats
// pass: one that ticks in between must not take the drop.
func DropNextPublish(c *Cache) { c.dropNext.Store(true) }

// WithClock returns o with the L1 checking entries against clk.
func WithClock(o Options, clk local.Clock) Options { o.clock = clk; return o }

// SetHook makes c call f at the named points of its loads ("read",
// "read-done", "filled"), on the loading goroutine.
func SetHook(c *Cache, f func(point string)) { c.hook = f }

// SetHoldPublish makes c call f before it sends each bus message; f may
// block to keep the message in flight.
func SetHoldPublish(c *Cache, f func()) { c.holdPublish = f }

// WithRandom returns o with early refresh drawing its uniform numbers from
// f.
func WithRandom(o Options, f func() float64) Options { o.random = f; return o }

// WaitRefreshes blocks until the early refreshes in progress have ended.
func WaitRefreshes(c *Cache) {
	c.refreshes.mu.Lock()
	fls := make([]*flight, 0, len(c.refreshes.m))
	for _, fl := range c.refreshes.m {
		fls = append(fls, fl)
	}
	c.refreshes.mu.Unlock()
	for _, fl := range fls {
		<-c.refreshes.doneChan(fl)
	}
}

// DeleteSkippingL1 is [Group.Invalidate] without its local step: it removes ids
// from Redis and tells the other nodes, but leaves this node's L1 as it is,
// so that a test can show it catches the stale read that step prevents.
func DeleteSkippingL1[V any](ctx context.Context, g *Group[V], ids ...string) error {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = g.Key(id)
	}
	if err := g.c.store.Unlink(ctx, keys...); err != nil {
		return err
	}
	if g.c.bus == nil {
		return nil
	}
	return g.c.bus.Publish(ctx, bus.KindKeys, keys...)
}

// L1EntryBytes returns what the L1 charges an entry of key beyond its
// value's cost.
func L1EntryBytes(c *Cache, key string) int64 { return c.l1.EntryBytes(key) }

// L1Cost returns the L1 cost of the decoded value v of encoded size n.
func L1Cost(v any, n int) int64 { return cost(v, n) }

// SetNoTagCheck switches every tag check off (fills and reads), so that a
// test can show it catches the stale fills and reads they prevent.
func SetNoTagCheck(c *Cache, off bool) { c.noTagCheck = off }

// SetNoTagApply makes c ignore the tag messages of the bus.
func SetNoTagApply(c *Cache, off bool) { c.noTagApply = off }

// SetNoTagReset keeps c's table of tag stamps across a gap or a lost
// subscription.
func SetNoTagReset(c *Cache, off bool) { c.noTagReset = off }

// WithPatternHook returns o with f called as each pattern's application
// to the L1 begins (on the goroutine that applies it); f may block.
func WithPatternHook(o Options, f func(pattern string)) Options { o.patterns.hook = f; return o }

// WithInlinePatterns returns o applying received patterns on the bus's
// receive goroutine, before the messages after them, as before patterns
// were applied apart.
func WithInlinePatterns(o Options) Options { o.patterns.inline = true; return o }

// WithPatternBudget returns o with a work budget of steps glob steps per
// pattern; 0 with unbounded set removes the budget, as before there was one.
func WithPatternBudget(o Options, steps int64, unbounded bool) Options {
	o.patterns.budget, o.patterns.unbounded = steps, unbounded
	return o
}

// SetNoForeignLease switches off (true) the recognition of foreign leases:
// a lease that outlives LeaseTTL is waited for like any other.
func SetNoForeignLease(c *Cache, off bool) { c.noForeignLease = off }

// SetNoFallbackCheck switches off (true) the check that a fail-safe
// fallback was not invalidated, so that a test can show it catches the
// invalidated value served without it.
func SetNoFallbackCheck(c *Cache, off bool) { c.noFallbackCheck = off }

// SetNoThrottle switches off (true) the fleet-wide throttle mark after a
// failed fail-safe load.
func SetNoThrottle(c *Cache, off bool) { c.noThrottle = off }

// SetSerialFailure makes a failed reload check its fallback and then write
// the throttle mark, one round trip after the other.
func SetSerialFailure(c *Cache, on bool) { c.serialFailure = on }

// SetKeepFailedMark makes a failed reload whose fallback went while it ran
// leave its throttle mark.
func SetKeepFailedMark(c *Cache, on bool) { c.keepFailedMark = on }

// SetNoSoftMany makes c's FetchMany wait for its batch's load whatever
// LoadSoftTimeout says, so that a test can show it catches that.
func SetNoSoftMany(c *Cache, off bool) { c.noSoftMany = off }

// SetNoBackgroundWait makes c's Close leave the loads that go on in the
// background after serving their callers (a stale value, a batch's soft
// timeout) unwaited for, so that a test can show it catches that.
func SetNoBackgroundWait(c *Cache, off bool) { c.noBackgroundWait = off }

// SetSoftTimer makes c start the timers of LoadSoftTimeout with f.
func SetSoftTimer(c *Cache, f func(time.Duration) *time.Timer) { c.softTimeout = f }

// SetNoSoftJoin makes c's reads of a key load it again while a FetchMany
// load of it goes on past its soft timeout, as before they joined it.
func SetNoSoftJoin(c *Cache, off bool) { c.noSoftJoin = off }

// SetSoftFromLock makes c count a Fetch's LoadSoftTimeout from the
// reload lock instead of from its read of Redis, as it once did.
func SetSoftFromLock(c *Cache, on bool) { c.softFromLock = on }

// SetNoStaleWindow makes c serve stale values past their MaxStale window,
// so that a test can show it catches that.
func SetNoStaleWindow(c *Cache, off bool) { c.noStaleWindow = off }

// SetNoStaleCAS makes c take the lease over a stale value with a plain
// write, so that a test can show that more than one load then runs.
func SetNoStaleCAS(c *Cache, off bool) { c.noStaleCAS = off }

// SetNoPatternStale makes c's pattern invalidations unlink the keys of a
// group with a MaxStale window, as in a strict group, so that a test can
// show that its readers then wait for a load.
func SetNoPatternStale(c *Cache, off bool) { c.noPatternStale = off }

// SetNoWakeWait makes c's lease waits neither mark the leases they wait
// for nor listen for wake notices, as before notices.
func SetNoWakeWait(c *Cache, off bool) { c.noWakeWait = off }

// SetPollPause makes every poll pause of c's lease waits d (0: the normal
// schedule); an hour leaves wake notices as the only way a wait looks
// again before LeaseWait.
func SetPollPause(c *Cache, d time.Duration) { c.pollPause = d }

// WakeWaits returns the number of keys c's lease waits listen on.
func WakeWaits(c *Cache) int { return c.wakes.len() }

// WakeOn reports whether c's fills publish wake notices (its bus's
// subscription includes the wake channel).
func WakeOn(c *Cache) bool { return c.store != nil && c.store.Wake() != "" }

// SetWakeKeyOnly makes c take only the key from wake notices (on) or their
// values too (off), whatever its BusKey says.
func SetWakeKeyOnly(c *Cache, on bool) {
	c.wakes.mu.Lock()
	defer c.wakes.mu.Unlock()
	c.wakes.keyOnly = on
}

// WakeReads returns how many reads of Redis wake notices caused on c.
func WakeReads(c *Cache) int64 { return c.wakeReads.Load() }

// SetNoNoteLeaseCheck makes c's lease waits take the value of any fill's
// wake notice for their key, whichever lease that fill replaced.
func SetNoNoteLeaseCheck(c *Cache, off bool) { c.noNoteLeaseCheck = off }

// SetNoPipe makes c's invalidations of keys UNLINK first and publish
// after the reply, in two round trips, as before they shared a pipeline.
func SetNoPipe(c *Cache, off bool) { c.noPipe = off }

// PipesInvalidations reports whether c sends an invalidation's UNLINKs
// and message in one pipeline.
func PipesInvalidations(c *Cache) bool { return c.pipeInvalidations }

// SetNoStaleAtRead makes a Fetch that finds another node's lease carrying a
// stale value serve it through a run, not at its read.
func SetNoStaleAtRead(c *Cache, off bool) { c.noStaleAtRead = off }

// WaitLoads waits until no load of c runs, without ending any (Close
// would cancel them first). Call it only once nothing starts new loads.
func WaitLoads(c *Cache) { c.flights.running.Wait() }
