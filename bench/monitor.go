package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
)

// monitor lets the checker see which invalidations a tiercache node
// applied, and when. The library reports only that a node applied a bus
// message (an Event with its lag), not which keys it carried; the monitor
// subscribes to the same channel and decodes every message. Redis delivers
// a channel's messages to every subscriber in one order, and a node applies
// the other nodes' invalidations in that order, so the node's n-th applied
// message is the n-th invalidation on the channel that it did not send.
// Each match is checked against the send time the lag implies; a mismatch
// marks the node's log broken instead of guessing.
//
// The channel's name is the library's ("<namespace>:tiercache:bus"); the
// hello phase proves it: a monitor that hears no hellos fails the run.
type monitor struct {
	t     *truth
	sub   *redis.PubSub
	rdb   redis.UniversalClient
	nodes map[int]*nodeLog // the nodes hosted in this process, by index
	done  chan struct{}

	mu      sync.Mutex // protects the fields below
	msgs    []bus.Message
	covers  [][]cover          // per message, what it covers, worked out on receipt
	origins map[bus.NodeID]int // bus node -> fleet index, learnt from hellos
	cursor  map[int]int        // per hosted node, the next message to match
	err     error
	changed chan struct{} // closed and replaced whenever msgs or origins grow
}

// cover is what a message covers of one key, worked out when the monitor
// received it: by the time a delivery is mapped, up to a sync period
// later, a hot key's write log may have turned over.
type cover struct {
	key     int
	covered uint64
	// known is false if the log no longer reached back to the message's
	// send time even on receipt; upper is the key's version then, newer
	// than anything the message can cover.
	known bool
	upper uint64
}

func busChannel(namespace string) string { return namespace + ":tiercache:bus" }

func startMonitor(e *env, t *truth, namespace string, nodes map[int]*nodeLog) (*monitor, error) {
	rdb := e.plainClient()
	sub := rdb.Subscribe(context.Background(), busChannel(namespace))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		rdb.Close()
		return nil, fmt.Errorf("bus monitor: %w", err)
	}
	m := &monitor{t: t, sub: sub, rdb: rdb, nodes: nodes, done: make(chan struct{}),
		origins: make(map[bus.NodeID]int), cursor: make(map[int]int), changed: make(chan struct{})}
	for _, l := range nodes {
		l.deferred = true
	}
	go m.receive()
	return m, nil
}

func (m *monitor) receive() {
	defer close(m.done)
	for {
		msg, err := m.sub.ReceiveMessage(context.Background())
		if err != nil {
			return // closed
		}
		b, err := bus.Decode([]byte(msg.Payload))
		if err != nil {
			m.fail(fmt.Errorf("bus monitor: %w", err))
			continue
		}
		if b.Kind == bus.KindHeartbeat {
			continue
		}
		m.add(b)
	}
}

// add takes in message b as the monitor receives it.
func (m *monitor) add(b bus.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.Kind == bus.KindKeys && len(b.Items) == 1 && strings.HasPrefix(b.Items[0], helloPrefix) {
		if i, err := strconv.Atoi(b.Items[0][len(helloPrefix):]); err == nil {
			m.origins[b.Origin] = i
		}
	}
	var covers []cover
	if origin, ok := m.origins[b.Origin]; ok {
		sent := m.t.rel(time.Unix(0, b.Sent))
		for _, k := range m.keysOf(b) {
			upper := m.t.version(k)
			covered, known := m.t.coverage(k, origin, sent)
			covers = append(covers, cover{key: k, covered: covered, known: known, upper: upper})
		}
	}
	m.msgs = append(m.msgs, b)
	m.covers = append(m.covers, covers)
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *monitor) fail(err error) {
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.mu.Unlock()
}

// waitHellos waits until the monitor knows every one of the fleet's nodes.
func (m *monitor) waitHellos(ctx context.Context, nodes int) error {
	for {
		m.mu.Lock()
		n, ch := len(m.origins), m.changed
		m.mu.Unlock()
		if n >= nodes {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("bus monitor heard %d of %d hellos on %q (has the bus channel changed?)", n, nodes, m.sub.String())
		}
	}
}

// sync maps every delivery the hosted nodes applied so far onto the
// messages, waiting up to wait for messages the monitor has not seen yet.
func (m *monitor) sync(wait time.Duration) {
	deadline := time.Now().Add(wait)
	for idx, l := range m.nodes {
		for {
			progressed := l.mapNext(func(at int64, lag time.Duration) error { return m.match(idx, l, at, lag) })
			if !progressed {
				break
			}
		}
		for !l.caughtUp() && time.Now().Before(deadline) {
			m.mu.Lock()
			ch := m.changed
			m.mu.Unlock()
			select {
			case <-ch:
			case <-time.After(time.Until(deadline)):
			}
			for l.mapNext(func(at int64, lag time.Duration) error { return m.match(idx, l, at, lag) }) {
			}
		}
	}
}

// match names node idx's next delivery, applied at at with the lag the
// library measured. It runs under l's lock (from mapNext).
func (m *monitor) match(idx int, l *nodeLog, at int64, lag time.Duration) error {
	m.mu.Lock()
	var self bus.NodeID
	known := false
	for id, i := range m.origins {
		if i == idx {
			self, known = id, true
		}
	}
	if !known {
		m.mu.Unlock()
		return errNotYet
	}
	c := m.cursor[idx]
	for c < len(m.msgs) && m.msgs[c].Origin == self {
		c++
	}
	if c == len(m.msgs) {
		m.mu.Unlock()
		return errNotYet
	}
	msg, covers := m.msgs[c], m.covers[c]
	m.cursor[idx] = c + 1
	origin := m.origins[msg.Origin]
	m.mu.Unlock()
	sentAbs := time.Unix(0, msg.Sent)
	implied := m.t.abs(at).Add(-lag)
	if d := implied.Sub(sentAbs); d < -time.Millisecond || d > time.Second {
		return fmt.Errorf("node %d: delivery at %v does not match message sent at %v", idx, m.t.abs(at), sentAbs)
	}
	// covers is empty for a hello, or a message from a node the monitor
	// did not know yet: they carry no write.
	// Where the log still reaches back to the send time, it is asked again:
	// it now also holds the returns of invalidations whose writer had not
	// logged them yet when the message arrived.
	sent := m.t.rel(sentAbs)
	byPattern := msg.Kind == bus.KindPatterns
	for _, c := range covers {
		covered, known := c.covered, c.known
		if now, ok := m.t.coverage(c.key, origin, sent); ok {
			covered, known = max(covered, now), true
		}
		if !known {
			l.unknownLocked(c.key, c.upper, at)
			continue
		}
		l.appliedByLocked(c.key, covered, covered, at, byPattern)
	}
	return nil
}

// keysOf returns the keys message b invalidates.
func (m *monitor) keysOf(b bus.Message) []int {
	var keys []int
	for _, item := range b.Items {
		switch b.Kind {
		case bus.KindKeys:
			if k := parseKeyID(item); k >= 0 && k < m.t.keys && !strings.HasPrefix(item, helloPrefix) {
				keys = append(keys, k)
			}
		case bus.KindPatterns:
			if g := parseGroupPattern(item); g >= 0 {
				keys = append(keys, groupKeys(g, m.t.keys)...)
			}
		}
	}
	return keys
}

// errNotYet: the message a delivery matches has not reached the monitor.
var errNotYet = fmt.Errorf("not yet")

func (m *monitor) close() error {
	m.sub.Close()
	<-m.done
	m.mu.Lock()
	err := m.err
	m.mu.Unlock()
	m.rdb.Close()
	return err
}
