package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	errPingTimeout     = errors.New("bus: ping unanswered")
	errSilent          = errors.New("bus: no heartbeat, not even this node's own, for three heartbeats")
	errUnsubscribed    = errors.New("bus: the server ended the subscription")
	errUnexpectedFirst = errors.New("bus: the first reply was not the subscription")
	errRejected        = errors.New("bus: message rejected")
	maxBackoff         = time.Second
	initialBackoff     = 10 * time.Millisecond
	silentAfterBeats   = 3
	pingPatience       = 2
)

// receiveLoop subscribes, receives until the subscription is lost, reports
// the loss, and subscribes again with a fresh connection, until Close. A
// lost subscription is always closed and replaced (go-redis would otherwise
// keep a silent connection, or resubscribe without telling anyone).
func (b *Bus) receiveLoop() {
	defer b.wg.Done()
	backoff := initialBackoff
	for {
		ps := b.subscribe()
		b.mu.Lock()
		b.sub = ps
		b.mu.Unlock()
		if b.ctx.Err() != nil { // Close ran before sub was set
			ps.Close()
			return
		}
		confirmed, err := b.session(ps)
		ps.Close()
		if b.ctx.Err() != nil {
			return
		}
		b.lost(err)
		if cc, ok := b.opts.Client.(*redis.ClusterClient); ok {
			// The channel's node may have failed over or handed the slot
			// on: a cluster client picks the node for the next
			// subscription from its layout, which it reloads by itself only
			// after a MOVED or once a minute.
			cc.ReloadState(b.ctx)
		}
		if confirmed {
			backoff = initialBackoff
		}
		if !b.pause(backoff) {
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// pause waits before the next subscription: backoff, or less if the
// client's connection pool sees Redis answer meanwhile (then the
// subscription is retried at once, though never sooner than
// initialBackoff after the last attempt). It reports false on Close.
func (b *Bus) pause(backoff time.Duration) bool {
	if b.opts.compat.backoff > 0 {
		backoff = b.opts.compat.backoff
	}
	earliest := time.Now().Add(initialBackoff)
	t := time.NewTimer(backoff)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-b.kicks:
			d := time.Until(earliest)
			if d <= 0 {
				return true
			}
			t.Reset(min(d, backoff))
		}
	}
}

// kickHook watches the client's commands: while the subscription is lost,
// a command that Redis answers (a value or an error reply, not a network
// error) ends the bus's backoff, so the subscription comes back as soon as
// the pool does. go-redis cannot remove a hook: after Close it only
// forwards.
type kickHook struct{ b *Bus }

var _ redis.Hook = kickHook{}

func (h kickHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h kickHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.seen(err)
		return err
	}
}

func (h kickHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if len(cmds) > 0 {
			h.seen(cmds[0].Err())
		}
		return err
	}
}

// seen kicks the bus if it waits and err says that Redis answered.
func (h kickHook) seen(err error) {
	// A closed bus's hook stays on the client (go-redis cannot remove one):
	// it must cost each command no more than these loads.
	if h.b.ctx.Err() != nil || !h.b.waiting.Load() || !answered(err) {
		return
	}
	select {
	case h.b.kicks <- struct{}{}:
	default:
	}
}

// answered reports whether a command's err is Redis's answer (none, a
// miss, or an error reply) rather than a failure to reach it.
func answered(err error) bool {
	if err == nil {
		return true
	}
	var re redis.Error // escapes: allocated only for an error
	return errors.As(err, &re) && !unavailable(err)
}

// unavailable reports whether an error reply says the server cannot serve
// yet (a restarted server loading its data).
func unavailable(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "LOADING") || strings.HasPrefix(s, "MASTERDOWN") || strings.HasPrefix(s, "CLUSTERDOWN") || strings.HasPrefix(s, "BUSY")
}

// subscribe starts a subscription to the channel: SUBSCRIBE, or SSUBSCRIBE
// when sharded.
func (b *Bus) subscribe() *redis.PubSub {
	if b.opts.Sharded {
		return b.opts.Client.SSubscribe(b.ctx, b.opts.Channel)
	}
	if b.wakeOn() {
		// The channel first: its confirmation is the one session waits for.
		return b.opts.Client.Subscribe(b.ctx, b.opts.Channel, b.opts.Wake)
	}
	return b.opts.Client.Subscribe(b.ctx, b.opts.Channel)
}

