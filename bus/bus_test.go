package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	// A go-redis pool whose dial failed (a killed cluster node) retries on
	// a goroutine that notices Close only after its one-second sleep.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// recorder is a Handler that hands every call to the test on a channel.
type recorder struct {
	events  chan string
	mu      sync.Mutex // protects applied
	applied []bus.Message
}

func newRecorder() *recorder { return &recorder{events: make(chan string, 1024)} }

func (r *recorder) Apply(m bus.Message) {
	r.mu.Lock()
	r.applied = append(r.applied, m)
	r.mu.Unlock()
	r.events <- "apply"
}
func (r *recorder) Lost(error)     { r.events <- "lost" }
func (r *recorder) Restored()      { r.events <- "restored" }
func (r *recorder) Gap(bus.NodeID) { r.events <- "gap" }

// expect waits for the next event and fails unless it is want.
func (r *recorder) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-r.events:
		if got != want {
			t.Fatalf("handler event = %q; want %q", got, want)
		}
	case <-time.After(hangGuard): // a hang guard, not a synchronization
		t.Fatalf("no %q event within %v", want, hangGuard)
	}
}

// none checks that no event is pending.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-r.events:
		t.Fatalf("unexpected handler event %q", got)
	default:
	}
}

// hangGuard bounds a wait for an event that must come: it ends a test that
// would hang, and is long enough for a 2-core machine under full load (the
// wait ends as soon as the event arrives).
const hangGuard = 2 * time.Minute

func newBus(t *testing.T, addr string, h bus.Handler, o bus.Options) *bus.Bus {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	o.Client, o.Channel, o.Handler = rdb, "test:bus", h
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second // a PUBLISH on a loaded machine under -race
	}
	b, err := bus.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestDeliversToOthersNotSelf(t *testing.T) {
	srv := redistest.Start(t)
	ra, rb := newRecorder(), newRecorder()
	a := newBus(t, srv.Addr(), ra, bus.Options{})
	newBus(t, srv.Addr(), rb, bus.Options{})
	ra.expect(t, "restored")
	rb.expect(t, "restored")
	ctx := context.Background()
	if err := a.Publish(ctx, bus.KindKeys, "k1", "k2"); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, bus.KindPatterns, "user_*"); err != nil {
		t.Fatal(err)
	}
	rb.expect(t, "apply")
	rb.expect(t, "apply")
	rb.mu.Lock()
	got := rb.applied
	rb.mu.Unlock()
	if len(got) != 2 || got[0].Kind != bus.KindKeys || len(got[0].Items) != 2 || got[1].Items[0] != "user_*" {
		t.Fatalf("applied = %+v", got)
	}
	if got[0].Seq != 1 || got[1].Seq != 2 || got[0].Origin != a.Node() {
		t.Fatalf("seq/origin = %d, %d, %v; want 1, 2, %v", got[0].Seq, got[1].Seq, got[0].Origin, a.Node())
	}
	ra.none(t) // a node ignores its own messages
}

func TestLargeInvalidationIsSplit(t *testing.T) {
	srv := redistest.Start(t)
	ra, rb := newRecorder(), newRecorder()
	a := newBus(t, srv.Addr(), ra, bus.Options{MaxMessageBytes: 256})
	newBus(t, srv.Addr(), rb, bus.Options{})
	ra.expect(t, "restored")
	rb.expect(t, "restored")
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = "some:rather:long:key:number:" + string(rune('a'+i%26))
	}
	if err := a.Publish(context.Background(), bus.KindKeys, keys...); err != nil {
		t.Fatal(err)
	}
	n := 0
	for n < len(keys) {
		rb.expect(t, "apply")
		rb.mu.Lock()
		n = 0
		for _, m := range rb.applied {
			n += len(m.Items)
		}
		rb.mu.Unlock()
	}
	if len(rb.applied) < 2 {
		t.Fatalf("100 keys arrived in %d message(s); want several", len(rb.applied))
	}
}

// TestLostWhileCut: an invalidation published while a node's subscription is
// cut is not delivered, and the node is told so (Lost) before it could have
// been, and told again (Restored) when the subscription is back.
func TestLostWhileCut(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	ra, rb := newRecorder(), newRecorder()
	a := newBus(t, srv.Addr(), ra, bus.Options{})
	newBus(t, proxy.Addr(), rb, bus.Options{})
	ra.expect(t, "restored")
	rb.expect(t, "restored")
	proxy.Cut()
	rb.expect(t, "lost")
	if err := a.Publish(context.Background(), bus.KindKeys, "missed"); err != nil {
		t.Fatal(err)
	}
	proxy.Heal()
	rb.expect(t, "restored")
	rb.none(t)
}

func TestServerRestartIsALoss(t *testing.T) {
	srv := redistest.Start(t)
	rb := newRecorder()
	newBus(t, srv.Addr(), rb, bus.Options{})
	rb.expect(t, "restored")
	srv.Kill()
	rb.expect(t, "lost")
	srv.Restart()
	rb.expect(t, "restored")
}

