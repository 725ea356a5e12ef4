package tiered

import (
	"errors"
	"fmt"
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
// than that for ordinary patterns, which cost about one step per key byte. A pattern that needs more
// (a long run of wildcards against long keys) is given up and the whole
// L1 is flushed instead: safe, and counted (EventPatternFlush).
const patternBudget = 2 << 20

// patternQueueLen bounds the patterns received from the bus and not yet
// applied; when the queue is full the L1 is flushed instead.
const patternQueueLen = 256

var (
	errPatternBudget = errors.New("tiered: pattern matching exceeded its work budget")
	errPatternQueue  = errors.New("tiered: too many patterns waiting to be applied")
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
		case m := <-c.patternQ:
			c.applyReceivedPatterns(m)
		}
	}
}

// queuePatterns hands a received pattern message to patternLoop. If the
// queue is full, it flushes the L1 and detaches every load in flight
// instead, which does all that applying m would (its keys left Redis
// before it was sent), and drops m.
func (c *Cache) queuePatterns(m bus.Message) {
	if c.opts.patterns.inline {
		c.applyReceivedPatterns(m)
		return
	}
	select {
	case c.patternQ <- m:
	default:
		c.patternFlush(fmt.Sprint(m.Items), errPatternQueue)
		lag := time.Duration(time.Now().UnixNano() - m.Sent)
		c.stats.record(c.rec, Event{Kind: EventInvalidationReceived, Duration: lag})
	}
}

// applyReceivedPatterns applies the patterns of m and records it as
// received.
func (c *Cache) applyReceivedPatterns(m bus.Message) {
	c.applyLocal(nil, m.Items)
	lag := time.Duration(time.Now().UnixNano() - m.Sent)
	c.stats.record(c.rec, Event{Kind: EventInvalidationReceived, Duration: lag})
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
	c.flights.forgetMatching(func(string) bool { return true })
	c.flushL1()
	if len(p) > 64 {
		p = fmt.Sprintf("%s... (%d bytes)", p[:64], len(p))
	}
	c.log.Warn("tiered: flushed L1 in place of a pattern", "pattern", p, "err", why)
	c.stats.record(c.rec, Event{Kind: EventPatternFlush, Err: why})
}

// budget matches keys against one pattern while its work budget lasts.
// Once spent it answers false at once: its caller flushes the L1 after,
// which covers every key it was not asked about or answered for falsely
// (a fill vetoed only by this pattern is then vetoed by the flush's epoch).
type budget struct {
	m     *glob.Matcher
	left  atomic.Int64
	spent atomic.Bool
}

func (b *budget) match(key string) bool {
	if b.spent.Load() {
		return false
	}
	ok, used, done := b.m.MatchSteps(key, b.left.Load())
	if b.left.Add(-used) < 0 || !done {
		b.spent.Store(true)
		return false
	}
	return ok
}