// wakeOn reports whether subscriptions include the wake channel.
func (b *Bus) wakeOn() bool {
	return b.opts.Wake != "" && !b.opts.Sharded && !b.wakeRefused.Load()
}

// lost marks the subscription lost and tells the handler, once per loss.
func (b *Bus) lost(err error) {
	wasHealthy := b.Healthy()
	b.setHealthy(false)
	if !wasHealthy {
		return
	}
	b.opts.Logger.Warn("bus: subscription lost; flushing L1", "channel", b.opts.Channel, "err", err)
	b.observe(Event{Kind: EventLost, Err: err})
	b.opts.Handler.Lost(err)
}

// session runs one subscription until it fails, and reports whether it was
// confirmed.
func (b *Bus) session(ps *redis.PubSub) (confirmed bool, err error) {
	r := receiver{b: b, peers: b.peers}
	msg, err := ps.ReceiveTimeout(b.ctx, b.opts.PingInterval*2)
	if err != nil {
		if b.wakeOn() && redis.HasErrorPrefix(err, "NOPERM") {
			// An ACL that allows the bus's channel only: subscribe to it
			// alone from now on (the next attempt comes after the
			// shortest backoff).
			b.wakeRefused.Store(true)
			b.opts.Logger.Warn("bus: the Redis user may not use the wake channel; nodes that wait for another node's load will poll", "channel", b.opts.Wake, "err", err)
		}
		return false, err
	}
	if s, ok := msg.(*redis.Subscription); !ok || s.Kind != "subscribe" && s.Kind != "ssubscribe" {
		return false, fmt.Errorf("%w: %T", errUnexpectedFirst, msg)
	}
	b.waiting.Store(false)
	if b.opts.WakeReady != nil {
		b.opts.WakeReady(b.wakeOn())
	}
	b.opts.Handler.Restored() // first: WaitHealthy returns only once the handler has acted
	b.setHealthy(true)
	b.observe(Event{Kind: EventRestored})
	defer b.waiting.Store(true)
	if b.opts.compat.timeout {
		return true, r.runTimeout(ps)
	}
	return true, r.run(ps)
}

// receiver is the state of one confirmed subscription.
type receiver struct {
	b           *Bus
	peers       map[NodeID]*peer // the bus's, kept across subscriptions
	pingPending bool
	// start is when the subscription's receiving began; its monotonic
	// reading is what lastOwnBeat counts from, so that a step of the wall
	// clock neither hides this node's silence nor fakes it.
	start       time.Time
	lastOwnBeat atomic.Int64 // ns since start
	active      atomic.Bool  // something arrived since the watcher last looked
	failure     atomic.Pointer[error]
}

// run receives until the subscription fails. Reads have no deadline: a
// read timeout could end a read in the middle of a large message and leave
// the connection's reader in the middle of a reply ("can't parse"). A
// watcher goroutine pings instead when nothing arrived for PingInterval,
// and ends the subscription (by closing it) when the ping is not answered
// within two more, or when this node's own heartbeats stop.
func (r *receiver) run(ps *redis.PubSub) error {
	b := r.b
	r.start = time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.watch(ps, stop); err != nil {
			r.failure.Store(&err)
			ps.Close() // ends the blocked read
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for {
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			if b.ctx.Err() != nil {
				return b.ctx.Err()
			}
			if f := r.failure.Load(); f != nil {
				return *f
			}
			return err
		}
		r.active.Store(true)
		if err := r.handle(msg); err != nil {
			return err
		}
	}
}

