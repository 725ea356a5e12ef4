package tiered_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/glob"
	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

// The randomized checker: several nodes (each its own Cache and go-redis
// client) on one real redis-server, a versioned source of truth, slow
// loaders, writers that bump versions and then invalidate (by key and by
// pattern), and readers on every node. Every read is classified with the
// definitions of docs/guarantees.md ("Definitions"):
//
//   - stale: the read returns a value whose invalidation had already been
//     applied on the reading node (issued there, or received from the bus)
//     before the read began. tiercache allows none.
//   - late: the read returns a value that another node had invalidated
//     before the read began but whose message had not yet arrived; late
//     reads are bounded by the bus lag, and are counted.
//
// Version v of an id is invalidated by the first invalidation that a
// writer issues after bumping the id past v. The checker knows exactly
// when each node applied each invalidation, without any clock:
//
//   - on the writer's node, the invalidation is applied inside the call
//     (Redis, then the local L1, then the bus): it counts as applied once
//     the call returned (a read that begins inside the call is not
//     classified as stale: this errs on the side of missing one, never of
//     inventing one);
//   - writes are serialized (checker.wmu), so their messages reach Redis,
//     and so every subscriber, in one global order; each node applies the
//     messages of the other nodes in that order, on its bus goroutine,
//     and counts each one (Stats.InvalidationsReceived) after applying it.
//     A read that began when its node's count was n began after the node
//     had applied the first n messages it receives.
//
// The verdict depends on no timing: loaders wait a random number of
// scheduler yields, never a duration, and every interleaving a case needs
// is forced with channels.

// checker is the fleet, its source of truth, and what the reads saw.
type checker struct {
	t     *testing.T
	nodes []*fleetNode
	ids   []string
	l2    *remote.Store // reads Redis directly, bypassing every node

	dbMu sync.Mutex     // protects db
	db   map[string]int // the source of truth: id -> current version

	wmu   sync.Mutex   // serializes writes, so that messages have one global order
	logMu sync.RWMutex // protects log (appends only)
	log   []*checkWrite
	done  atomic.Int64 // how many writes of log have returned on the writer's side

	opts checkOpts

	mu     sync.Mutex // protects the counts below
	stales staleCounts
	reads  int
	absent int // Get found nothing
	late   int
	lags   []time.Duration
	stale  []string // descriptions of the stale reads
}

// checkWrite is one write: the versions it made current, and where each
// node's count of received messages must be for it to be applied there.
type checkWrite struct {
	origin  int            // the writer's node
	version map[string]int // id -> the version the bump made current
	rank    []int          // rank[n]: node n has applied it once it applied rank[n] messages (n != origin)
	what    string
	// returned is when the writer's call returned; written before done
	// is incremented past this write, read only after done was seen there.
	returned time.Time
	// started is when the invalidation call began (checker.now, unix
	// ns; 0 before), what MaxStale windows count from; strict says it is
	// an invalidation MaxStale does not cover (a tag, a clear).
	started atomic.Int64
	strict  bool
}

func newChecker(t *testing.T, nodes int, ids []string) *checker {
	return newCheckerWith(t, nodes, ids, checkOpts{})
}

// newCheckerWith is newChecker with the group's MaxStale window and the
// nodes' clock set by o.
func newCheckerWith(t *testing.T, nodes int, ids []string, o checkOpts) *checker {
	t.Helper()
	addr := startServer(t)
	c := &checker{t: t, ids: ids, db: make(map[string]int), opts: o}
	for range nodes {
		// Generous timeouts: on a loaded machine under -race, a Redis call
		// must not time out (the run would be void), and a node must not
		// count its own subscription as silent, which would flush its L1
		// and could lose a message.
		to := slowMachine(tiered.Options{})
		if o.clock != nil {
			to = tiered.WithClock(to, o.clock)
		}
		n := newFleetNode(t, addr, to)
		// The checked group carries tags (u1_a: "u1" and "all"), so that
		// writers can invalidate by tag and clear it too.
		n.group = newGroup[string](t, n.cache, "tpost", tiered.GroupOptions{Tags: tagOf, MaxStale: o.maxStale})
		c.nodes = append(c.nodes, n)
	}
	var err error
	if c.l2, err = remote.New(c.nodes[0].rdb, remote.Options{Namespace: "fleet"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		c.db[id] = 1
	}
	return c
}

func value(id string, version int) string { return id + "@" + strconv.Itoa(version) }

func versionOf(t *testing.T, v string) int {
	_, s, _ := strings.Cut(v, "@")
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Errorf("read %q: not a versioned value", v)
	}
	return n
}

