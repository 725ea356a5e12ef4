package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/tiered"
)

var cmdWatch = &command{
	name:    "watch",
	args:    "",
	summary: "show the invalidation bus live: rates by kind, origins, gaps, malformed",
	help: `
Subscribes to the namespace's bus channel and, every --interval, shows the
messages per second by kind (keys, patterns, tags, flush, heartbeat), the
items they carried, every origin seen with its last sequence number and how
long ago its last heartbeat came, the gaps in an origin's sequence numbers (a
message that went missing, which makes every node flush its L1), and the
messages that did not decode. A gap is counted by the nodes' own rules
(docs/protocol.md, "Sequence numbers"), so watch reports one where a node
flushes; but the first numbered message of an origin sets where its
numbering starts, so joining mid-stream is no gap. A lost subscription (a
receive error, the server ending it, as a Redis Cluster shard that fails
over does with --sharded, or a ping that a quiet interval sends going
unanswered within --timeout) is reported, and watch subscribes again:
messages sent meanwhile are not seen. Runs until interrupted,
for --for, or until --count messages have come. --json prints one JSON
object per line (ticks, and with --messages every message) for scripts.
It publishes nothing.`,
	flags: func(fs *flagSet, e *env) {
		fs.BoolVar(&e.jsonOut, "json", false, "print JSON lines instead of text")
		fs.DurationVar(&e.watch.interval, "interval", time.Second, "how often to print the rates")
		fs.DurationVar(&e.watch.dur, "for", 0, "stop after this `duration` (0: until interrupted)")
		fs.IntVar(&e.watch.count, "count", 0, "stop after this many messages, heartbeats included (0: no limit)")
		fs.BoolVar(&e.watch.messages, "messages", false, "also print every message as it arrives")
	},
	run: func(ctx context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usagef("watch takes no arguments, got %q", args)
		}
		o := e.watch
		if o.interval <= 0 || o.dur < 0 || o.count < 0 {
			return usagef("--interval must be positive, --for and --count not negative")
		}
		rdb, err := e.conn.client(e.getenv)
		if err != nil {
			return err
		}
		defer rdb.Close()
		if o.dur > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, o.dur)
			defer cancel()
		}
		w := &watcher{e: e, rdb: rdb, channel: tiered.BusChannel(e.conn.namespace), origins: map[bus.NodeID]*origin{}}
		return w.run(ctx)
	},
}

// watchFlags are watch's own flags.
type watchFlags struct {
	interval, dur time.Duration
	count         int
	messages      bool
}

// origin is what watch knows of one sender.
type origin struct {
	// numbered is set once a message with a number other than 0 came: the
	// first one sets last, as watch may start mid-stream.
	numbered bool
	last     uint64    // the last number accounted for, as a node keeps it (bus/seq.go, peer.last)
	odd      uint64    // the last number that did not follow last, 0: none since (peer.odd)
	lastBeat time.Time // zero: no heartbeat yet
	messages int64     // heartbeats included
	gaps     int64
}

// seqWindow is the bus's: how far ahead of the last number a message may
// be and still be the same sender's next one (bus/seq.go).
const seqWindow = 1 << 32

// follows reports whether m can come after last from one sender (ok), and
// whether a message went missing between them (gap), modulo 2^64 within
// seqWindow: bus/seq.go's follows, the rule by which every node decides to
// flush.
func follows(last uint64, m bus.Message) (gap, ok bool) {
	d := m.Seq - last // modulo 2^64
	if m.Kind == bus.KindHeartbeat {
		return d != 0, d < seqWindow
	}
	return d != 1, d != 0 && d < seqWindow
}

// check accounts for m's sequence number as a node's receiver does
// (bus/seq.go, receiver.gap), and reports whether a node counts a gap
// (and flushes its L1), whether the number was adopted, and the number it
// followed (the last one, or the odd one it resynchronized on). Unlike a
// node, watch takes the first numbered message of an origin as its
// baseline rather than a gap: it may start mid-stream, where the nodes
// heard the origin before.
func (o *origin) check(m bus.Message) (gap, adopted bool, after uint64) {
	after = o.last
	switch {
	case m.Seq == 0:
		return false, false, after // a sender that numbers nothing: never a gap
	case !o.numbered:
		o.numbered, o.last = true, m.Seq
		return false, true, m.Seq
	}
	if gap, ok := follows(o.last, m); ok {
		o.last, o.odd = m.Seq, 0
		return gap, true, after
	}
	if odd := o.odd; odd != 0 {
		if gap, ok := follows(odd, m); ok {
			// The origin is really at this number: the nodes follow it from here.
			o.last, o.odd = m.Seq, 0
			return gap, true, odd
		}
	}
	o.odd = m.Seq // a repeat, behind, or far ahead: one gap, not adopted
	return true, false, after
}

