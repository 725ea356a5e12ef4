package tiered_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// fleetNode is one node of a test fleet: its own client, cache and group,
// and a channel of the events the test waits for.
type fleetNode struct {
	rdb    redis.UniversalClient
	cache  *tiered.Cache
	group  *tiered.Group[string]
	events chan tiered.Event
	mu     sync.Mutex // protects lags
	lags   []time.Duration
}

var waitedEvents = []tiered.EventKind{
	tiered.EventInvalidationReceived, tiered.EventBusLost, tiered.EventBusRestored, tiered.EventBusGap,
}

func newFleetNode(t *testing.T, addr string, o tiered.Options) *fleetNode {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return newFleetNodeOn(t, rdb, o)
}

// nodeFactory makes a fleet node with options o; tests that run against
// several deployments (one server, a cluster) take one.
type nodeFactory func(t *testing.T, o tiered.Options) *fleetNode

// newFleetNodeOn makes a fleet node on its own client rdb.
func newFleetNodeOn(t *testing.T, rdb redis.UniversalClient, o tiered.Options) *fleetNode {
	t.Helper()
	n := &fleetNode{events: make(chan tiered.Event, 4096), rdb: rdb}
	o.Redis = n.rdb
	if o.Namespace == "" {
		o.Namespace = "fleet"
	}
	o.Recorder = tiered.RecorderFunc(func(e tiered.Event) {
		if !slices.Contains(waitedEvents, e.Kind) {
			return
		}
		if e.Kind == tiered.EventInvalidationReceived {
			n.mu.Lock()
			n.lags = append(n.lags, e.Duration)
			n.mu.Unlock()
		}
		n.events <- e
	})
	n.cache = newCache(t, o)
	n.group = newGroup[string](t, n.cache, "post", tiered.GroupOptions{})
	if err := n.cache.WaitBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.expect(t, tiered.EventBusRestored)
	return n
}

// expect waits for the node's next awaited event and fails unless it is of
// kind want.
func (n *fleetNode) expect(t *testing.T, want tiered.EventKind, allowed ...tiered.EventKind) tiered.Event {
	t.Helper()
	select {
	case e := <-n.events:
		if e.Kind != want && !slices.Contains(allowed, e.Kind) {
			t.Fatalf("event = %v; want %v", e.Kind, want)
		}
		return e
	case <-time.After(10 * time.Second): // a hang guard, not a synchronization
		t.Fatalf("no %v within 10s", want)
	}
	return tiered.Event{}
}

// expectPast waits for the node's next event of kind want, passing over
// events of the kinds in skip.
func (n *fleetNode) expectPast(t *testing.T, want tiered.EventKind, skip ...tiered.EventKind) {
	t.Helper()
	for {
		e := n.expect(t, want, skip...)
		if e.Kind == want {
			return
		}
	}
}

func constLoader(v string) tiered.LoaderFunc[string] {
	return func(context.Context, string) (string, error) { return v, nil }
}

// inL1 reports whether the node's L1 serves id. It loads nothing (Get), so
// it writes nothing to Redis; an L1 miss may find Redis unreachable, which
// does not matter here.
func (n *fleetNode) inL1(t *testing.T, id string) bool {
	t.Helper()
	before := n.group.Stats().L1Hits
	_, _ = n.group.Get(context.Background(), id)
	return n.group.Stats().L1Hits > before
}

func TestInvalidationReachesEveryNode(t *testing.T) {
	rdb := newReal(t)
	addr := rdb.Options().Addr
	invalidationReachesEveryNode(t, rdb, func(t *testing.T, o tiered.Options) *fleetNode { return newFleetNode(t, addr, o) })
}