func TestHungServerIsALoss(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	rb := newRecorder()
	newBus(t, proxy.Addr(), rb, bus.Options{Heartbeat: 100 * time.Millisecond})
	rb.expect(t, "restored")
	proxy.Blackhole() // no error, no bytes: only the unanswered ping tells
	rb.expect(t, "lost")
}

// publishRaw sends crafted messages as another node would.
func publishRaw(t *testing.T, rdb *redis.Client, ms ...bus.Message) {
	t.Helper()
	for _, m := range ms {
		if err := rdb.Publish(context.Background(), "test:bus", bus.Encode(m)).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSequenceGapAndLostLastMessage(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	rb := newRecorder()
	newBus(t, srv.Addr(), rb, bus.Options{})
	rb.expect(t, "restored")
	x := bus.NewNodeID()
	publishRaw(t, rdb,
		bus.Message{Kind: bus.KindKeys, Origin: x, Seq: 1, Items: []string{"a"}},
		bus.Message{Kind: bus.KindKeys, Origin: x, Seq: 3, Items: []string{"c"}}, // 2 went missing
	)
	rb.expect(t, "apply")
	rb.expect(t, "gap")
	rb.expect(t, "apply")
	// The last message (4) is lost: only the heartbeat, carrying 4, tells.
	publishRaw(t, rdb, bus.Message{Kind: bus.KindHeartbeat, Origin: x, Seq: 4})
	rb.expect(t, "gap")
	publishRaw(t, rdb, bus.Message{Kind: bus.KindHeartbeat, Origin: x, Seq: 4})
	publishRaw(t, rdb, bus.Message{Kind: bus.KindKeys, Origin: x, Seq: 5, Items: []string{"e"}})
	rb.expect(t, "apply") // no gap: 4 was accounted for, 5 follows it
	rb.none(t)
}

func TestMalformedIsCountedNotFatal(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	rb := newRecorder()
	malformed := make(chan struct{}, 10)
	newBus(t, srv.Addr(), rb, bus.Options{Observe: func(e bus.Event) {
		if e.Kind == bus.EventMalformed {
			malformed <- struct{}{}
		}
	}})
	rb.expect(t, "restored")
	rdb.Publish(context.Background(), "test:bus", "garbage")
	<-malformed
	publishRaw(t, rdb, bus.Message{Kind: bus.KindKeys, Origin: bus.NewNodeID(), Seq: 1, Items: []string{"ok"}})
	rb.expect(t, "apply")
}

func TestNewValidates(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := bus.New(bus.Options{Client: rdb}); err == nil {
		t.Error("New without Channel and Handler succeeded")
	}
	csc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", Protocol: 3, ClientSideCacheConfig: &redis.ClientSideCacheConfig{MaxEntries: 10}})
	defer csc.Close()
	if _, err := bus.New(bus.Options{Client: csc, Channel: "c", Handler: newRecorder()}); err == nil {
		t.Error("New with a client-side caching client succeeded")
	}
}

// TestGapAcrossResubscription: sequence numbers outlive a subscription, so
// the first message after a resubscription still reveals a message lost
// after the new subscription was confirmed (on a cluster the new
// subscription may sit on a node that misses messages for a moment).
func TestGapAcrossResubscription(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	rdb := srv.Client(t)
	rb := newRecorder()
	newBus(t, proxy.Addr(), rb, bus.Options{})
	rb.expect(t, "restored")
	x := bus.NewNodeID()
	publishRaw(t, rdb, bus.Message{Kind: bus.KindKeys, Origin: x, Seq: 1, Items: []string{"a"}})
	rb.expect(t, "apply")
	proxy.Cut()
	rb.expect(t, "lost")
	proxy.Heal()
	rb.expect(t, "restored")
	// 2 went missing after the new subscription was confirmed.
	publishRaw(t, rdb, bus.Message{Kind: bus.KindKeys, Origin: x, Seq: 3, Items: []string{"c"}})
	rb.expect(t, "gap")
	rb.expect(t, "apply")
	rb.none(t)
}

// TestGapFromNewOrigin: an origin heard of for the first time counts as
// having sent nothing before, so a first message numbered past 1, or a
// first heartbeat past 0, is a gap.
func TestGapFromNewOrigin(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	rb := newRecorder()
	newBus(t, srv.Addr(), rb, bus.Options{})
	rb.expect(t, "restored")
	publishRaw(t, rdb,
		bus.Message{Kind: bus.KindHeartbeat, Origin: bus.NewNodeID(), Seq: 0}, // never sent anything
		bus.Message{Kind: bus.KindKeys, Origin: bus.NewNodeID(), Seq: 1, Items: []string{"a"}},
	)
	rb.expect(t, "apply")
	publishRaw(t, rdb, bus.Message{Kind: bus.KindKeys, Origin: bus.NewNodeID(), Seq: 4, Items: []string{"d"}})
	rb.expect(t, "gap")
	rb.expect(t, "apply")
	publishRaw(t, rdb, bus.Message{Kind: bus.KindHeartbeat, Origin: bus.NewNodeID(), Seq: 2})
	rb.expect(t, "gap")
	rb.none(t)
}
