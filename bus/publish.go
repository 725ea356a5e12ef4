package bus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Publishing: group commit of the calls, pipelines with the writes that
// must precede a message, and the encoding of messages.

// Publish sends an invalidation of kind (KindKeys, KindPatterns, KindFlush
// or KindTags) to every other node, split into messages of at most
// MaxMessageBytes. It returns when every part was published or one failed
// (a failed part's sequence number is still used up, so receivers see a gap
// and flush). Publishes are serialized, so one node's sequence numbers
// reach Redis, and every subscriber, in order; each PUBLISH is bounded by
// Options.Timeout, by Close, and by the ctx of the call that sends it (see
// below). A call whose ctx ends while it waits for its turn returns ctx's
// error, and its items are not sent, unless another call's send already
// carries them (then it waits for that send).
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
	if err := checkKind(kind, items); err != nil {
		return err
	}
	return b.publish(ctx, &pubReq{kind: kind, items: items, ctx: ctx})
}

// checkKind refuses a kind that Publish and PublishAfter do not send, and
// items with KindFlush (a flush carries none: receivers would drop it as
// malformed).
func checkKind(kind Kind, items []string) error {
	if kind != KindKeys && kind != KindPatterns && kind != KindFlush && kind != KindTags {
		return fmt.Errorf("bus: cannot publish kind %d", kind)
	}
	if kind == KindFlush && len(items) > 0 {
		return errors.New("bus: a flush carries no items")
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
// ErrNoPipeline, running nothing, when Pipelines is false; ErrClosed,
// running nothing, after Close; and ctx's error, running nothing, when ctx
// ends before the call's turn to publish comes (see Publish).
func (b *Bus) PublishAfter(ctx context.Context, before func(ctx context.Context, p redis.Pipeliner) (after func()), kind Kind, items ...string) error {
	if err := checkKind(kind, items); err != nil {
		return err
	}
	if !b.Pipelines() {
		return ErrNoPipeline
	}
	return b.publish(ctx, &pubReq{kind: kind, items: items, ctx: ctx, before: before})
}

// publish queues req and waits for it to be sent, sending it (and every
// call queued with it) when its turn comes first; after Close it returns
// ErrClosed and queues nothing. A caller whose ctx ends, or whose bus
// closes, while req waits in the queue takes req back and returns ctx's
// error (ErrClosed); once a sender took req, the caller waits for that
// send, which Options.Timeout and Close bound.
func (b *Bus) publish(ctx context.Context, req *pubReq) error {
	if b.ctx.Err() != nil {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.qMu.Lock()
	b.queue = append(b.queue, req)
	b.qMu.Unlock()
	if !b.takeTurn(ctx) {
		if b.withdraw(req) {
			if b.ctx.Err() != nil {
				return ErrClosed
			}
			return ctx.Err()
		}
		b.turn <- struct{}{} // a sender has req: wait for its send to end
	}
	defer b.endTurn()
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

// withdraw takes req out of the queue if no sender took it yet, and
// reports whether it did.
func (b *Bus) withdraw(req *pubReq) bool {
	b.qMu.Lock()
	defer b.qMu.Unlock()
	i := slices.Index(b.queue, req)
	if i < 0 {
		return false
	}
	b.queue = slices.Delete(b.queue, i, i+1)
	return true
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
	done   bool                                                // set, under the turn, once it was sent
	err    error
}

// sendQueued sends reqs, taken from the queue in call order, under the turn:
// each run of consecutive calls of one kind as the messages of their
// items together. ctx is the sending caller's; a run that carries other
// calls is sent without its cancellation (each PUBLISH is still bounded by
// Options.Timeout and Close), so that one caller giving up does not fail
// the others.
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

// sendItems publishes the messages of one kind's items, under the turn,
// and returns the first error, sending nothing after it: the numbers of
// the messages not sent are used up all the same, so receivers see a gap
// and flush. With befores, the messages go in one pipeline after the
// commands they add.
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
	for _, m := range msgs {
		if err := b.send(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// sendPipelined sends msgs as PUBLISHes on Client in one pipeline, after
// the commands befores add, calls what they return once it ran, and
// returns the first PUBLISH's error.
func (b *Bus) sendPipelined(ctx context.Context, msgs []Message, befores []func(context.Context, redis.Pipeliner) func()) error {
	ctx, cancel := b.sendContext(ctx)
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