// current returns id's version in the source of truth.
func (c *checker) current(id string) int {
	c.dbMu.Lock()
	defer c.dbMu.Unlock()
	return c.db[id]
}

// yields gives the scheduler away up to n-1 times: the jitter of a slow
// loader, which the verdict never depends on.
func yields(n int) {
	for range rand.IntN(n) {
		runtime.Gosched()
	}
}

// load is the loader of every read: it reads the source of truth, slowly.
func (c *checker) load(_ context.Context, id string) (string, error) {
	yields(16)
	v := value(id, c.current(id))
	yields(16)
	return v, nil
}

// write bumps the version of id (byPattern false) or of every id the
// pattern "post:<prefix>*" matches (byPattern true), then invalidates, on
// node w, by key with Group.Invalidate or by pattern with
// Cache.InvalidatePattern.
func (c *checker) write(w int, id string, byPattern bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.advance()
	e := &checkWrite{origin: w, version: map[string]int{}, rank: make([]int, len(c.nodes))}
	n := c.nodes[w]
	var pattern string
	if byPattern {
		prefix, _, _ := strings.Cut(id, "_")
		pattern = n.group.Key(prefix + "_*")
		e.what = fmt.Sprintf("node %d: InvalidatePattern(%q)", w, pattern)
	} else {
		e.what = fmt.Sprintf("node %d: Invalidate(%q)", w, id)
	}
	c.dbMu.Lock()
	for _, x := range c.ids {
		if x == id || byPattern && glob.Match(pattern, n.group.Key(x)) {
			c.db[x]++
			e.version[x] = c.db[x]
		}
	}
	c.dbMu.Unlock()
	c.logMu.Lock()
	if len(c.log) > 0 {
		copy(e.rank, c.log[len(c.log)-1].rank)
	}
	for r := range e.rank {
		if r != w {
			e.rank[r]++
		}
	}
	c.log = append(c.log, e)
	c.logMu.Unlock()
	var err error
	e.started.Store(c.now())
	if byPattern {
		err = n.cache.InvalidatePattern(context.Background(), pattern)
	} else {
		err = n.group.Invalidate(context.Background(), id)
	}
	e.returned = time.Now()
	c.done.Add(1)
	return err
}

// writeTag bumps the version of every id tagged with id's prefix ("u1"
// for u1_a) and invalidates the tag with Cache.InvalidateTags on node w;
// with clear, it bumps every id and clears the group with Group.Clear.
func (c *checker) writeTag(w int, id string, clear bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.advance()
	e := &checkWrite{origin: w, version: map[string]int{}, rank: make([]int, len(c.nodes))}
	n := c.nodes[w]
	tag, _, _ := strings.Cut(id, "_")
	e.what = fmt.Sprintf("node %d: InvalidateTags(%q)", w, tag)
	if clear {
		e.what = fmt.Sprintf("node %d: Clear", w)
	}
	c.dbMu.Lock()
	for _, x := range c.ids {
		if clear || slices.Contains(tagOf(x, ""), tag) {
			c.db[x]++
			e.version[x] = c.db[x]
		}
	}
	c.dbMu.Unlock()
	c.logMu.Lock()
	if len(c.log) > 0 {
		copy(e.rank, c.log[len(c.log)-1].rank)
	}
	for r := range e.rank {
		if r != w {
			e.rank[r]++
		}
	}
	e.strict = true
	c.log = append(c.log, e)
	c.logMu.Unlock()
	var err error
	e.started.Store(c.now())
	if clear {
		err = n.group.Clear(context.Background())
	} else {
		err = n.cache.InvalidateTags(context.Background(), tag)
	}
	e.returned = time.Now()
	c.done.Add(1)
	return err
}