// watch pings the server when nothing arrived for PingInterval and reports
// a failure: a ping unanswered for pingPatience intervals, a failed one, or
// this node's own heartbeats missing for silentAfterBeats heartbeats. It
// returns nil once stop is closed. The reply to a ping queues behind a
// message being read, so the patience is what a large message may take
// to read (a 10 MB one takes 1-2 s under the race detector).
func (r *receiver) watch(ps *redis.PubSub, stop <-chan struct{}) error {
	b := r.b
	t := time.NewTicker(b.opts.PingInterval)
	defer t.Stop()
	pending := 0 // intervals since an unanswered ping
	for {
		select {
		case <-stop:
			return nil
		case <-t.C:
		}
		if r.silent() {
			return errSilent
		}
		if r.active.Swap(false) {
			pending = 0
			continue
		}
		if pending == pingPatience {
			return errPingTimeout
		}
		if pending == 0 {
			if err := ps.Ping(b.ctx); err != nil {
				return err
			}
		}
		pending++
	}
}

// runTimeout is run as it was before large messages were handled: it
// reads with a timeout and pings on the same goroutine (compat.timeout).
func (r *receiver) runTimeout(ps *redis.PubSub) error {
	b := r.b
	r.start = time.Now()
	for {
		msg, err := ps.ReceiveTimeout(b.ctx, b.opts.PingInterval)
		if err != nil {
			if b.ctx.Err() != nil {
				return b.ctx.Err()
			}
			if !isTimeout(err) {
				return err
			}
			if r.pingPending {
				return errPingTimeout
			}
			if err := ps.Ping(b.ctx); err != nil {
				return err
			}
			r.pingPending = true
		} else {
			r.pingPending = false
			if err := r.handle(msg); err != nil {
				return err
			}
		}
		if r.silent() {
			return errSilent
		}
	}
}

// ownBeat records that this node's own heartbeat arrived now.
func (r *receiver) ownBeat() { r.lastOwnBeat.Store(int64(time.Since(r.start))) }

// lastBeat returns when this node's own heartbeat last arrived (the start
// of the subscription if none did). It carries a monotonic reading.
func (r *receiver) lastBeat() time.Time {
	return r.start.Add(time.Duration(r.lastOwnBeat.Load()))
}

// silent reports whether this node's own heartbeats have been missing for
// silentAfterBeats heartbeats.
func (r *receiver) silent() bool {
	return time.Since(r.lastBeat()) > time.Duration(silentAfterBeats)*r.b.opts.Heartbeat
}

func (r *receiver) handle(msg any) error {
	switch m := msg.(type) {
	case *redis.Subscription:
		if m.Kind == "unsubscribe" || m.Kind == "sunsubscribe" {
			return errUnsubscribed
		}
	case *redis.Message:
		if r.b.opts.Wake != "" && m.Channel == r.b.opts.Wake {
			r.b.opts.OnWake(m.Payload)
			return nil
		}
		r.message(m.Payload)
	}
	return nil
}

func (r *receiver) message(payload string) {
	b := r.b
	if len(payload) > b.opts.MaxMessageBytes {
		b.reject(fmt.Errorf("%w: %d bytes, more than MaxMessageBytes (%d)", errRejected, len(payload), b.opts.MaxMessageBytes))
		return
	}
	raw := []byte(payload)
	if len(b.opts.Keys) > 0 && !Verify(raw, b.opts.Keys) {
		b.reject(fmt.Errorf("%w: not signed under this bus's keys", errRejected))
		return
	}
	m, err := Decode(raw)
	if err != nil {
		b.opts.Logger.Warn("bus: ignoring a malformed message", "channel", b.opts.Channel, "err", err)
		b.observe(Event{Kind: EventMalformed, Err: err})
		return
	}
	if m.Origin == b.opts.Node {
		if m.Kind == KindHeartbeat {
			r.ownBeat()
		}
		return
	}
	if r.gap(m) {
		b.opts.Logger.Warn("bus: a message from another node went missing; flushing L1", "node", m.Origin.String(), "seq", m.Seq)
		b.observe(Event{Kind: EventGap})
		b.opts.Handler.Gap(m.Origin)
	}
	if m.Kind == KindHeartbeat {
		return
	}
	b.opts.Handler.Apply(m)
	b.observe(Event{Kind: EventReceived, N: len(m.Items), Lag: time.Duration(time.Now().UnixNano() - m.Sent)})
}

// reject drops a message unread and counts it.
func (b *Bus) reject(err error) {
	b.opts.Logger.Warn("bus: dropping a message", "channel", b.opts.Channel, "err", err)
	b.observe(Event{Kind: EventRejected, Err: err})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
