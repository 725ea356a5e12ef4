package bus_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
)

// applies reads the handler's events until it has seen n applies, and
// returns them joined by spaces.
func (r *recorder) applies(t *testing.T, n int) string {
	t.Helper()
	var got []string
	for n > 0 {
		select {
		case e := <-r.events:
			got = append(got, e)
			if e == "apply" {
				n--
			}
		case <-time.After(hangGuard): // a hang guard, not a synchronization
			t.Fatalf("events so far %q; no more within %v", got, hangGuard)
		}
	}
	return strings.Join(got, " ")
}

// TestSpoofedSequence: a message in a node's name with a made-up sequence
// number far ahead (2^64-1 once wrapped every check into a gap, 2^64-2
// switched checks off) costs one gap, and the real sender's messages are
// checked as before: no gap while they follow on, a gap when one is lost.
// The old comparison fails both cases.
func TestSpoofedSequence(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	for _, old := range []bool{false, true} {
		for _, spoof := range []uint64{math.MaxUint64, math.MaxUint64 - 1, 1 << 40} {
			rb := newRecorder()
			o := bus.Options{}
			if old {
				bus.OldSequences(&o)
			}
			newBus(t, srv.Addr(), rb, o)
			rb.expect(t, "restored")
			x := bus.NewNodeID()
			keys := func(seq uint64) bus.Message {
				return bus.Message{Kind: bus.KindKeys, Origin: x, Seq: seq, Items: []string{"k"}}
			}
			publishRaw(t, rdb, keys(1), keys(2),
				bus.Message{Kind: bus.KindHeartbeat, Origin: x, Seq: spoof}, // the spoof
				keys(3), bus.Message{Kind: bus.KindHeartbeat, Origin: x, Seq: 3}, keys(4),
				keys(6)) // 5 is lost
			got := rb.applies(t, 5)
			want := "apply apply gap apply apply gap apply"
			if old {
				if got == want {
					t.Errorf("old comparison, spoofed seq %d: events %q; want them to differ from %q", spoof, got, want)
				}
				continue
			}
			if got != want {
				t.Errorf("spoofed seq %d: events %q; want %q", spoof, got, want)
			}
			rb.none(t)
		}
	}
}

// TestSequenceResynchronizes: a sender whose numbers are far ahead of what
// this node knows (first heard late, or after a long outage) costs one gap,
// and is followed from its next message on.
func TestSequenceResynchronizes(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	rb := newRecorder()
	newBus(t, srv.Addr(), rb, bus.Options{})
	rb.expect(t, "restored")
	x := bus.NewNodeID()
	const far = 1 << 50
	publishRaw(t, rdb,
		bus.Message{Kind: bus.KindKeys, Origin: x, Seq: far, Items: []string{"a"}},
		bus.Message{Kind: bus.KindKeys, Origin: x, Seq: far + 1, Items: []string{"b"}},
		bus.Message{Kind: bus.KindHeartbeat, Origin: x, Seq: far + 1},
		bus.Message{Kind: bus.KindKeys, Origin: x, Seq: far + 2, Items: []string{"c"}},
	)
	if got, want := rb.applies(t, 3), "gap apply apply apply"; got != want {
		t.Fatalf("events %q; want %q", got, want)
	}
	rb.none(t)
}

// relay forwards TCP between a client and a server. Armed, it forwards
// only so many more bytes towards each client, then holds the rest until
// the client sends a PING: so a test can stop a large reply half-way and
// let the client's reaction to the silence decide what happens next.
type relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex // protects budget, pinged, conns
	budget int64      // bytes each connection may still forward to its client; <0: unlimited
	pinged chan struct{}
	conns  []net.Conn
	done   chan struct{} // closed when the test ends: a hold ends with it
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, budget: -1, pinged: make(chan struct{}), done: make(chan struct{})}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		close(r.done)
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

