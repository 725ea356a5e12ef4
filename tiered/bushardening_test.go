package tiered_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/glob"
	"github.com/tiercache/tiercache/tiered"
)

// hardNode is one node of the hardening tests: its cache, a group, and a
// channel of the invalidations it received.
type hardNode struct {
	cache    *tiered.Cache
	group    *tiered.Group[string]
	received chan struct{}
	flushed  chan error // EventPatternFlush
}

func newHardNode(t *testing.T, addr string, o tiered.Options) *hardNode {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	n := &hardNode{received: make(chan struct{}, 64), flushed: make(chan error, 64)}
	o.Redis, o.Namespace = rdb, "hard"
	o.Recorder = tiered.RecorderFunc(func(e tiered.Event) {
		switch e.Kind {
		case tiered.EventInvalidationReceived:
			n.received <- struct{}{}
		case tiered.EventPatternFlush:
			n.flushed <- e.Err
		}
	})
	n.cache = newCache(t, o)
	n.group = newGroup[string](t, n.cache, "g", tiered.GroupOptions{})
	return n
}

// wait waits for a value on ch for up to d; it reports whether one came.
func wait[T any](ch <-chan T, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// pathological is the pattern of issue 17: matching it costs
// O(len(pattern) x len(key)) per key.
var pathological = "*" + strings.Repeat("?", 3000) + "b"

// TestSlowPatternDoesNotDelayKeys drives issue 17's example. The pattern is
// beyond the limits, so InvalidatePattern refuses it and leaves Redis and
// the bus alone; a node that does not check (an older release, a
// stranger) publishes it anyway. Node a holds a key with a 100 KB id while
// the pattern's application is held in flight by a hook; a key Set on
// node b must be applied on a meanwhile. Applied inline, as before, the
// key waits behind the pattern.
func TestSlowPatternDoesNotDelayKeys(t *testing.T) {
	srv := startRedis(t)
	for _, old := range []bool{false, true} {
		if err := slowPatternDelaysKeys(t, srv.Addr(), srv.Client(t), old); old != (err != nil) {
			t.Errorf("patterns applied inline = %v: %v", old, err)
		}
	}
}

func slowPatternDelaysKeys(t *testing.T, addr string, rdb *redis.Client, old bool) error {
	ctx := context.Background()
	started, release := make(chan struct{}, 1), make(chan struct{})
	o := tiered.WithPatternHook(tiered.Options{}, func(p string) {
		if p != "g:"+pathological {
			return
		}
		started <- struct{}{}
		wait(release, 3*time.Second) // applied inline, the key is stuck until this gives up
	})
	if old {
		o = tiered.WithInlinePatterns(o)
	}
	a, b := newHardNode(t, addr, o), newHardNode(t, addr, tiered.Options{})
	long := strings.Repeat("a", 100<<10) + "b" // matches the pattern
	for _, id := range []string{"x", long} {
		if _, err := a.group.Fetch(ctx, id, constLoader("v1")); err != nil {
			t.Fatal(err)
		}
	}
	a.cache.WaitL1()

	err := b.cache.InvalidatePattern(ctx, "g:"+pathological)
	if !errors.Is(err, glob.ErrLimit) {
		t.Fatalf("InvalidatePattern(pathological) = %v; want an error wrapping glob.ErrLimit", err)
	}
	if rdb.Exists(ctx, "hard:g:"+long).Val() != 1 {
		t.Fatal("a refused pattern removed a key from Redis")
	}
	m := bus.Message{Kind: bus.KindPatterns, Origin: bus.NewNodeID(), Seq: 1, Items: []string{"g:" + pathological}}
	if err := rdb.Publish(ctx, "hard:tiercache:bus", bus.Encode(m)).Err(); err != nil {
		t.Fatal(err)
	}
	if !wait(started, 10*time.Second) {
		t.Fatal("the pattern's application never began")
	}
	if err := b.group.Set(ctx, "x", "v2"); err != nil {
		t.Fatal(err)
	}
	// The key's invalidation is counted only once the pattern before it is
	// applied (see receipts), so the test watches a's L1 itself.
	applied := false
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, ok := a.group.Peek("x"); !ok {
			applied = true
			break
		}
	}
	if applied {
		if v, err := a.group.Fetch(ctx, "x", constLoader("loaded")); err != nil || v != "v2" {
			t.Fatalf("a.Fetch(x) = %q, %v while the pattern is in flight; want v2", v, err)
		}
	}
	close(release)
	if !applied {
		return errors.New("the key invalidation was not applied while a pattern was in flight")
	}
	if v, err := a.group.Fetch(ctx, "x", constLoader("loaded")); err != nil || v != "v2" {
		t.Fatalf("a.Fetch(x) = %q, %v; want v2", v, err)
	}
	if !wait(a.flushed, 10*time.Second) {
		t.Fatal("the pattern beyond the limits did not flush a's L1")
	}
	if _, ok := a.group.Peek(long); ok {
		t.Fatal("a's L1 still serves the key the pattern matches")
	}
	if s := a.cache.Stats(); s.PatternFlushes != 1 {
		t.Fatalf("PatternFlushes = %d; want 1", s.PatternFlushes)
	}
	return nil
}