// counts are the tallies of one interval, or of the whole run.
type counts struct {
	Messages  map[string]int64 `json:"messages"` // by kind
	Items     map[string]int64 `json:"items"`    // by kind
	Gaps      int64            `json:"gaps"`
	Malformed int64            `json:"malformed"`
	Lost      int64            `json:"lost"`
}

func newCounts() counts { return counts{Messages: map[string]int64{}, Items: map[string]int64{}} }

func (c *counts) total() (n int64) {
	for _, v := range c.Messages {
		n += v
	}
	return n
}

// watcher is one run of watch.
type watcher struct {
	e        *env
	rdb      redis.UniversalClient
	channel  string
	start    time.Time
	last     time.Time // when the current interval began
	tick     counts
	all      counts
	origins  map[bus.NodeID]*origin
	received int64 // every message, heartbeats and malformed included, for --count
}

var (
	errPingUnanswered = errors.New("ping unanswered within --timeout")
	errUnsubscribed   = errors.New("the server ended the subscription, as after a failover or a slot migration")
)

// unsubscribed reports whether msg is the server's notice that it ended
// the subscription. The bus's receiver takes it for a loss too
// (bus/receive.go).
func unsubscribed(msg any) bool {
	s, ok := msg.(*redis.Subscription)
	return ok && (s.Kind == "unsubscribe" || s.Kind == "sunsubscribe")
}

// subscription is one subscription to the channel, closed as soon as the
// run's ctx ends: a receive in progress waits for its timeout (up to
// --interval) otherwise, as go-redis bounds it by a ctx's deadline but not
// by its cancellation.
type subscription struct {
	*redis.PubSub
	stop func() bool // unregisters the close on ctx's end
}

// close closes the subscription.
func (s *subscription) close() {
	s.stop()
	s.PubSub.Close()
}

func (w *watcher) subscribe(ctx context.Context) (*subscription, error) {
	var ps *redis.PubSub
	if w.e.conn.sharded {
		ps = w.rdb.SSubscribe(ctx, w.channel)
	} else {
		ps = w.rdb.Subscribe(ctx, w.channel)
	}
	sub := &subscription{PubSub: ps, stop: context.AfterFunc(ctx, func() { ps.Close() })}
	msg, err := ps.ReceiveTimeout(ctx, w.e.conn.timeout)
	if err == nil {
		if _, ok := msg.(*redis.Subscription); !ok {
			err = fmt.Errorf("unexpected first reply %T", msg)
		}
	}
	if err != nil {
		sub.close()
		if errors.Is(err, redis.ErrClosed) && ctx.Err() != nil {
			err = ctx.Err() // closed because ctx ended, not by the server
		}
		return nil, fmt.Errorf("redis %s: subscribe %s: %w", describe(w.rdb), w.channel, err)
	}
	return sub, nil
}