// readStart is what a read records as it begins: which invalidations had
// been applied on its node by then, and which had returned anywhere.
type readStart struct {
	node     int
	received uint64 // the node's count of applied messages
	done     int64  // writes returned on their writer's side
	at       time.Time
	now      int64 // checker.now: what stale ages count to
}

func (c *checker) begin(node int) readStart {
	// done first: a write counted there returned before the node count is
	// read, so for the writer's own node nothing is counted twice.
	done := c.done.Load()
	return readStart{node: node, received: c.nodes[node].cache.Stats().InvalidationsReceived, done: done, at: time.Now(), now: c.now()}
}

// classify records a read of id that began at s and returned v (found
// false: not found), by the definitions of stale and late above.
func (c *checker) classify(s readStart, id, v string, found bool, how string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	if !found {
		c.absent++
		return
	}
	got := versionOf(c.t, v)
	applied := 0 // the newest version of id that an invalidation applied on the node made current
	var first *checkWrite
	c.logMu.RLock()
	for i, e := range c.log {
		nv, ok := e.version[id]
		if !ok {
			continue
		}
		returned := int64(i) < s.done
		if nv > applied && (e.origin == s.node && returned || e.origin != s.node && uint64(e.rank[s.node]) <= s.received) {
			applied = nv
		}
		if first == nil && returned && nv > got {
			first = e
		}
	}
	c.logMu.RUnlock()
	switch {
	case got < applied:
		c.stale = append(c.stale, fmt.Sprintf("node %d: %s(%q) = %s, but version %d was made current and its invalidation applied on the node before the read began",
			s.node, how, id, v, applied))
	case first != nil:
		c.late++
		c.lags = append(c.lags, s.at.Sub(first.returned))
	}
}

// read runs one Fetch (load non-nil) or Get on node n and classifies it.
func (c *checker) read(n int, id string, load tiered.LoaderFunc[string]) error {
	g := c.nodes[n].group
	s := c.begin(n)
	if load == nil {
		v, err := g.Get(context.Background(), id)
		if err != nil && !errors.Is(err, tiered.ErrNotCached) {
			return fmt.Errorf("node %d: Get(%q): %w", n, id, err)
		}
		c.classify(s, id, v, err == nil, "Get")
		return nil
	}
	v, served, err := g.FetchInfo(context.Background(), id, load)
	if err != nil {
		return fmt.Errorf("node %d: Fetch(%q): %w", n, id, err)
	}
	if served.Stale {
		c.classifyStale(s, id, v)
		return nil
	}
	c.classify(s, id, v, true, "Fetch")
	return nil
}

// quiesce waits until every node has applied every message of the
// others: then nothing is in flight on the bus.
func (c *checker) quiesce() {
	c.t.Helper()
	c.logMu.RLock()
	var want []int
	if len(c.log) > 0 {
		want = c.log[len(c.log)-1].rank
	}
	c.logMu.RUnlock()
	for i, n := range c.nodes {
		if want == nil {
			return
		}
		for n.cache.Stats().InvalidationsReceived < uint64(want[i]) {
			n.expect(c.t, tiered.EventInvalidationReceived)
		}
		if got := n.cache.Stats().InvalidationsReceived; got != uint64(want[i]) {
			c.t.Fatalf("node %d applied %d messages; %d were sent to it", i, got, want[i])
		}
	}
}

// oldVersions returns, once the fleet is quiescent, every place that
// holds a version of an id other than the current one: Redis, read
// directly, and each node's L1, read with Group.Get (a hit counted in
// L1Hits came from L1).
func (c *checker) oldVersions() []string {
	c.t.Helper()
	ctx := context.Background()
	var old []string
	for _, id := range c.ids {
		cur := c.current(id)
		rec, err := c.l2.Get(ctx, c.nodes[0].group.Key(id))
		if err != nil {
			c.t.Fatal(err)
		}
		if rec.Kind == remote.KindValue && !c.tagInvalidated(rec) {
			var v string
			if err := json.Unmarshal(rec.Payload, &v); err != nil {
				c.t.Fatal(err)
			}
			if got := versionOf(c.t, v); got != cur {
				old = append(old, fmt.Sprintf("Redis holds %s; current is version %d", v, cur))
			}
		}
		for i, n := range c.nodes {
			before := n.group.Stats().L1Hits
			v, err := n.group.Get(ctx, id)
			if errors.Is(err, tiered.ErrNotCached) {
				continue
			}
			if err != nil {
				c.t.Fatal(err)
			}
			if got := versionOf(c.t, v); got != cur {
				tier := "Redis"
				if n.group.Stats().L1Hits > before {
					tier = "its L1"
				}
				old = append(old, fmt.Sprintf("node %d serves %s from %s; current is version %d", i, v, tier, cur))
			}
		}
	}
	return old
}

