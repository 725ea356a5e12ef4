package bus

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	errPingTimeout     = errors.New("bus: ping unanswered")
	errSilent          = errors.New("bus: no heartbeat, not even this node's own, for three heartbeats")
	errUnsubscribed    = errors.New("bus: the server ended the subscription")
	errUnexpectedFirst = errors.New("bus: the first reply was not the subscription")
	maxBackoff         = time.Second
	initialBackoff     = 10 * time.Millisecond
	silentAfterBeats   = 3
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
		t := time.NewTimer(backoff)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// subscribe starts a subscription to the channel: SUBSCRIBE, or SSUBSCRIBE
// when sharded.
func (b *Bus) subscribe() *redis.PubSub {
	if b.opts.Sharded {
		return b.opts.Client.SSubscribe(b.ctx, b.opts.Channel)
	}
	return b.opts.Client.Subscribe(b.ctx, b.opts.Channel)
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
		return false, err
	}
	if s, ok := msg.(*redis.Subscription); !ok || s.Kind != "subscribe" && s.Kind != "ssubscribe" {
		return false, fmt.Errorf("%w: %T", errUnexpectedFirst, msg)
	}
	b.opts.Handler.Restored() // first: WaitHealthy returns only once the handler has acted
	b.setHealthy(true)
	b.observe(Event{Kind: EventRestored})
	return true, r.run(ps)
}

// receiver is the state of one confirmed subscription.
type receiver struct {
	b           *Bus
	peers       map[NodeID]uint64 // the bus's, kept across subscriptions
	pingPending bool
	lastOwnBeat time.Time
}

func (r *receiver) run(ps *redis.PubSub) error {
	b := r.b
	r.lastOwnBeat = time.Now()
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
		if time.Since(r.lastOwnBeat) > time.Duration(silentAfterBeats)*b.opts.Heartbeat {
			return errSilent
		}
	}
}

func (r *receiver) handle(msg any) error {
	switch m := msg.(type) {
	case *redis.Subscription:
		if m.Kind == "unsubscribe" || m.Kind == "sunsubscribe" {
			return errUnsubscribed
		}
	case *redis.Message:
		r.message(m.Payload)
	}
	return nil
}

func (r *receiver) message(payload string) {
	b := r.b
	m, err := Decode([]byte(payload))
	if err != nil {
		b.opts.Logger.Warn("bus: ignoring a malformed message", "channel", b.opts.Channel, "err", err)
		b.observe(Event{Kind: EventMalformed, Err: err})
		return
	}
	if m.Origin == b.opts.Node {
		if m.Kind == KindHeartbeat {
			r.lastOwnBeat = time.Now()
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

// gap records m's sequence number and reports whether a message of its
// origin went missing before it. Sequence numbers are kept across
// subscriptions, and an origin heard of for the first time counts as
// having sent nothing yet, so the first message of an origin after a
// (re)subscription is checked like any other: a new subscription may be
// confirmed on a node that still misses what is published elsewhere (on a
// cluster, a replica that its new master does not count in its shard yet),
// and the flush that ended the outage does not cover a message lost after
// it. What an origin sent while no subscription was up shows as a gap
// too, which costs one more flush right after that one.
func (r *receiver) gap(m Message) bool {
	last := r.peers[m.Origin]
	if m.Seq > last {
		r.peers[m.Origin] = m.Seq
	}
	if m.Kind == KindHeartbeat {
		return m.Seq > last
	}
	return m.Seq > last+1
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
