package bus

// Sequence numbers: what a node knows of each origin, and the gaps it
// finds between their messages.

// maxPeers bounds the peers table: 4096 origins, about 400 KB. An entry is
// added for every origin heard (every node and CLI run, and anyone who
// publishes under a made-up origin, which an unsigned bus lets anyone do)
// and is never removed one by one: a forgotten entry would hide a message of
// its origin lost before the next one arrives. So a new origin that finds
// the table full empties it and counts as a gap: the node flushes, and each
// origin heard afterwards starts from 0 again, its first message after the
// flush counting one more gap unless it is numbered 1. A stranger can make a
// node flush with one forged number already; this costs them maxPeers
// messages per flush instead, and no real node's lost message goes unseen.
const maxPeers = 4096

// peer is what a node knows of one origin's sequence numbers.
type peer struct {
	last uint64 // the last number accounted for
	// odd is the number of the last message that did not follow last
	// (0: none since the last one that did). A message that follows odd
	// shows that the origin really is there, and resynchronizes last.
	odd uint64
}

// seqWindow is how far ahead of the last number a message may be and still
// count as the same sender's next one (with a gap if more than one ahead).
// Anything else (behind, a repeat, or further ahead, as when someone
// publishes in the origin's name with a made-up number) counts as one gap,
// and its number is not adopted: the real sender's next message follows on
// as if nothing happened. Comparisons are modulo 2^64, so no number
// switches checks off by wrapping.
const seqWindow = 1 << 32

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
	if r.b.opts.compat.seq {
		return r.gapUnchecked(m)
	}
	if m.Seq == 0 {
		// A sender that numbers nothing (docs/protocol.md): applied, never
		// a gap, and no number to follow. Real senders start at 1.
		return false
	}
	p, reset := r.lookup(m.Origin)
	if gap, ok := follows(p.last, m); ok {
		p.last, p.odd = m.Seq, 0
		return gap || reset
	}
	if p.odd != 0 {
		if gap, ok := follows(p.odd, m); ok {
			// The origin is really at this number: follow it from here.
			p.last, p.odd = m.Seq, 0
			return gap
		}
	}
	p.odd = m.Seq
	return true
}

// lookup returns origin's entry in the peers table, adding it if it is new.
// A new origin that finds the table full empties it first (see maxPeers)
// and reports reset: the caller must count a gap.
func (r *receiver) lookup(origin NodeID) (p *peer, reset bool) {
	if p := r.peers[origin]; p != nil {
		return p, false
	}
	if len(r.peers) >= maxPeers {
		r.b.opts.Logger.Warn("bus: heard more origins than it keeps; forgetting them all", "channel", r.b.opts.Channel, "max", maxPeers)
		clear(r.peers)
		reset = true
	}
	p = &peer{}
	r.peers[origin] = p
	return p, reset
}

// follows reports whether m can come after last from one sender (ok), and
// whether a message went missing between them (gap).
func follows(last uint64, m Message) (gap, ok bool) {
	d := m.Seq - last // modulo 2^64
	if m.Kind == KindHeartbeat {
		return d != 0, d < seqWindow
	}
	return d != 1, d != 0 && d < seqWindow
}

// gapUnchecked is gap as it was before spoofed numbers were handled
// (compat.seq): last+1 can wrap, and a number far ahead is adopted.
func (r *receiver) gapUnchecked(m Message) bool {
	p, reset := r.lookup(m.Origin)
	last := p.last
	if m.Seq > last {
		p.last = m.Seq
	}
	if m.Kind == KindHeartbeat {
		return m.Seq > last || reset
	}
	return m.Seq > last+1 || reset
}
