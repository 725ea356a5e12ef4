package redistest

import "time"

// SetLatency delays every chunk of bytes the proxy reads from now on, in
// either direction, by d before it forwards it; 0 turns latency off. Chunks
// are forwarded one after another per direction, so a burst of chunks
// accumulates the delay. Chunks already waiting keep the latency they were
// read under.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
	p.notifyLocked()
}

// Reset closes every open proxied connection, with a TCP RST on both sides,
// and returns once none is counted by [Proxy.Conns] any more (including one
// accepted but not yet set up when Reset was called). Bytes not yet
// forwarded are dropped. New connections are still accepted, and forwarded
// unless the proxy is cut.
func (p *Proxy) Reset() {
	p.mu.Lock()
	p.gen++
	conns := make([]*pconn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	clear(p.conns)
	p.notifyLocked()
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close()
	}
}

// Cut makes the server unreachable: it resets every open connection, as
// [Proxy.Reset] does, and until [Proxy.Heal] or [Proxy.Blackhole] closes
// every new connection at once with a TCP RST after accepting it (so a
// client's dial succeeds, and its first read or write fails). Those
// connections count in [Proxy.Accepted].
func (p *Proxy) Cut() {
	p.setMode(refuse)
	p.Reset()
}

// Blackhole makes the server hang: from now on, until [Proxy.Heal] or
// [Proxy.Cut], connections open and new stay open but no byte is forwarded
// in either direction, so clients notice only through their timeouts. The
// bytes are held, not dropped: the kernel buffers what the proxy has not
// read, and once the proxy heals, a connection still open gets them, late
// and in order, as after a healed network partition. A client that times
// out should therefore discard its connection, as go-redis does.
func (p *Proxy) Blackhole() { p.setMode(blackhole) }

// Heal restores normal forwarding: new connections are forwarded again
// after a Cut, and bytes held by a black hole flow again. Connections that
// were reset or closed stay closed, so clients have to reconnect. Heal
// leaves the latency as it is.
func (p *Proxy) Heal() { p.setMode(forward) }

func (p *Proxy) setMode(m mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	p.notifyLocked()
}
