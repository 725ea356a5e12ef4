package bus_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
)

// hungPublish is an Options.Publish for a server that hangs: each call
// records its payload, reports that it started, and ends only with its
// ctx, until the hang is lifted.
type hungPublish struct {
	mu       sync.Mutex
	payloads [][]byte
	started  chan struct{}
	hung     atomic.Bool
}

func newHungPublish() *hungPublish { return &hungPublish{started: make(chan struct{}, 1024)} }

func (h *hungPublish) publish(ctx context.Context, payload []byte) error {
	h.mu.Lock()
	h.payloads = append(h.payloads, payload)
	h.mu.Unlock()
	if !h.hung.Load() {
		return nil
	}
	h.started <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (h *hungPublish) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.payloads)
}

func (h *hungPublish) sent(item string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.payloads {
		if m, err := bus.Decode(p); err == nil {
			for _, it := range m.Items {
				if it == item {
					return true
				}
			}
		}
	}
	return false
}

// keysForMessages returns n keys of which MaxMessageBytes 256 holds one
// per message.
func keysForMessages(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = strings.Repeat("x", 150) + string(rune('a'+i%26))
	}
	return keys
}

// TestCloseEndsAHungPublish: Close ends a PUBLISH that a hung server never
// answers (its Timeout an hour away) instead of waiting for it, and the
// publish of a call split into many messages stops at its first failed
// message instead of trying each in turn.
func TestCloseEndsAHungPublish(t *testing.T) {
	srv := redistest.Start(t)
	h := newHungPublish()
	rb := newRecorder()
	b := newBus(t, srv.Addr(), rb, bus.Options{MaxMessageBytes: 256, Timeout: time.Hour, Heartbeat: time.Hour, Publish: h.publish})
	rb.expect(t, "restored")
	h.hung.Store(true)
	before := h.count()
	done := make(chan error, 1)
	go func() { done <- b.Publish(context.Background(), bus.KindKeys, keysForMessages(20)...) }()
	<-h.started
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(hangGuard): // a hang guard, not a synchronization
		t.Fatal("Close waits for a PUBLISH that a hung server never answers")
	}
	if err := <-done; err == nil {
		t.Fatal("Publish to a hung server that Close ended returned nil")
	}
	if n := h.count() - before; n != 1 {
		t.Fatalf("%d PUBLISH calls for a publish whose first message failed; want 1", n)
	}
}

// TestFirstFailureEndsPublish: a publish split into many messages stops
// at the first that fails (the numbers of the rest are used up, so the
// receivers flush), instead of spending a Timeout on each.
func TestFirstFailureEndsPublish(t *testing.T) {
	srv := redistest.Start(t)
	var calls atomic.Int64
	var failing atomic.Bool
	refused := errors.New("refused")
	publish := func(context.Context, []byte) error {
		if failing.Load() {
			calls.Add(1)
			return refused
		}
		return nil
	}
	rb := newRecorder()
	b := newBus(t, srv.Addr(), rb, bus.Options{MaxMessageBytes: 256, Heartbeat: time.Hour, Publish: publish})
	rb.expect(t, "restored")
	failing.Store(true)
	if err := b.Publish(context.Background(), bus.KindKeys, keysForMessages(20)...); !errors.Is(err, refused) {
		t.Fatalf("Publish = %v; want the refusal", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d PUBLISH calls after the first failed; want 1", n)
	}
}

// TestWaitingPublishGivesUp: a call waiting for its turn behind a hung
// PUBLISH returns when its ctx ends, and its items are never sent, even
// once the turn comes.
func TestWaitingPublishGivesUp(t *testing.T) {
	srv := redistest.Start(t)
	h := newHungPublish()
	rb := newRecorder()
	b := newBus(t, srv.Addr(), rb, bus.Options{Timeout: time.Hour, Heartbeat: time.Hour, Publish: h.publish})
	rb.expect(t, "restored")
	h.hung.Store(true)
	firstCtx, endFirst := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- b.Publish(firstCtx, bus.KindKeys, "k1") }()
	<-h.started // k1's PUBLISH holds the turn
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { second <- b.Publish(ctx, bus.KindKeys, "k2") }()
	cancel()
	select {
	case err := <-second:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the waiting Publish = %v; want context.Canceled", err)
		}
	case <-time.After(hangGuard): // a hang guard, not a synchronization
		t.Fatal("a Publish whose ctx ended still waits for its turn")
	}
	h.hung.Store(false)
	endFirst()
	<-first
	if err := b.Publish(context.Background(), bus.KindKeys, "k3"); err != nil {
		t.Fatal(err)
	}
	if h.sent("k2") {
		t.Fatal("the items of a Publish that gave up were sent")
	}
	if !h.sent("k3") {
		t.Fatal("a later Publish was not sent")
	}
}

// TestFlushCarriesNoItems: Publish refuses items with KindFlush, which
// every receiver would drop as malformed, instead of returning nil.
func TestFlushCarriesNoItems(t *testing.T) {
	srv := redistest.Start(t)
	rb := newRecorder()
	b := newBus(t, srv.Addr(), rb, bus.Options{Heartbeat: time.Hour})
	rb.expect(t, "restored")
	if err := b.Publish(context.Background(), bus.KindFlush, "k"); err == nil {
		t.Fatal("Publish(KindFlush, item) = nil; want an error")
	}
	if err := b.Publish(context.Background(), bus.KindFlush); err != nil {
		t.Fatalf("Publish(KindFlush) = %v", err)
	}
}