func invalidationReachesEveryNode(t *testing.T, rdb redis.UniversalClient, newNode nodeFactory) {
	nodes := []*fleetNode{newNode(t, tiered.Options{}), newNode(t, tiered.Options{}), newNode(t, tiered.Options{})}
	ctx := context.Background()
	ids := []string{"user_1_posts", "user_1_profile", "user_10_posts", "other", "solo"}
	for _, n := range nodes {
		for _, id := range ids {
			if _, err := n.group.Fetch(ctx, id, constLoader("v1")); err != nil {
				t.Fatal(err)
			}
		}
		n.cache.WaitL1()
		for _, id := range ids {
			if !n.inL1(t, id) {
				t.Fatalf("%s not in L1 after Fetch", id)
			}
		}
	}
	if err := nodes[0].group.Invalidate(ctx, "solo"); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].cache.InvalidatePattern(ctx, "post:user_1_*"); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		n.expect(t, tiered.EventInvalidationReceived)
		n.expect(t, tiered.EventInvalidationReceived)
	}
	for i, n := range nodes {
		for _, id := range ids {
			want := !slices.Contains([]string{"solo", "user_1_posts", "user_1_profile"}, id)
			if got := n.inL1(t, id); got != want {
				t.Errorf("node %d: %s in L1 = %v; want %v", i, id, got, want)
			}
		}
	}
	for _, id := range []string{"solo", "user_1_posts", "user_1_profile"} {
		if rdb.Exists(ctx, "fleet:post:"+id).Val() != 0 && !nodes[0].inL1(t, id) {
			t.Errorf("%s still in Redis", id)
		}
	}
	t.Logf("propagation lag: %v", nodes[1].lags)
}

// TestNoStaleReadAfterCut: node B's subscription is cut; node A updates a
// value meanwhile; B, which held the old value in L1, must not serve it,
// during the cut or after it. With the flush rule switched off, B serves
// the old value: the test catches the bug the rule prevents.
func TestNoStaleReadAfterCut(t *testing.T) {
	for _, protected := range []bool{true, false} {
		t.Run(fmt.Sprintf("flush=%v", protected), func(t *testing.T) {
			staleSeen := cutScenario(t, protected)
			if protected && staleSeen {
				t.Fatal("node B served the value invalidated while its subscription was cut")
			}
			if !protected && !staleSeen {
				t.Fatal("without the flush rule B should have served the stale value; the test cannot catch the bug")
			}
		})
	}
}

func cutScenario(t *testing.T, flush bool) (staleSeen bool) {
	srv := startServer(t)
	proxy := newProxy(t, srv)
	ctx := context.Background()
	a := newFleetNode(t, srv, tiered.Options{})
	b := newFleetNode(t, proxy.Addr(), tiered.Options{})
	tiered.SetNoFlush(b.cache, !flush)
	if _, err := b.group.Fetch(ctx, "1", constLoader("old")); err != nil {
		t.Fatal(err)
	}
	b.cache.WaitL1()
	proxy.Cut()
	b.expect(t, tiered.EventBusLost)
	if err := a.group.Set(ctx, "1", "new"); err != nil {
		t.Fatal(err)
	}
	v, err := b.group.Fetch(ctx, "1", constLoader("new")) // Redis unreachable: L1 or loader
	if err != nil {
		t.Fatal(err)
	}
	staleSeen = v == "old"
	proxy.Heal()
	b.expect(t, tiered.EventBusRestored)
	v, err = b.group.Fetch(ctx, "1", constLoader("loaded"))
	if err != nil {
		t.Fatal(err)
	}
	return staleSeen || v == "old"
}

// TestDegradedDuringCut: while Redis and the bus are unreachable, an entry
// loaded meanwhile is served from L1 only while younger than
// DegradedL1TTL. (The degraded maximum age on its own, for entries read from
// a reachable Redis while only the subscription is down, is proved in
// package local: TestValidity.)
func TestDegradedDuringCut(t *testing.T) {
	srv := startServer(t)
	proxy := newProxy(t, srv)
	clk := newManualClock(time.Now())
	b := newFleetNode(t, proxy.Addr(), tiered.WithClock(tiered.Options{DegradedL1TTL: time.Second}, clk))
	proxy.Cut()
	b.expect(t, tiered.EventBusLost)
	clk.Set(time.Now())
	if _, err := b.group.Fetch(context.Background(), "2", constLoader("during")); err != nil {
		t.Fatal(err)
	}
	b.cache.WaitL1()
	if !b.inL1(t, "2") {
		t.Fatal("a young entry is not served while degraded")
	}
	clk.Add(time.Second + time.Millisecond)
	if b.inL1(t, "2") {
		t.Fatal("an entry older than DegradedL1TTL is served from L1")
	}
}