// arm lets n more bytes through to each client, then holds until a PING.
func (r *relay) arm(n int64) {
	r.mu.Lock()
	r.budget, r.pinged = n, make(chan struct{})
	r.mu.Unlock()
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.up(c, s)
		go r.down(s, c)
	}
}

// up forwards client to server and notes PINGs.
func (r *relay) up(c, s net.Conn) {
	defer r.wg.Done()
	defer s.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if bytes.Contains(bytes.ToLower(buf[:n]), []byte("ping")) {
				r.mu.Lock()
				select {
				case <-r.pinged:
				default:
					close(r.pinged)
				}
				r.mu.Unlock()
			}
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// down forwards server to client within the budget.
func (r *relay) down(s, c net.Conn) {
	defer r.wg.Done()
	defer c.Close()
	var sent int64
	armedAt := int64(-1)
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		b := buf[:n]
		for len(b) > 0 {
			r.mu.Lock()
			budget := r.budget
			r.mu.Unlock()
			k := len(b)
			if budget >= 0 {
				if armedAt < 0 {
					armedAt = sent
				}
				if left := armedAt + budget - sent; left <= 0 {
					// Held until the client pings from now on: a PING sent
					// while the message was still on its way (a silence
					// of PingInterval on a slow machine) must not let the
					// message through whole.
					r.mu.Lock()
					hold := make(chan struct{})
					r.pinged = hold
					r.mu.Unlock()
					select {
					case <-hold:
					case <-r.done:
						return
					}
					r.mu.Lock()
					if r.pinged == hold {
						r.budget = -1
					}
					r.mu.Unlock()
					armedAt = -1
					continue
				} else if int64(k) > left {
					k = int(left)
				}
			}
			if _, err := c.Write(b[:k]); err != nil {
				return
			}
			sent += int64(k)
			b = b[k:]
		}
		if err != nil {
			return
		}
	}
}

// TestHugeMessageFromStranger: a 10 MB message from someone else is read
// whole, dropped and counted, and the subscription stays up. The relay
// stops the message half-way until the node pings (as it does after
// PingInterval of silence): the old receive loop, which read with a
// timeout, is then left in the middle of the reply and loses its
// subscription. The ping interval is long enough (the node pings after 5 s
// of silence, and a ping unanswered for 10 s more ends a subscription) for
// the race detector on a fully loaded machine, where go-redis takes seconds
// to read 10 MB.
func TestHugeMessageFromStranger(t *testing.T) {
	srv := redistest.Start(t)
	stranger := srv.Client(t)
	for _, old := range []bool{false, true} {
		rl := newRelay(t, srv.Addr())
		rb := newRecorder()
		var rejected atomic.Int32
		o := bus.Options{Heartbeat: 30 * time.Second, PingInterval: 5 * time.Second, Observe: func(e bus.Event) {
			if e.Kind == bus.EventRejected {
				rejected.Add(1)
			}
		}}
		if old {
			bus.OldReceive(&o)
		}
		newBus(t, rl.addr(), rb, o)
		rb.expect(t, "restored")
		rl.arm(5 << 20)
		if err := stranger.Publish(context.Background(), "test:bus", strings.Repeat("x", 10<<20)).Err(); err != nil {
			t.Fatal(err)
		}
		if old {
			rb.expect(t, "lost")
			continue
		}
		publishRaw(t, stranger, bus.Message{Kind: bus.KindKeys, Origin: bus.NewNodeID(), Seq: 1, Items: []string{"after"}})
		got := rb.applies(t, 1)
		if got != "apply" || rejected.Load() != 1 {
			t.Errorf("events %q, %d rejected; want %q and 1 rejected", got, rejected.Load(), "apply")
		}
		rb.none(t)
	}
}

