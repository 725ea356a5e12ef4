package tiered

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/glob"
)

// Limits of the patterns [Cache.InvalidatePattern] accepts. Within them a
// pattern has exactly Redis's glob semantics; beyond them it is refused
// before anything is applied. A node that receives a pattern beyond them
// from the bus (from an older release, or a stranger) flushes its L1
// instead of matching it.
const (
	MaxPatternBytes     = glob.MaxPatternBytes // bytes in one pattern
	MaxPatternWildcards = glob.MaxWildcards    // '*' runs, '?' and [classes] in one pattern
)

// patternBudget is the matching work one pattern may cost on one node, in
// glob steps: 27-70 ms of one core on the patterns that cost the most per
// key (BenchmarkBudget in internal/glob, on a loaded 2-core VM), far less
// than that for ordinary patterns, which cost a few steps per key that
// shares their literal prefix (so a pattern over several hundred thousand
// such keys in one L1 flushes it too). A pattern that needs more
// (a long run of wildcards against long keys) is given up and the whole
// L1 is flushed instead: safe, and counted (EventPatternFlush).
const patternBudget = 2 << 20

// patternQueueLen bounds the patterns received from the bus and not yet
// applied; when the queue is full the L1 is flushed instead.
const patternQueueLen = 256

var (
	errPatternBudget = errors.New("tiered: pattern matching exceeded its work budget")
	errPatternQueue  = errors.New("tiered: too many patterns waiting to be applied")
	errPatternLate   = errors.New("tiered: a pattern waited longer than a Heartbeat to be applied")
)

// patternLoop applies the patterns received from the bus, apart from the
// bus's receive goroutine, so that key invalidations never wait behind
// them. It runs until Close.
func (c *Cache) patternLoop() {
	defer c.bg.Done()
	for {
		select {
		case <-c.closing.Done():
			return
		case q := <-c.patternQ:
			c.applyQueued(q)
		}
	}
}

// applyQueued applies the patterns of q one by one. The delay bound holds
// for each of them: a message carries every pattern of a call, and when
// those before one took their whole budgets, that one and the rest (of q
// and of the queue) are covered by patternsLate instead.
func (c *Cache) applyQueued(q queuedPatterns) {
	for i, p := range q.m.Items {
		if c.monoNow()-q.at > int64(c.opts.Heartbeat) {
			c.patternsLate(q, q.m.Items[i:])
			return
		}
		c.applyLocal(nil, []string{p})
	}
	c.receivedApplied(q.n, q.m)
}

// patternsLate stands in for rest, the patterns of q that waited longer
// than a Heartbeat to be applied (patterns before them took their whole
// budget, or many came at once), and for every pattern queued behind q: it
// flushes the L1 and detaches every load, which covers them all, as they
// arrived before the flush. Applying them one by one could keep L1 stale
// past the bound a missed message has (docs/invalidation.md).
func (c *Cache) patternsLate(q queuedPatterns, rest []string) {
	// Those queued now, taken before the flush, which covers them; one that
	// arrives after it is applied as usual.
	late := []queuedPatterns{q}
	for n := len(c.patternQ); n > 0; n-- {
		late = append(late, <-c.patternQ)
	}
	c.patternFlush(fmt.Sprint(rest), errPatternLate)
	for _, q := range late {
		c.receivedApplied(q.n, q.m)
	}
}

// queuedPatterns is a pattern message waiting for patternLoop, with its
// arrival number.
type queuedPatterns struct {
	m  bus.Message
	n  uint64
	at int64 // Cache.monoNow when it arrived
}

// queuePatterns hands a received pattern message to patternLoop. If the
// queue is full, it flushes the L1 and detaches every load in flight
// instead, which does all that applying m would (its keys left Redis
// before it was sent), and drops m.
func (c *Cache) queuePatterns(m bus.Message) {
	n := c.receipts.arrive()
	if c.opts.patterns.inline {
		c.applyLocal(nil, m.Items)
		c.receivedApplied(n, m)
		return
	}
	select {
	case c.patternQ <- queuedPatterns{m: m, n: n, at: c.monoNow()}:
		c.at(hookPatternQueued)
	default:
		c.patternFlush(fmt.Sprint(m.Items), errPatternQueue)
		c.receivedApplied(n, m)
	}
}

// hookPatternQueued is the point (Cache.at) where a pattern from the bus
// has joined the queue of patternLoop.
const hookPatternQueued = "pattern-queued"

