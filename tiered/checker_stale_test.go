package tiered_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// The checker's MaxStale mode. A read that FetchInfo reports as stale
// (Served.Stale) is not classified by the strict rules: its stale age is
// the read's start minus the start of the invalidation call that first
// made its version old (the first write that bumped the id past it), and
// it must be under the window, for key and pattern invalidations alike. It
// must also not be older than a tag or clear invalidation applied on its
// node: those stay strict.
//
// Ages are measured on the nodes' shared manual clock, which only the
// writers move, before an invalidation call and never during one: the
// library then reads the same time at the call's start as the checker
// does, and the verdict depends on no timing.

// checkOpts are the checker's MaxStale settings.
type checkOpts struct {
	maxStale time.Duration // the group's MaxStale; 0: strict
	clock    *manualClock  // the nodes' clock; nil: the wall clock
	// step is the most a writer moves clock before each write.
	step time.Duration
}

// staleCounts are what the stale reads saw (checker.mu).
type staleCounts struct {
	served int
	maxAge time.Duration
	tooOld []string // reads past the window, or past a strict invalidation
}

func (s staleCounts) summary(window time.Duration) string {
	return fmt.Sprintf("; MaxStale %v: %d stale reads served, oldest %v, %d past the window or a strict invalidation",
		window, s.served, s.maxAge, len(s.tooOld))
}

// now is the time stale ages are measured on, in unix ns.
func (c *checker) now() int64 {
	if c.opts.clock != nil {
		return c.opts.clock.Now()
	}
	return time.Now().UnixNano()
}

// advance moves the clock by a random step (writers only, under wmu).
func (c *checker) advance() {
	if c.opts.clock != nil && c.opts.step > 0 {
		c.opts.clock.Add(rand.N(c.opts.step + 1))
	}
}

// classifyStale records a read of id that began at s and was served v as
// stale.
func (c *checker) classifyStale(s readStart, id, v string) {
	got := versionOf(c.t, v)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	c.stales.served++
	var first, strict *checkWrite
	c.logMu.RLock()
	for i, e := range c.log {
		if nv, ok := e.version[id]; !ok || nv <= got {
			continue
		}
		if first == nil {
			first = e
		}
		applied := e.origin == s.node && int64(i) < s.done || e.origin != s.node && uint64(e.rank[s.node]) <= s.received
		if strict == nil && e.strict && applied {
			strict = e
		}
	}
	c.logMu.RUnlock()
	bad := func(format string, args ...any) {
		c.stales.tooOld = append(c.stales.tooOld, fmt.Sprintf("node %d: Fetch(%q) = %s as stale: ", s.node, id, v)+fmt.Sprintf(format, args...))
	}
	switch {
	case first == nil:
		// The value is still the current one: a load read the source
		// after a writer bumped it and filled before that writer's
		// invalidation reached Redis, which then kept the (current)
		// value as the stale one. Flagged stale, and correct.
	case strict != nil:
		bad("after %s, which MaxStale does not cover, was applied on the node", strict.what)
	case first.started.Load() == 0:
		bad("before %s began", first.what)
	default:
		age := time.Duration(s.now - first.started.Load())
		c.stales.maxAge = max(c.stales.maxAge, age)
		if age >= c.opts.maxStale {
			bad("%v after %s began; the window is %v", age, first.what, c.opts.maxStale)
		}
	}
}

// runRandom is the randomized run of TestCheckerRandom on c: readers on
// every node, and a writer per node that invalidates by key, by pattern,
// by tag and by clearing the group.
func runRandom(t *testing.T, c *checker, ids []string, readersPerNode, readsPerReader, writesPerNode int) {
	nodes := len(c.nodes)
	var readsDone, writesDone atomic.Int64
	totalReads, totalWrites := int64(nodes*readersPerNode*readsPerReader), int64(nodes*writesPerNode)
	var wg sync.WaitGroup
	for n := range nodes {
		for range readersPerNode {
			wg.Go(func() {
				for i := range readsPerReader {
					id := ids[rand.IntN(len(ids))]
					load := c.load
					if rand.IntN(5) == 0 {
						load = nil // a Get
					}
					if err := c.read(n, id, load); err != nil {
						t.Error(err)
						readsDone.Add(int64(readsPerReader - i))
						return
					}
					readsDone.Add(1)
					yields(4)
				}
			})
		}
		wg.Go(func() {
			for range writesPerNode {
				k := writesDone.Add(1)
				for readsDone.Load() < (k-1)*totalReads/totalWrites {
					runtime.Gosched()
				}
				id := ids[rand.IntN(len(ids))]
				var err error
				switch rand.IntN(6) {
				case 0, 1:
					err = c.writeTag(n, id, false)
				case 2:
					err = c.writeTag(n, id, true)
				default:
					err = c.write(n, id, rand.IntN(3) == 0)
				}
				if err != nil {
					t.Error(err)
					return
				}
				yields(64)
			}
		})
	}
	wg.Wait()
}