// tagInvalidated reports whether a tag of rec was invalidated since its
// load began: such a value stays in Redis until a reader finds it (or its
// TTL ends), and no reader is served it.
func (c *checker) tagInvalidated(rec remote.Record) bool {
	c.t.Helper()
	ids := []string{"n", "g:tpost"}
	for _, t := range rec.Tags {
		ids = append(ids, "t:"+t)
	}
	stamps, err := c.l2.TagStamps(context.Background(), ids)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range stamps {
		if s > 0 && s >= rec.Begin {
			return true
		}
	}
	return false
}

// premise fails the test if a node lost messages: the message order the
// classification relies on would no longer hold.
func (c *checker) premise() {
	c.t.Helper()
	for i, n := range c.nodes {
		s := n.cache.Stats()
		if s.BusLost > 0 || s.BusGaps > 0 || s.RedisErrors > 0 || s.InvalidationsRetried > 0 {
			c.t.Fatalf("node %d: bus lost %d, gaps %d, redis errors %d, retried invalidations %d: the run is void (a healthy loopback Redis shows none)",
				i, s.BusLost, s.BusGaps, s.RedisErrors, s.InvalidationsRetried)
		}
	}
}

func (c *checker) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lags := slices.Clone(c.lags)
	slices.Sort(lags)
	var p50, maxLag time.Duration
	if len(lags) > 0 {
		p50, maxLag = lags[len(lags)/2], lags[len(lags)-1]
	}
	sum := fmt.Sprintf("%d reads (%d not found), %d stale, %d late (lag p50 %v, max %v), %d writes",
		c.reads, c.absent, len(c.stale), c.late, p50, maxLag, len(c.log))
	if c.opts.maxStale > 0 {
		sum += c.stales.summary(c.opts.maxStale)
	}
	return sum
}

// TestCheckerRandom runs the randomized checker on 4 nodes: writers
// invalidate by key, by pattern, by tag and by clearing the group; 0 stale
// reads, and after quiescence no tier of any node holds an old version.
func TestCheckerRandom(t *testing.T) {
	const nodes, readersPerNode, readsPerReader, writesPerNode = 4, 2, 120, 20
	ids := []string{"u1_a", "u1_b", "u2_a", "u2_b", "u3_a"}
	c := newChecker(t, nodes, ids)
	runRandom(t, c, ids, readersPerNode, readsPerReader, writesPerNode)
	if t.Failed() {
		return
	}
	c.quiesce()
	c.premise()
	t.Log(c.summary())
	for i, s := range c.stale {
		if i == 10 {
			t.Errorf("... and %d more stale reads", len(c.stale)-i)
			break
		}
		t.Errorf("stale read: %s", s)
	}
	for _, o := range c.oldVersions() {
		t.Errorf("after quiescence: %s", o)
	}
}