func (w *watcher) run(ctx context.Context) error {
	ps, err := w.subscribe(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if ps != nil {
			ps.close()
		}
	}()
	w.start = time.Now()
	w.last, w.tick, w.all = w.start, newCounts(), newCounts()
	w.emitStart()
	next := w.start.Add(w.e.watch.interval)
	heard, pingPending := false, false
	var pingSent time.Time
	for {
		msg, err := ps.ReceiveTimeout(ctx, max(time.Until(next), time.Millisecond))
		switch {
		case ctx.Err() != nil:
			w.emitTick(time.Now(), true)
			return nil
		case err != nil && !isTimeout(err):
			if ps = w.lose(ctx, ps, err); ps == nil {
				w.emitTick(time.Now(), true)
				return nil
			}
		case err == nil && unsubscribed(msg):
			// The server ended the subscription: on a cluster, the
			// channel's shard failed over or its slot moved (sharded
			// pub/sub). Nothing more comes on this connection.
			if ps = w.lose(ctx, ps, fmt.Errorf("%w (%s)", errUnsubscribed, msg.(*redis.Subscription).Kind)); ps == nil {
				w.emitTick(time.Now(), true)
				return nil
			}
			heard, pingPending = true, false
		case err == nil:
			heard, pingPending = true, false
			w.handle(msg)
			if w.e.watch.count > 0 && w.received >= int64(w.e.watch.count) {
				w.emitTick(time.Now(), true)
				return nil
			}
		}
		if now := time.Now(); !now.Before(next) {
			w.emitTick(now, false)
			next = next.Add(w.e.watch.interval * (now.Sub(next)/w.e.watch.interval + 1))
			switch {
			case heard:
			case pingPending:
				if now.Sub(pingSent) < w.e.conn.timeout {
					break // the server has --timeout to answer
				}
				if ps = w.lose(ctx, ps, errPingUnanswered); ps == nil {
					w.emitTick(time.Now(), true)
					return nil
				}
				pingPending = false
			default:
				pingPending, pingSent = ps.Ping(ctx) == nil, now
			}
			heard = false
		}
	}
}