// TestCheckerMaxStale runs the randomized checker with MaxStale on: key
// and pattern invalidations keep the previous value for the window, tags
// and clears stay strict. 0 strict-stale reads, 0 stale reads past the
// window (or past a strict invalidation), and after quiescence no tier
// holds an old version.
func TestCheckerMaxStale(t *testing.T) {
	const window = time.Minute
	ids := []string{"u1_a", "u1_b", "u2_a", "u2_b", "u3_a"}
	c := newCheckerWith(t, 4, ids, checkOpts{maxStale: window, clock: newManualClock(time.Now()), step: window / 6})
	// A run's interleavings are random: one in a few dozen serves no
	// stale value at all, which would check nothing of MaxStale, so the
	// run goes on (up to five rounds) until one did.
	for round := 0; round == 0 || c.stales.served == 0 && round < 5; round++ {
		runRandom(t, c, ids, 2, 120, 20)
		if t.Failed() {
			return
		}
	}
	c.quiesce()
	c.premise()
	t.Log(c.summary())
	if c.stales.served == 0 {
		t.Error("no read was served a stale value: the run checked nothing of MaxStale")
	}
	for i, s := range append(c.stale, c.stales.tooOld...) {
		if i == 10 {
			t.Errorf("... and more")
			break
		}
		t.Errorf("bad read: %s", s)
	}
	// Past every window, every tier serves the current version.
	c.opts.clock.Add(window)
	for _, o := range c.oldVersions() {
		t.Errorf("after quiescence: %s", o)
	}
}

// TestCheckerCatchesStaleWindow: node 0 reads u1_a; node 1 bumps and
// invalidates it; node 2 reads inside the window (stale, fine) and its
// load is held back; the clock passes the window's end, and nodes 0 and 2
// read again. With the window
// enforced no read is too old; with its end ignored (the switch) the
// checker finds one.
func TestCheckerCatchesStaleWindow(t *testing.T) {
	const window = time.Minute
	for _, protected := range []bool{true, false} {
		t.Run(fmt.Sprintf("window=%v", protected), func(t *testing.T) {
			clk := newManualClock(time.Now())
			c := newCheckerWith(t, 3, []string{"u1_a"}, checkOpts{maxStale: window, clock: clk})
			for _, n := range c.nodes {
				tiered.SetNoStaleWindow(n.cache, !protected)
			}
			if err := c.read(0, "u1_a", c.load); err != nil {
				t.Fatal(err)
			}
			if err := c.write(1, "u1_a", false); err != nil {
				t.Fatal(err)
			}
			c.quiesce()
			// A load held back keeps the stale value in its lease.
			block := make(chan struct{})
			var unblock sync.Once
			defer unblock.Do(func() { close(block) })
			if err := c.read(2, "u1_a", func(ctx context.Context, id string) (string, error) {
				<-block
				return c.load(ctx, id)
			}); err != nil {
				t.Fatal(err)
			}
			clk.Add(window)
			// Past the window, nodes 0 and 2 find the lease: they wait for
			// it (served the stale value only if the window's end is
			// ignored), and it is let go once both found it.
			busy := func(n int) uint64 { return c.nodes[n].group.Stats().LeasesBusy }
			before0, before2 := busy(0), busy(2)
			errs := make(chan error, 2)
			for _, n := range []int{0, 2} {
				go func() { errs <- c.read(n, "u1_a", c.load) }()
			}
			waitUntil(t, "both reads found the lease", func() bool { return busy(0) > before0 && busy(2) > before2 })
			unblock.Do(func() { close(block) })
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			t.Log(c.summary())
			if c.stales.served == 0 {
				t.Fatal("the read inside the window was not served stale")
			}
			if protected && (len(c.stale) > 0 || len(c.stales.tooOld) > 0) {
				t.Fatalf("with the window: bad reads %q %q", c.stale, c.stales.tooOld)
			}
			if !protected && len(c.stales.tooOld) == 0 {
				t.Fatal("with the window's end ignored the checker should find a read past it")
			}
		})
	}
}