// staleFillScript forces the classic race on the checker's fleet: node 0
// loads u1_a (reading version 1) and blocks; node 1 bumps u1_a to version
// 2 and invalidates it; every node applies the invalidation; the load
// returns. Then node 0 and node 2 read u1_a.
func staleFillScript(t *testing.T, c *checker) {
	read, release := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- c.read(0, "u1_a", func(ctx context.Context, id string) (string, error) {
			v, err := c.load(ctx, id)
			close(read)
			<-release
			return v, err
		})
	}()
	<-read
	if err := c.write(1, "u1_a", false); err != nil {
		t.Fatal(err)
	}
	c.quiesce()
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c.nodes[0].cache.WaitL1()
	for _, n := range []int{0, 2} {
		if err := c.read(n, "u1_a", c.load); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckerCatchesStaleFill runs the forced race with the fleet's
// compare-and-set fills on (0 stale reads, no old version anywhere) and
// off (the checker must find stale reads and an old version).
func TestCheckerCatchesStaleFill(t *testing.T) {
	for _, protected := range []bool{true, false} {
		t.Run(fmt.Sprintf("cas=%v", protected), func(t *testing.T) {
			c := newChecker(t, 3, []string{"u1_a"})
			for _, n := range c.nodes {
				tiered.SetNoCAS(n.cache, !protected)
			}
			staleFillScript(t, c)
			c.quiesce()
			old := c.oldVersions()
			t.Log(c.summary())
			if protected && (len(c.stale) > 0 || len(old) > 0) {
				t.Fatalf("with compare-and-set: stale reads %q, old versions %q", c.stale, old)
			}
			if !protected && (len(c.stale) == 0 || len(old) == 0) {
				t.Fatalf("without compare-and-set the checker should find stale reads and an old version; found %q and %q", c.stale, old)
			}
		})
	}
}

// TestCheckerJoinAfterInvalidation: a Fetch that begins after an
// invalidation of its key was applied on its node must not return the
// result of a load that began before it. Node 0 loads u1_a (reading
// version 1) and blocks; node 0 itself bumps u1_a to version 2 and
// invalidates it; then a second Fetch of u1_a begins on node 0, and the
// first load is released once that Fetch either joined it or finished on
// its own.
func TestCheckerJoinAfterInvalidation(t *testing.T) {
	c := newChecker(t, 2, []string{"u1_a"})
	g := c.nodes[0].group
	read, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- c.read(0, "u1_a", func(ctx context.Context, id string) (string, error) {
			v, err := c.load(ctx, id)
			close(read)
			<-release
			return v, err
		})
	}()
	<-read
	if err := c.write(0, "u1_a", false); err != nil {
		t.Fatal(err)
	}
	joinedBefore := g.Stats().Collapsed
	var second atomic.Pointer[error]
	go func() {
		err := c.read(0, "u1_a", c.load)
		second.Store(&err)
	}()
	waitUntil(t, "the second Fetch joined the first load or returned", func() bool {
		return g.Stats().Collapsed > joinedBefore || second.Load() != nil
	})
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second Fetch returned", func() bool { return second.Load() != nil })
	if err := *second.Load(); err != nil {
		t.Fatal(err)
	}
	c.quiesce()
	t.Log(c.summary())
	if len(c.stale) > 0 {
		t.Fatalf("stale reads: %q", c.stale)
	}
}

// TestCheckerCatchesStaleTag: node 0 caches u1_a; node 1 bumps every id
// tagged u1 and invalidates the tag; once every node applied it, nodes 0
// and 2 read u1_a. With the tag checks on there is no stale read; with
// them off (the switch) the checker must find one.
func TestCheckerCatchesStaleTag(t *testing.T) {
	for _, protected := range []bool{true, false} {
		t.Run(fmt.Sprintf("checks=%v", protected), func(t *testing.T) {
			c := newChecker(t, 3, []string{"u1_a", "u2_a"})
			for _, n := range c.nodes {
				tiered.SetNoTagCheck(n.cache, !protected)
			}
			for _, n := range []int{0, 2} {
				if err := c.read(n, "u1_a", c.load); err != nil {
					t.Fatal(err)
				}
				c.nodes[n].cache.WaitL1()
			}
			if err := c.writeTag(1, "u1_a", false); err != nil {
				t.Fatal(err)
			}
			c.quiesce()
			for _, n := range []int{0, 2} {
				if err := c.read(n, "u1_a", c.load); err != nil {
					t.Fatal(err)
				}
			}
			t.Log(c.summary())
			if protected && len(c.stale) > 0 {
				t.Fatalf("with the tag checks: stale reads %q", c.stale)
			}
			if !protected && len(c.stale) == 0 {
				t.Fatal("without the tag checks the checker should find stale reads")
			}
		})
	}
}