// receivedApplied marks the message of arrival number n applied, and
// counts every message now applied with all those before it.
func (c *Cache) receivedApplied(n uint64, m bus.Message) {
	lag := time.Duration(time.Now().UnixNano() - m.Sent)
	for _, lag := range c.receipts.applied(n, lag) {
		c.stats.record(c.rec, Event{Kind: EventInvalidationReceived, Duration: lag})
	}
}

// receipts counts the messages received from the bus in the order they
// arrived, although a pattern is applied after the keys that follow it: a
// message is counted (EventInvalidationReceived,
// Stats.InvalidationsReceived) once it and every message before it were
// applied. So a count of n always means that the first n messages were
// applied.
type receipts struct {
	mu   sync.Mutex // protects the fields below
	q    []receipt  // arrived and not yet counted, in arrival order
	head uint64     // the arrival number of q[0]
	next uint64     // the next arrival number
}

type receipt struct {
	done bool
	lag  time.Duration // from sending to applying
}

// arrive numbers a message that arrived.
func (r *receipts) arrive() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	r.next++
	r.q = append(r.q, receipt{})
	return n
}

// applied marks message n applied and returns the lags of the messages to
// count now, in order.
func (r *receipts) applied(n uint64, lag time.Duration) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.q[n-r.head] = receipt{done: true, lag: lag}
	var out []time.Duration
	for len(r.q) > 0 && r.q[0].done {
		out = append(out, r.q[0].lag)
		r.q = r.q[1:]
		r.head++
	}
	if len(r.q) == 0 {
		r.q = r.q[:0:0] // let the array go
	}
	return out
}

// clearPattern removes the keys matching p from this node's L1 and detaches
// the loads of them in flight, within patternBudget of matching work; a
// pattern beyond the limits, or one that needs more work, flushes the L1
// and detaches every load instead.
func (c *Cache) clearPattern(p string) {
	if h := c.opts.patterns.hook; h != nil {
		h(p)
	}
	if err := glob.Check(p); err != nil {
		c.patternFlush(p, err)
		return
	}
	b := &budget{m: glob.Compile(p)}
	b.left.Store(c.patternBudget())
	c.flights.forgetMatching(b.match)
	if c.l1 != nil {
		prefix, _ := glob.LiteralPrefix(p)
		c.stats.l1Removed.Add(uint64(c.l1.DeleteMatching(prefix, b.match)))
	}
	// The L1 keeps b.match to veto the fills of loads that began before p
	// (see local's pattern ring): from now on a budget spent by those
	// checks vetoes. Set before the check below, so that a check that
	// spends it in between is covered by one or the other.
	b.applied.Store(true)
	if b.spent.Load() {
		c.patternFlush(p, errPatternBudget)
	}
}

func (c *Cache) patternBudget() int64 {
	switch {
	case c.opts.patterns.unbounded:
		return 1 << 62
	case c.opts.patterns.budget > 0:
		return c.opts.patterns.budget
	}
	return patternBudget
}

// patternFlush stands in for a pattern that is not matched: it detaches
// every load in flight and flushes the L1, which removes more than the
// pattern would have.
func (c *Cache) patternFlush(p string, why error) {
	c.detachLoads()
	c.flushL1()
	if len(p) > 64 {
		p = fmt.Sprintf("%s... (%d bytes)", p[:64], len(p))
	}
	c.log.Warn("tiered: flushed L1 in place of a pattern", "pattern", p, "err", why)
	c.stats.record(c.rec, Event{Kind: EventPatternFlush, Err: why})
}

// budget matches keys against one pattern while its work budget lasts.
// Once spent while the pattern is applied it answers false at once: its
// caller flushes the L1 after, which covers every key it was not asked
// about or answered for falsely (a fill vetoed only by this pattern is then
// vetoed by the flush's epoch). Once the pattern was applied (applied), the
// L1 still asks it about fills; spent then, it answers true: the fill is
// vetoed, as no flush will come.
type budget struct {
	m       *glob.Matcher
	left    atomic.Int64
	spent   atomic.Bool
	applied atomic.Bool
}

func (b *budget) match(key string) bool {
	if b.spent.Load() {
		return b.applied.Load()
	}
	ok, used, done := b.m.MatchSteps(key, b.left.Load())
	if b.left.Add(-used) < 0 || !done {
		b.spent.Store(true)
		return b.applied.Load()
	}
	return ok
}