// TestOversizedIsDroppedSplitOrFlushed: a node drops messages larger than
// its MaxMessageBytes (a gap in the sender's numbers reveals the loss), and
// a publisher whose one item exceeds it sends a flush instead.
func TestOversizedIsDroppedSplitOrFlushed(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	rb := newRecorder()
	var rejected atomic.Int32
	newBus(t, srv.Addr(), rb, bus.Options{MaxMessageBytes: 1024, Observe: func(e bus.Event) {
		if e.Kind == bus.EventRejected {
			rejected.Add(1)
		}
	}})
	ra := newRecorder()
	a := newBus(t, srv.Addr(), ra, bus.Options{MaxMessageBytes: 1024})
	rb.expect(t, "restored")
	ra.expect(t, "restored")
	x := bus.NewNodeID()
	publishRaw(t, rdb,
		bus.Message{Kind: bus.KindKeys, Origin: x, Seq: 1, Items: []string{strings.Repeat("k", 2000)}},
		bus.Message{Kind: bus.KindKeys, Origin: x, Seq: 2, Items: []string{"small"}})
	if got, want := rb.applies(t, 1), "gap apply"; got != want || rejected.Load() != 1 {
		t.Fatalf("events %q, %d rejected; want %q, 1 rejected", got, rejected.Load(), want)
	}
	if err := a.Publish(context.Background(), bus.KindKeys, "a", strings.Repeat("k", 2000), "b"); err != nil {
		t.Fatal(err)
	}
	rb.applies(t, 3)
	rb.mu.Lock()
	defer rb.mu.Unlock()
	var kinds []bus.Kind
	for _, m := range rb.applied[1:] {
		kinds = append(kinds, m.Kind)
	}
	if len(kinds) != 3 || kinds[0] != bus.KindKeys || kinds[1] != bus.KindFlush || kinds[2] != bus.KindKeys {
		t.Fatalf("kinds applied %v; want keys, flush, keys", kinds)
	}
}

// TestResubscribesWhenPoolAnswers: after Redis comes back, the bus
// subscribes again as soon as a command through the client's pool is
// answered (here its own heartbeat), not after its backoff (made an hour
// long here). Without the hook it stays lost.
func TestResubscribesWhenPoolAnswers(t *testing.T) {
	for _, old := range []bool{false, true} {
		srv := redistest.Start(t)
		rb := newRecorder()
		o := bus.Options{Heartbeat: 100 * time.Millisecond}
		bus.Backoff(&o, time.Hour)
		if old {
			bus.NoKick(&o)
		}
		b := newBus(t, srv.Addr(), rb, o)
		rb.expect(t, "restored")
		srv.Kill()
		rb.expect(t, "lost")
		srv.Restart()
		if !old {
			rb.expect(t, "restored")
			continue
		}
		// An absence can only be seen over some time; with an hour of
		// backoff this does not depend on the machine's speed.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := b.WaitHealthy(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("without the hook: WaitHealthy = %v; want it to time out", err)
		}
	}
}

