package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by Publish on a closed [Bus].
var ErrClosed = errors.New("bus: closed")

// Handler applies what the bus receives. Its methods are called one at a
// time, from the bus's receive goroutine, in the order things happened; they
// must not block for long and must not call back into the bus's Close.
type Handler interface {
	// Apply applies an invalidation from another node (never this node's
	// own messages).
	Apply(m Message)
	// Lost says that messages may be missed from now on (the subscription
	// failed). The cache flushes its L1 and serves only young entries
	// until Restored.
	Lost(reason error)
	// Restored says that the subscription is confirmed again: messages
	// published from now on arrive. The cache flushes once more.
	Restored()
	// Gap says that a message of origin went missing while the
	// subscription was up. The cache flushes.
	Gap(origin NodeID)
}

// Options configures a [Bus]. The zero value of every field but Client,
// Channel and Handler is its documented default.
type Options struct {
	// Client publishes and subscribes. It must not have go-redis's
	// client-side caching enabled (such a client refuses SUBSCRIBE).
	Client redis.UniversalClient
	// Channel is the pub/sub channel of the namespace.
	Channel string
	// Node is this node's ID. Default: a random one.
	Node NodeID
	// Handler receives what arrives.
	Handler Handler
	// MaxMessageBytes bounds one message, both ways. A larger
	// invalidation is sent as several messages; a single key or pattern
	// too large for one message is sent as a flush of every node's L1
	// (KindFlush) instead. A received message larger than this is dropped
	// unread and counted (EventRejected); the gap it leaves in its
	// sender's sequence numbers makes this node flush. Every node of a
	// fleet must use the same value. Default: 64 KiB (DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Keys, if set, authenticate messages: every message this node sends
	// is signed with HMAC-SHA256 under Keys[0] (wire version 2), and a
	// received message is applied only if it is signed under one of Keys;
	// any other (unsigned, badly signed, or signed under another key) is
	// dropped unread and counted (EventRejected). List the new key second,
	// then first, then drop the old one, to rotate keys without a stop.
	// Without Keys, a node sends unsigned messages (version 1) and reads
	// both versions without checking MACs. Each key must be at least 16
	// bytes; 32 random bytes are recommended. Default: none.
	Keys [][]byte
	// Heartbeat is how often the node publishes its last sequence number.
	// A node that hears nothing, not even its own heartbeat, for three
	// heartbeats counts its subscription as lost. Default: 1s.
	Heartbeat time.Duration
	// PingInterval is how long the receive loop waits for a message before
	// it pings the server; a ping unanswered for two more intervals counts
	// the subscription as lost. The loop looks once per interval, so the
	// ping goes out one to two intervals after the last message and a hung
	// server is noticed three to four intervals after it (1.5 to 2
	// heartbeats by default). Reads have no deadline, so a large message
	// is never cut in two; its read must end within those two intervals.
	// Default: Heartbeat/2.
	PingInterval time.Duration
	// Timeout bounds one PUBLISH. Default: 250ms.
	Timeout time.Duration
	// Logger receives losses, gaps and malformed messages. Default:
	// discard.
	Logger *slog.Logger
	// Observe, if set, receives every [Event]; it is called on the bus's
	// goroutines and must be fast.
	Observe func(Event)
	// Sharded makes the bus use sharded pub/sub (SSUBSCRIBE and, by
	// default, SPUBLISH; Redis 7.0 and later). On a cluster a sharded
	// channel lives on the shard that owns its hash slot: messages travel
	// within that shard only instead of being broadcast to every node, but
	// a failover of that shard or a move of the slot makes the server end
	// the subscription (SUNSUBSCRIBE), which the bus reports as a loss and
	// follows with a new subscription. Default: false, plain SUBSCRIBE and
	// PUBLISH.
	Sharded bool
	// Publish, if set, replaces PUBLISH (SPUBLISH when Sharded) on Client
	// for sending one encoded message (to inject faults in tests). Default:
	// Client.Publish(ctx, Channel, payload).
	Publish func(ctx context.Context, payload []byte) error
	// Wake, if set, is a second channel the subscription listens on: wake
	// notices, which Redis scripts publish (see remote.Options.Wake). Each
	// message's payload goes to OnWake as it is, unchecked (a notice only
	// makes a waiting node look at a key sooner); it is not an
	// invalidation and takes no part in sequence numbers or health.
	// Ignored when Sharded. Default: none.
	Wake string
	// OnWake receives the payload of each wake notice, on the bus's
	// receive goroutine; it must be fast and must not block. Required
	// with Wake.
	OnWake func(payload string)
	// WakeReady, if set, is told at every confirmed subscription whether
	// it includes Wake (false when the server refused the wake channel
	// with NOPERM, as an ACL that names only Channel does: the bus then
	// subscribes to Channel alone, logs it once, and stays so).
	WakeReady func(on bool)

	// compat restores earlier behaviours, for tests that show what the
	// current ones prevent.
	compat compat
}