// TestRedisRestartFlushes: entries from before a Redis restart are not
// served after it; with the flush rule switched off they are.
func TestRedisRestartFlushes(t *testing.T) {
	for _, protected := range []bool{true, false} {
		t.Run(fmt.Sprintf("flush=%v", protected), func(t *testing.T) {
			srv := startRedis(t)
			ctx := context.Background()
			b := newFleetNode(t, srv.Addr(), tiered.Options{})
			tiered.SetNoFlush(b.cache, !protected)
			if _, err := b.group.Fetch(ctx, "1", constLoader("old")); err != nil {
				t.Fatal(err)
			}
			b.cache.WaitL1()
			srv.Kill()
			b.expect(t, tiered.EventBusLost)
			srv.Restart()
			b.expect(t, tiered.EventBusRestored)
			if got := b.inL1(t, "1"); got == protected {
				t.Fatalf("entry from before the restart served from L1 = %v; want %v", got, !protected)
			}
			if s := b.cache.Stats(); protected && s.Flushes < 2 {
				t.Fatalf("Flushes = %d; want a flush on the loss and one on the recovery", s.Flushes)
			}
		})
	}
}

// TestLostLastMessageCaughtByHeartbeat: a message vanishes after using up
// its sequence number, and only the sender's heartbeat, which carries that
// number, tells the receiver. With the flush rule switched off, the
// receiver keeps serving the invalidated entry.
func TestLostLastMessageCaughtByHeartbeat(t *testing.T) {
	for _, protected := range []bool{true, false} {
		t.Run(fmt.Sprintf("flush=%v", protected), func(t *testing.T) {
			rdb := newReal(t)
			addr := rdb.Options().Addr
			ctx := context.Background()
			a := newFleetNode(t, addr, tiered.Options{Heartbeat: 50 * time.Millisecond})
			b := newFleetNode(t, addr, tiered.Options{Heartbeat: 50 * time.Millisecond})
			tiered.SetNoFlush(b.cache, !protected)
			if err := a.group.Invalidate(ctx, "x"); err != nil { // b learns a's sequence
				t.Fatal(err)
			}
			b.expect(t, tiered.EventInvalidationReceived)
			if _, err := b.group.Fetch(ctx, "1", constLoader("old")); err != nil {
				t.Fatal(err)
			}
			b.cache.WaitL1()
			tiered.DropNextPublish(a.cache)
			if err := a.group.Set(ctx, "1", "new"); err != nil {
				t.Fatal(err)
			}
			// a's next heartbeat carries the lost number. On a loaded machine
			// b may also miss its own heartbeat and report a loss first; that
			// loss is not what this test is about, so it waits past it.
			b.expectPast(t, tiered.EventBusGap, tiered.EventBusLost, tiered.EventBusRestored)
			if got := b.inL1(t, "1"); got == protected {
				t.Fatalf("after the gap the invalidated entry is served from L1 = %v; want %v", got, !protected)
			}
		})
	}
}

// TestFailedInvalidationIsRetried: an invalidation that cannot reach Redis
// returns its error, waits in the retry queue, and is applied in Redis once
// Redis is reachable again.
func TestFailedInvalidationIsRetried(t *testing.T) {
	srv := startServer(t)
	proxy := newProxy(t, srv)
	ctx := context.Background()
	retried := make(chan struct{}, 1)
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "retry", Recorder: tiered.RecorderFunc(func(e tiered.Event) {
		if e.Kind == tiered.EventInvalidationRetried {
			retried <- struct{}{}
		}
	})})
	g := newGroup[string](t, c, "post", tiered.GroupOptions{})
	if err := g.Set(ctx, "1", "old"); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	if err := g.Invalidate(ctx, "1"); err == nil {
		t.Fatal("Invalidate with Redis unreachable returned no error")
	}
	if n := c.PendingInvalidations(); n != 1 {
		t.Fatalf("PendingInvalidations = %d; want 1", n)
	}
	direct := redis.NewClient(&redis.Options{Addr: srv})
	t.Cleanup(func() { direct.Close() })
	if direct.Exists(ctx, "retry:post:1").Val() != 1 {
		t.Fatal("the key left Redis although Redis was unreachable")
	}
	proxy.Heal()
	select {
	case <-retried:
	case <-time.After(30 * time.Second): // a hang guard, not a synchronization
		t.Fatal("the invalidation was not retried within 30s")
	}
	if direct.Exists(ctx, "retry:post:1").Val() != 0 {
		t.Fatal("the retried invalidation did not remove the key from Redis")
	}
	if n := c.PendingInvalidations(); n != 0 {
		t.Fatalf("PendingInvalidations after the retry = %d; want 0", n)
	}
}