// TestSignedMessages: with keys, a node applies only messages signed under
// one of them; anything else is dropped and counted. A node without keys
// reads signed messages too. Keys rotate: sign with the first, accept any.
func TestSignedMessages(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	k1, k2 := []byte("0123456789abcdef-key-one"), []byte("0123456789abcdef-key-two")
	type node struct {
		r        *recorder
		b        *bus.Bus
		rejected *atomic.Int32
	}
	mk := func(keys ...[]byte) node {
		n := node{r: newRecorder(), rejected: new(atomic.Int32)}
		n.b = newBus(t, srv.Addr(), n.r, bus.Options{Keys: keys, Observe: func(e bus.Event) {
			if e.Kind == bus.EventRejected {
				n.rejected.Add(1)
			}
		}})
		n.r.expect(t, "restored")
		return n
	}
	old, rotating, plain := mk(k1), mk(k2, k1), mk()
	ctx := context.Background()

	// A stranger without the key: unsigned, signed under another key, a
	// valid MAC over a changed message.
	evil := func() bus.Message {
		return bus.Message{Kind: bus.KindKeys, Origin: bus.NewNodeID(), Seq: 1, Items: []string{"evil"}}
	}
	tampered := bus.EncodeSigned(evil(), k1)
	tampered[len(tampered)-bus.MACSize-1] ^= 1
	for _, p := range [][]byte{bus.Encode(evil()), bus.EncodeSigned(evil(), []byte("0123456789abcdef-other")), tampered} {
		if err := rdb.Publish(ctx, "test:bus", p).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The rotating node signs under k2: old (k1 only) drops it, plain reads it.
	if err := rotating.b.Publish(ctx, bus.KindKeys, "from-rotating"); err != nil {
		t.Fatal(err)
	}
	// old signs under k1: rotating accepts it, plain reads it.
	if err := old.b.Publish(ctx, bus.KindKeys, "from-old"); err != nil {
		t.Fatal(err)
	}
	if got, want := plain.r.applies(t, 5), "apply apply apply apply apply"; got != want {
		t.Errorf("plain node: events %q; want %q (three from the stranger, two signed)", got, want)
	}
	if got, want := rotating.r.applies(t, 1), "apply"; got != want || rotating.rejected.Load() != 3 {
		t.Errorf("rotating node: events %q, %d rejected; want %q, 3", got, rotating.rejected.Load(), want)
	}
	publishRaw(t, rdb, bus.Message{Kind: bus.KindHeartbeat, Origin: bus.NewNodeID()}) // unsigned: a marker that old drops
	// old has dropped the three from the stranger, the one from rotating
	// (another key) and the marker, in order; the marker is the last.
	for old.rejected.Load() < 5 {
		select {
		case e := <-old.r.events:
			t.Fatalf("old node: unexpected event %q", e)
		case <-time.After(10 * time.Millisecond): // polls a counter the bus's goroutine sets
		}
	}
	old.r.none(t)
	for _, n := range []node{old, rotating, plain} {
		n.r.mu.Lock()
		for _, m := range n.r.applied {
			if m.Items[0] == "evil" && n.b != plain.b {
				t.Errorf("a node with keys applied an unauthenticated message")
			}
		}
		n.r.mu.Unlock()
	}
}

// TestACLLimitsPublishers: the Redis ACL of docs/operations.md (The bus under hostile input) lets the
// cache's user publish and subscribe on its channel, and a user that may
// only watch it subscribe but not publish: a real server refuses the
// publish with NOPERM.
func TestACLLimitsPublishers(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ctx := context.Background()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", "app", "on", ">app-secret", "resetchannels", "&test:bus", "+publish", "+subscribe", "+ping", "+hello", "+auth"},
		{"ACL", "SETUSER", "watcher", "on", ">watch-secret", "resetchannels", "&test:bus", "+subscribe", "+ping", "+hello", "+auth"},
	} {
		if err := admin.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	user := func(name, pw string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: name, Password: pw, ContextTimeoutEnabled: true, MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		return c
	}
	rb := newRecorder()
	o := bus.Options{Client: user("app", "app-secret"), Channel: "test:bus", Handler: rb}
	b, err := bus.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	rb.expect(t, "restored")
	watcher := user("watcher", "watch-secret")
	sub := watcher.Subscribe(ctx, "test:bus")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("watcher SUBSCRIBE: %v", err)
	}
	err = watcher.Publish(ctx, "test:bus", bus.Encode(bus.Message{Kind: bus.KindFlush, Origin: bus.NewNodeID(), Seq: 1})).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("watcher PUBLISH error = %v; want NOPERM", err)
	}
	if err := user("app", "app-secret").Publish(ctx, "other:bus", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("app PUBLISH on another channel error = %v; want NOPERM", err)
	}
	if err := b.Publish(ctx, bus.KindKeys, "k"); err != nil {
		t.Fatalf("app's bus Publish: %v", err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := bus.Decode([]byte(msg.Payload)); err != nil || m.Items[0] != "k" {
		t.Fatalf("watcher got %+v, %v", m, err)
	}
}