// compat switches that tests flip to restore an earlier behaviour.
type compat struct {
	seq          bool          // sequence numbers compared without wrap or sanity (before spoofing was handled)
	timeout      bool          // receive with a read timeout (which may cut a large message in two)
	noKick       bool          // a lost subscription waits out its backoff even when the pool answers
	backoff      time.Duration // if set, every backoff step is this long
	noGroup      bool          // each Publish call sends only its own items (before group commits)
	publishFirst bool          // PublishAfter's pipeline puts the PUBLISHes before the caller's commands
}

// DefaultMaxMessageBytes is the default of Options.MaxMessageBytes.
const DefaultMaxMessageBytes = 64 << 10

// minKeyBytes is the shortest key Options.Keys accepts.
const minKeyBytes = 16

// EventKind says what an [Event] reports.
type EventKind uint8

// The events a bus reports through Options.Observe.
const (
	EventSent         EventKind = iota + 1 // a message was published (N items)
	EventReceived                          // a message from another node was applied (N items, Lag)
	EventLost                              // the subscription was lost (Err)
	EventRestored                          // the subscription is confirmed (again)
	EventGap                               // a sender's message went missing
	EventMalformed                         // a message could not be decoded (Err)
	EventPublishError                      // a PUBLISH failed (Err)
	EventRejected                          // a message was dropped unread: too large, or not authenticated (Err)
)

// Event is one thing that happened on a bus.
type Event struct {
	Kind EventKind
	N    int           // items sent or received
	Lag  time.Duration // EventReceived: receive time minus send time
	Err  error
}

// Bus is one node's connection to the invalidation channel. It is safe for
// concurrent use; Close stops its goroutines.
type Bus struct {
	opts Options

	// turn serializes publishing (a send holds it: cap 1); it protects seq
	// and every pubReq's done and err. A channel rather than a mutex, so
	// that a caller waiting for it can give up (its ctx, or Close).
	turn chan struct{}
	seq  uint64 // the last sequence number used

	qMu   sync.Mutex
	queue []*pubReq // Publish calls not yet taken by a sender, in call order

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	peers map[NodeID]*peer // sequence state per origin, at most maxPeers; only the receive goroutine uses it

	kicks   chan struct{} // the pool saw Redis answer while waiting is set
	waiting atomic.Bool   // the subscription is lost and a new one is pending
	// wakeRefused is set once the server refused the wake channel.
	wakeRefused atomic.Bool

	mu      sync.Mutex // protects healthy, waiters and sub
	healthy bool
	waiters []chan struct{}
	sub     *redis.PubSub // the current subscription, closed by Close to end a blocked read
}