// lose reports a lost subscription and subscribes again; it returns the
// new subscription, or nil when ctx ended first.
func (w *watcher) lose(ctx context.Context, ps *subscription, cause error) *subscription {
	ps.close()
	w.tick.Lost++
	w.all.Lost++
	w.emitEvent("lost", map[string]any{"error": oneLine(cause.Error())},
		"subscription lost (%s): messages sent meanwhile are not seen; subscribing again", oneLine(cause.Error()))
	for {
		t := time.NewTimer(min(w.e.watch.interval, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if ps, err := w.subscribe(ctx); err == nil {
			w.emitEvent("restored", nil, "subscribed again")
			return ps
		}
	}
}

func (w *watcher) handle(msg any) {
	m, ok := msg.(*redis.Message)
	if !ok {
		return // a pong or a subscription confirmation
	}
	w.received++
	now := time.Now()
	dec, err := bus.Decode([]byte(m.Payload))
	if err != nil {
		w.tick.Malformed++
		w.all.Malformed++
		w.emitEvent("malformed", map[string]any{"error": err.Error(), "bytes": len(m.Payload)},
			"malformed message (%d bytes): %v", len(m.Payload), err)
		return
	}
	kind := kindName(dec.Kind)
	for _, c := range []*counts{&w.tick, &w.all} {
		c.Messages[kind]++
		c.Items[kind] += int64(len(dec.Items))
	}
	o := w.origins[dec.Origin]
	if o == nil {
		o = &origin{}
		w.origins[dec.Origin] = o
	}
	o.messages++
	if dec.Kind == bus.KindHeartbeat {
		o.lastBeat = now
	}
	gap, adopted, after := o.check(dec)
	if w.e.watch.messages {
		lag := time.Duration(now.UnixNano() - dec.Sent)
		w.emitEvent("message", map[string]any{
			"origin": dec.Origin.String(), "kind": kind, "seq": dec.Seq,
			"sent": time.Unix(0, dec.Sent).UTC().Format(time.RFC3339Nano), "lag_us": lag.Microseconds(), "items": dec.Items,
		}, "%-9s origin %s seq %d lag %v items %q", kind, dec.Origin, dec.Seq, lag.Round(time.Microsecond), dec.Items)
	}
	if gap {
		o.gaps++
		w.tick.Gaps++
		w.all.Gaps++
		fields := map[string]any{"origin": dec.Origin.String(), "after": after, "seq": dec.Seq, "adopted": adopted}
		if adopted {
			w.emitEvent("gap", fields, "gap: origin %s jumped from seq %d to %d (nodes flush their L1)", dec.Origin, after, dec.Seq)
		} else {
			w.emitEvent("gap", fields, "gap: origin %s sent seq %d after %d, not a number that can follow (a repeat, behind, or far ahead): nodes flush their L1 and still follow on from %d",
				dec.Origin, dec.Seq, after, after)
		}
	}
}

// emitStart says what is watched.
func (w *watcher) emitStart() {
	w.emitEvent("subscribed", map[string]any{"channel": w.channel, "redis": describe(w.rdb)},
		"watching %s on %s (interval %v)", w.channel, describe(w.rdb), w.e.watch.interval)
}

// emitEvent prints one event: a JSON line with event and fields, or the
// text of format.
func (w *watcher) emitEvent(event string, fields map[string]any, format string, a ...any) {
	if w.e.jsonOut {
		obj := map[string]any{"event": event, "time": time.Now().UTC().Format(time.RFC3339Nano)}
		for k, v := range fields {
			obj[k] = v
		}
		b, _ := json.Marshal(obj)
		fmt.Fprintf(w.e.stdout, "%s\n", b)
		return
	}
	fmt.Fprintf(w.e.stdout, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

// originView is one origin in a tick's JSON.
type originView struct {
	Origin         string `json:"origin"`
	Seq            uint64 `json:"seq"`
	Messages       int64  `json:"messages"`
	Gaps           int64  `json:"gaps"`
	LastHeartbeat  *int64 `json:"last_heartbeat_ms_ago"` // null: none seen
	heartbeatHuman string
}

// emitTick prints the interval that ends at now and starts the next one.
func (w *watcher) emitTick(now time.Time, final bool) {
	secs := now.Sub(w.last).Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	rates := map[string]float64{}
	for _, k := range []string{"keys", "patterns", "tags", "flush", "heartbeat"} {
		rates[k] = round(float64(w.tick.Messages[k]) / secs)
	}
	var views []originView
	for id, o := range w.origins {
		v := originView{Origin: id.String(), Seq: o.last, Messages: o.messages, Gaps: o.gaps, heartbeatHuman: "no heartbeat yet"}
		if !o.lastBeat.IsZero() {
			ago := now.Sub(o.lastBeat).Milliseconds()
			v.LastHeartbeat = &ago
			v.heartbeatHuman = fmt.Sprintf("heartbeat %v ago", now.Sub(o.lastBeat).Round(time.Millisecond))
		}
		views = append(views, v)
	}
	slices.SortFunc(views, func(a, b originView) int { return strings.Compare(a.Origin, b.Origin) })
	event := "tick"
	if final {
		event = "end"
	}
	if w.e.jsonOut {
		obj := map[string]any{
			"event": event, "time": now.UTC().Format(time.RFC3339Nano),
			"interval_s": round(secs), "elapsed_s": round(now.Sub(w.start).Seconds()),
			"per_second": rates, "interval": w.tick, "totals": w.all, "origins": views,
		}
		if views == nil {
			obj["origins"] = []originView{}
		}
		b, _ := json.Marshal(obj)
		fmt.Fprintf(w.e.stdout, "%s\n", b)
	} else {
		label := "per second"
		if final {
			label = fmt.Sprintf("per second (last %v)", now.Sub(w.last).Round(time.Millisecond))
		}
		fmt.Fprintf(w.e.stdout, "%s  %s: keys %g (%d items), patterns %g (%d items), tags %g (%d items), flush %g, heartbeat %g; gaps %d, malformed %d, lost %d\n",
			now.Format("15:04:05.000"), label, rates["keys"], w.tick.Items["keys"], rates["patterns"], w.tick.Items["patterns"],
			rates["tags"], w.tick.Items["tags"], rates["flush"], rates["heartbeat"], w.tick.Gaps, w.tick.Malformed, w.tick.Lost)
		for _, v := range views {
			fmt.Fprintf(w.e.stdout, "    origin %s  seq %d  %s  messages %d  gaps %d\n", v.Origin, v.Seq, v.heartbeatHuman, v.Messages, v.Gaps)
		}
		if final {
			fmt.Fprintf(w.e.stdout, "%s  totals over %v: %d messages (keys %d, patterns %d, tags %d, flush %d, heartbeat %d), gaps %d, malformed %d, lost %d\n",
				now.Format("15:04:05.000"), now.Sub(w.start).Round(time.Millisecond), w.all.total(),
				w.all.Messages["keys"], w.all.Messages["patterns"], w.all.Messages["tags"], w.all.Messages["flush"], w.all.Messages["heartbeat"],
				w.all.Gaps, w.all.Malformed, w.all.Lost)
		}
	}
	w.last, w.tick = now, newCounts()
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
