package bus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
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
	// the subscription as lost (so a hung server is noticed within three
	// intervals, 1.5 heartbeats by default). Reads have no deadline, so a
	// large message is never cut in two; its read must end within those
	// two intervals. Default: Heartbeat/2.
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

	pubMu sync.Mutex // serializes publishing; protects seq and every pubReq's done and err
	seq   uint64     // the last sequence number used

	qMu   sync.Mutex
	queue []*pubReq // Publish calls not yet taken by a sender, in call order

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	peers map[NodeID]*peer // sequence state per origin; only the receive goroutine uses it

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
	b := &Bus{opts: opts, peers: make(map[NodeID]*peer), kicks: make(chan struct{}, 1)}
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
		return ctx.Err()
	case <-b.ctx.Done():
		return ErrClosed
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

// Publish sends an invalidation of kind (KindKeys, KindPatterns, KindFlush
// or KindTags) to every other node, split into messages of at most
// MaxMessageBytes. It returns when every part was published or one failed
// (a failed part's sequence number is still used up, so receivers see a gap
// and flush). Publishes are serialized, so one node's sequence numbers
// reach Redis, and every subscriber, in order; each PUBLISH is bounded by
// Options.Timeout and by the ctx of the call that sends it (see below).
//
// Calls that arrive while another call's PUBLISH is in flight are sent
// together when it ends (a group commit): the next caller to take the
// turn sends every call queued by then, the items of consecutive calls of
// one kind in shared messages, and the others return as soon as that
// send ends. So an invalidation waits for at most one PUBLISH ahead of its
// own, not for every one queued before it. A call's items may then travel
// with other calls' items, sent by another call (with that call's ctx
// values, and without its cancellation when it carries others' items);
// a failed message fails every call it carried.
func (b *Bus) Publish(ctx context.Context, kind Kind, items ...string) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	return b.publish(ctx, &pubReq{kind: kind, items: items, ctx: ctx})
}

// checkKind refuses a kind that Publish and PublishAfter do not send.
func checkKind(kind Kind) error {
	if kind != KindKeys && kind != KindPatterns && kind != KindFlush && kind != KindTags {
		return fmt.Errorf("bus: cannot publish kind %d", kind)
	}
	return nil
}

// ErrNoPipeline is returned by [Bus.PublishAfter] when the bus cannot
// carry other commands with its messages: see [Bus.Pipelines].
var ErrNoPipeline = errors.New("bus: the client cannot pipeline commands with the messages (not a single server, or Sharded)")

// Pipelines reports whether [Bus.PublishAfter] can run: the Client is a
// single server's (*redis.Client) and Sharded is off.
func (b *Bus) Pipelines() bool {
	_, one := b.opts.Client.(*redis.Client)
	return one && !b.opts.Sharded
}

// PublishAfter is [Bus.Publish] with commands of the caller's that Redis
// runs first, in the same round trip: before adds them to the pipeline
// that carries the messages, on one connection, so that Redis has run them
// before any node can receive the messages (an invalidation's UNLINKs and
// its message, one round trip instead of two). before runs once, under the
// turn to publish, possibly on another caller's goroutine, with the
// context that bounds the pipeline, and returns a function (or nil) that
// the bus calls once the pipeline ran, while that context is still live,
// to read the outcome of the commands before added. Calls sent together
// share the pipeline, plain Publish calls among them: their messages too
// go out as PUBLISH on Client, never through Options.Publish. It returns
// ErrNoPipeline, running nothing, when Pipelines is false, and ErrClosed,
// running nothing, after Close.
func (b *Bus) PublishAfter(ctx context.Context, before func(ctx context.Context, p redis.Pipeliner) (after func()), kind Kind, items ...string) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if !b.Pipelines() {
		return ErrNoPipeline
	}
	return b.publish(ctx, &pubReq{kind: kind, items: items, ctx: ctx, before: before})
}

// publish queues req and waits for it to be sent, sending it (and every
// call queued with it) when its turn comes first; after Close it returns
// ErrClosed and queues nothing.
func (b *Bus) publish(ctx context.Context, req *pubReq) error {
	if b.ctx.Err() != nil {
		return ErrClosed
	}
	b.qMu.Lock()
	b.queue = append(b.queue, req)
	b.qMu.Unlock()
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	for !req.done {
		// Every call queued before this one took the turn is sent now,
		// this one included (it was queued before the lock was taken).
		b.qMu.Lock()
		reqs := b.queue
		b.queue = nil
		if b.opts.compat.noGroup {
			// One call per PUBLISH, in call order, until this one's.
			b.queue = reqs[1:]
			reqs = reqs[:1]
		}
		b.qMu.Unlock()
		b.sendQueued(ctx, reqs)
	}
	return req.err
}

// errSendPanicked is the error of the calls a send carried when a
// PublishAfter's before panicked during it.
var errSendPanicked = errors.New("bus: a publish with these items panicked")