// New starts a bus: one goroutine subscribes and receives, one sends
// heartbeats.
// The subscription starts lost: the handler hears Restored once it is
// confirmed ([Bus.WaitHealthy] waits for that).
func New(opts Options) (*Bus, error) {
	if opts.Client == nil || opts.Channel == "" || opts.Handler == nil {
		return nil, errors.New("bus: Client, Channel and Handler are required")
	}
	if opts.Wake != "" && (opts.OnWake == nil || opts.Wake == opts.Channel) {
		return nil, errors.New("bus: Wake needs OnWake and a channel of its own")
	}
	if opts.MaxMessageBytes < 0 || opts.Heartbeat < 0 || opts.PingInterval < 0 || opts.Timeout < 0 {
		return nil, errors.New("bus: negative option")
	}
	if opts.Node == (NodeID{}) {
		opts.Node = NewNodeID()
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxMessageBytes < overhead+1 {
		return nil, fmt.Errorf("bus: MaxMessageBytes %d is below the minimum of %d", opts.MaxMessageBytes, overhead+1)
	}
	for i, k := range opts.Keys {
		if len(k) < minKeyBytes {
			return nil, fmt.Errorf("bus: key %d is %d bytes; want at least %d", i, len(k), minKeyBytes)
		}
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = time.Second
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = opts.Heartbeat / 2
	}
	if opts.Timeout == 0 {
		opts.Timeout = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Publish == nil {
		opts.Publish = Publisher(opts.Client, opts.Channel, opts.Sharded)
	}
	if err := checkClient(opts.Client); err != nil {
		return nil, err
	}
	b := &Bus{opts: opts, peers: make(map[NodeID]*peer), kicks: make(chan struct{}, 1), turn: make(chan struct{}, 1)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.waiting.Store(true)
	if !opts.compat.noKick {
		opts.Client.AddHook(kickHook{b: b})
	}
	b.wg.Add(2)
	go b.heartbeatLoop()
	go b.receiveLoop()
	return b, nil
}

// Publisher returns the function that sends one encoded message on
// channel through c: PUBLISH, or SPUBLISH when sharded.
//
// On a cluster client, PUBLISH goes to the master that serves the
// channel's hash slot (where a cluster client subscribes too), not to any
// node: the cluster relays a message published on one node to the others,
// so two messages of one sender published on two different nodes may
// reach a subscriber out of order, which the receivers would take for a
// lost message. After a failed publish the client reloads the cluster's
// layout.
func Publisher(c redis.UniversalClient, channel string, sharded bool) func(ctx context.Context, payload []byte) error {
	cc, cluster := c.(*redis.ClusterClient)
	switch {
	case sharded:
		return func(ctx context.Context, payload []byte) error { return c.SPublish(ctx, channel, payload).Err() }
	case cluster:
		return func(ctx context.Context, payload []byte) error {
			node, err := cc.MasterForKey(ctx, channel)
			if err == nil {
				err = node.Publish(ctx, channel, payload).Err()
			}
			if err != nil {
				cc.ReloadState(ctx)
			}
			return err
		}
	}
	return func(ctx context.Context, payload []byte) error { return c.Publish(ctx, channel, payload).Err() }
}

// checkClient refuses a client with go-redis's client-side caching on: it
// refuses SUBSCRIBE.
func checkClient(c redis.UniversalClient) error {
	if rc, ok := c.(*redis.Client); ok {
		o := rc.Options()
		if o.ClientSideCacheConfig != nil || o.ClientSideCache != nil {
			return errors.New("bus: the redis client has client-side caching enabled, which refuses SUBSCRIBE: give the cache a client without it")
		}
	}
	return nil
}

// Node returns this node's ID.
func (b *Bus) Node() NodeID { return b.opts.Node }

// Healthy reports whether the subscription is confirmed and no loss has been
// seen since.
func (b *Bus) Healthy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.healthy
}

// WaitHealthy blocks until the subscription is confirmed, ctx is done, or
// the bus is closed.
func (b *Bus) WaitHealthy(ctx context.Context) error {
	b.mu.Lock()
	if b.healthy {
		b.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	b.waiters = append(b.waiters, ch)
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		b.forgetWaiter(ch)
		return ctx.Err()
	case <-b.ctx.Done():
		return ErrClosed
	}
}

// forgetWaiter removes ch, the channel of a WaitHealthy that gave up, so
// that calls that time out while the subscription stays down do not pile
// up.
func (b *Bus) forgetWaiter(ch chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := slices.Index(b.waiters, ch); i >= 0 {
		b.waiters = slices.Delete(b.waiters, i, i+1)
	}
}

func (b *Bus) setHealthy(h bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.healthy = h
	if h {
		for _, ch := range b.waiters {
			close(ch)
		}
		b.waiters = nil
	}
}

// Close stops the bus's goroutines and waits for them. It is idempotent.
func (b *Bus) Close() error {
	b.once.Do(func() {
		b.cancel()
		b.mu.Lock()
		if b.sub != nil {
			b.sub.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return nil
}

func (b *Bus) observe(e Event) {
	if b.opts.Observe != nil {
		b.opts.Observe(e)
	}
}

// heartbeatLoop publishes this node's last sequence number every
// Heartbeat, until Close.
func (b *Bus) heartbeatLoop() {
	defer b.wg.Done()
	hb := time.NewTicker(b.opts.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-hb.C:
			if !b.takeTurn(b.ctx) {
				return // closed while a send held the turn
			}
			_ = b.send(b.ctx, Message{Kind: KindHeartbeat, Seq: b.seq})
			b.endTurn()
		}
	}
}

// takeTurn waits for the turn to publish, and reports whether it got it:
// false when ctx or the bus was done first.
func (b *Bus) takeTurn(ctx context.Context) bool {
	select {
	case b.turn <- struct{}{}:
		return true
	case <-ctx.Done():
	case <-b.ctx.Done():
	}
	return false
}

// endTurn gives the turn up.
func (b *Bus) endTurn() { <-b.turn }

// sendContext bounds one send: by Options.Timeout, ctx, and Close, so that
// Close never waits for a send to a server that hangs.
func (b *Bus) sendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	stop := context.AfterFunc(b.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// send publishes m as this node's (its Origin and send time set here),
// bounded by sendContext; the turn must be held, for sequence order.
func (b *Bus) send(ctx context.Context, m Message) error {
	m.Origin = b.opts.Node
	m.Sent = time.Now().UnixNano()
	ctx, cancel := b.sendContext(ctx)
	defer cancel()
	if err := b.opts.Publish(ctx, b.encode(m)); err != nil {
		b.observe(Event{Kind: EventPublishError, Err: err})
		return fmt.Errorf("bus: publish: %w", err)
	}
	if m.Kind != KindHeartbeat {
		b.observe(Event{Kind: EventSent, N: len(m.Items)})
	}
	return nil
}