// TestPatternBudgetFlushes: a pattern within the limits whose matching
// costs more than the work budget (here made small) flushes the L1 of the
// node that applies it, on the node that sent it and on the others, and is
// counted; without the budget it is matched to the end.
func TestPatternBudgetFlushes(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	p := "g:*" + strings.Repeat("?", tiered.MaxPatternWildcards-1) + "b"
	for _, unbounded := range []bool{false, true} {
		o := tiered.WithPatternBudget(tiered.Options{}, 10_000, unbounded)
		a, b := newHardNode(t, srv.Addr(), o), newHardNode(t, srv.Addr(), o)
		long := strings.Repeat("a", 10<<10) // does not match: ends with a
		for _, n := range []*hardNode{a, b} {
			for _, id := range []string{"other", long} {
				if _, err := n.group.Fetch(ctx, id, constLoader("v1")); err != nil {
					t.Fatal(err)
				}
			}
			n.cache.WaitL1()
		}
		if err := b.cache.InvalidatePattern(ctx, p); err != nil {
			t.Fatal(err)
		}
		if !wait(a.received, 10*time.Second) {
			t.Fatal("a did not receive the pattern")
		}
		for name, n := range map[string]*hardNode{"a": a, "b": b} {
			_, inL1 := n.group.Peek("other")
			flushes := n.cache.Stats().PatternFlushes
			if unbounded {
				if flushes != 0 || !inL1 {
					t.Errorf("without a budget, node %s: PatternFlushes = %d, other in L1 = %v; want 0, true", name, flushes, inL1)
				}
				continue
			}
			if flushes == 0 || inL1 { // the sender applies it twice: before and after Redis
				t.Errorf("node %s: PatternFlushes = %d, other in L1 = %v; want >0, false", name, flushes, inL1)
			}
		}
	}
}

// TestPatternLimitsRefuseBeforeAnything: a pattern beyond the limits is
// refused with an error naming the limit, before Redis or the bus sees
// anything: the next message on the channel is the next invalidation's.
func TestPatternLimitsRefuseBeforeAnything(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	n := newHardNode(t, srv.Addr(), tiered.Options{})
	sub := rdb.Subscribe(ctx, "hard:tiercache:bus")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "hard:g:"+strings.Repeat("x", 2000), "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"g:" + strings.Repeat("x", tiered.MaxPatternBytes), "g:" + strings.Repeat("*x", tiered.MaxPatternWildcards+1)} {
		err := n.cache.InvalidatePattern(ctx, "g:ok*", p)
		if !errors.Is(err, glob.ErrLimit) || !strings.Contains(err.Error(), "tiered: invalidate pattern") {
			t.Errorf("InvalidatePattern(%.30q) = %v; want a tiered error wrapping glob.ErrLimit", p, err)
		}
	}
	if got := rdb.DBSize(ctx).Val(); got != 1 {
		t.Errorf("Redis holds %d keys after refused patterns; want 1", got)
	}
	if err := n.group.Invalidate(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := bus.Decode([]byte(msg.Payload))
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind == bus.KindHeartbeat {
			continue
		}
		if m.Kind != bus.KindKeys || m.Seq != 1 {
			t.Fatalf("first message on the bus: %+v; want the keys of the Invalidate, number 1", m)
		}
		return
	}
}

// TestBusKey: nodes with a BusKey apply each other's messages and drop a
// stranger's unsigned one, counting it; a node without a key applies both.
func TestBusKey(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	key := [][]byte{[]byte("an example key of 32 bytes......")}
	a, b := newHardNode(t, srv.Addr(), tiered.Options{BusKey: key}), newHardNode(t, srv.Addr(), tiered.Options{BusKey: key})
	plain := newHardNode(t, srv.Addr(), tiered.Options{})
	for _, n := range []*hardNode{a, plain} {
		if _, err := n.group.Fetch(ctx, "x", constLoader("v1")); err != nil {
			t.Fatal(err)
		}
		n.cache.WaitL1()
	}
	m := bus.Message{Kind: bus.KindKeys, Origin: bus.NewNodeID(), Seq: 1, Items: []string{"g:x"}}
	if err := rdb.Publish(ctx, "hard:tiercache:bus", bus.Encode(m)).Err(); err != nil {
		t.Fatal(err)
	}
	if !wait(plain.received, 10*time.Second) {
		t.Fatal("the node without a key did not apply the unsigned message")
	}
	if err := b.group.Invalidate(ctx, "y"); err != nil { // signed: both apply it, after the stranger's
		t.Fatal(err)
	}
	if !wait(a.received, 10*time.Second) || !wait(plain.received, 10*time.Second) {
		t.Fatal("a signed invalidation was not applied")
	}
	if _, ok := a.group.Peek("x"); !ok {
		t.Error("a node with a key applied an unsigned message")
	}
	if s := a.cache.Stats(); s.BusRejected != 1 || s.InvalidationsReceived != 1 {
		t.Errorf("a: BusRejected = %d, InvalidationsReceived = %d; want 1, 1", s.BusRejected, s.InvalidationsReceived)
	}
	if _, err := tiered.New(tiered.Options{Redis: rdb, BusKey: [][]byte{[]byte("short")}}); err == nil {
		t.Error("New accepted a 5-byte BusKey")
	}
}