// pubReq is one Publish call waiting to be sent.
type pubReq struct {
	kind   Kind
	items  []string
	ctx    context.Context
	before func(ctx context.Context, p redis.Pipeliner) func() // PublishAfter's
	done   bool                                                // set, under pubMu, once it was sent
	err    error
}

// sendQueued sends reqs, taken from the queue in call order, under pubMu:
// each run of consecutive calls of one kind as the messages of their
// items together. ctx is the sending caller's; a run that carries other
// calls is sent without its cancellation (each PUBLISH is still bounded by
// Options.Timeout), so that one caller giving up does not fail the others.
func (b *Bus) sendQueued(ctx context.Context, reqs []*pubReq) {
	defer func() {
		if p := recover(); p != nil {
			for _, r := range reqs {
				if !r.done {
					r.done, r.err = true, errSendPanicked
				}
			}
			panic(p)
		}
	}()
	for i := 0; i < len(reqs); {
		j := i + 1
		for j < len(reqs) && reqs[j].kind == reqs[i].kind {
			j++
		}
		run := reqs[i:j]
		items, sctx := run[0].items, run[0].ctx
		if len(run) > 1 {
			items = nil
			for _, r := range run {
				items = append(items, r.items...)
			}
			sctx = context.WithoutCancel(ctx)
		}
		var befores []func(context.Context, redis.Pipeliner) func()
		for _, r := range run {
			if r.before != nil {
				befores = append(befores, r.before)
			}
		}
		err := b.sendItems(sctx, run[0].kind, items, befores)
		for _, r := range run {
			r.done, r.err = true, err
		}
		i = j
	}
}

// sendItems publishes the messages of one kind's items, under pubMu, and
// returns the first error. With befores, the messages go in one pipeline
// after the commands they add.
func (b *Bus) sendItems(ctx context.Context, kind Kind, items []string, befores []func(context.Context, redis.Pipeliner) func()) error {
	batches := split(items, b.opts.MaxMessageBytes)
	if len(batches) == 0 {
		batches = [][]string{nil}
	}
	msgs := make([]Message, len(batches))
	for i, part := range batches {
		m := Message{Kind: kind, Items: part}
		if b.size(m) > b.opts.MaxMessageBytes {
			// One item too large for a message: every node flushes instead.
			b.opts.Logger.Warn("bus: an item exceeds MaxMessageBytes; sending a flush instead", "channel", b.opts.Channel, "bytes", len(part[0]), "max", b.opts.MaxMessageBytes)
			m = Message{Kind: KindFlush}
		}
		b.seq++
		m.Seq = b.seq
		msgs[i] = m
	}
	if len(befores) > 0 {
		return b.sendPipelined(ctx, msgs, befores)
	}
	var firstErr error
	for _, m := range msgs {
		if err := b.send(ctx, m); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// sendPipelined sends msgs as PUBLISHes on Client in one pipeline, after
// the commands befores add, calls what they return once it ran, and
// returns the first PUBLISH's error.
func (b *Bus) sendPipelined(ctx context.Context, msgs []Message, befores []func(context.Context, redis.Pipeliner) func()) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	p := b.opts.Client.Pipeline()
	var afters []func()
	addBefores := func() {
		for _, f := range befores {
			if after := f(ctx, p); after != nil {
				afters = append(afters, after)
			}
		}
	}
	if !b.opts.compat.publishFirst {
		addBefores()
	}
	cmds := make([]*redis.IntCmd, len(msgs))
	for i := range msgs {
		msgs[i].Origin = b.opts.Node
		msgs[i].Sent = time.Now().UnixNano()
		cmds[i] = p.Publish(ctx, b.opts.Channel, b.encode(msgs[i]))
	}
	if b.opts.compat.publishFirst {
		addBefores()
	}
	_, _ = p.Exec(ctx) // each command's own error is read below
	for _, after := range afters {
		after()
	}
	var firstErr error
	for i, c := range cmds {
		if err := c.Err(); err != nil {
			b.observe(Event{Kind: EventPublishError, Err: err})
			if firstErr == nil {
				firstErr = fmt.Errorf("bus: publish: %w", err)
			}
			continue
		}
		b.observe(Event{Kind: EventSent, N: len(msgs[i].Items)})
	}
	return firstErr
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
			b.pubMu.Lock()
			_ = b.send(b.ctx, Message{Kind: KindHeartbeat, Seq: b.seq})
			b.pubMu.Unlock()
		}
	}
}

func (b *Bus) send(ctx context.Context, m Message) error {
	m.Origin = b.opts.Node
	m.Sent = time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
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

// encode returns the wire form of m: signed under the first key, if any.
func (b *Bus) encode(m Message) []byte {
	if len(b.opts.Keys) > 0 {
		return EncodeSigned(m, b.opts.Keys[0])
	}
	return Encode(m)
}

// size returns the length of m's wire form.
func (b *Bus) size(m Message) int {
	n := headerSize + binary.MaxVarintLen64
	if len(b.opts.Keys) > 0 {
		n += MACSize
	}
	for _, it := range m.Items {
		n += binary.MaxVarintLen64 + len(it)
	}
	return n
}
