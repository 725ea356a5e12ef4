package redistest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy in front of a server that injects faults on demand:
// latency, resets, refusal and silence. Its methods are safe for concurrent
// use.
type Proxy struct {
	target string
	ln     net.Listener

	mu       sync.Mutex // protects every field below
	mode     mode
	latency  time.Duration
	conns    map[*pconn]struct{}
	accepted int
	changed  chan struct{} // closed and replaced whenever conns changes
	closed   bool

	wg sync.WaitGroup
}

type mode uint8

const (
	forward   mode = iota // normal
	refuse                // accept, then close at once
	blackhole             // accept, keep open, forward nothing
)

// pconn is one proxied connection: the client side and the server side.
type pconn struct {
	client, server net.Conn
}

// NewProxy starts a proxy on a free loopback port that forwards to target.
// It is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[*pconn]struct{}), changed: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(func() { p.Close() })
	return p
}

// Addr returns the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		m := p.mode
		p.mu.Unlock()
		if m == refuse {
			resetConn(c)
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			resetConn(c)
			continue
		}
		pc := &pconn{client: c, server: s}
		if !p.add(pc) {
			resetConn(c)
			s.Close()
			return
		}
		p.wg.Add(2)
		go p.pipe(pc, c, s)
		go p.pipe(pc, s, c)
	}
}

func (p *Proxy) add(pc *pconn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[pc] = struct{}{}
	p.notifyLocked()
	return true
}

func (p *Proxy) remove(pc *pconn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.conns[pc]; ok {
		delete(p.conns, pc)
		p.notifyLocked()
	}
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// pipe copies from src to dst, applying the current mode and latency to
// every chunk, until either side fails; then it closes the connection.
func (p *Proxy) pipe(pc *pconn, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.remove(pc)
		resetConn(pc.client)
		pc.server.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			m, lat := p.mode, p.latency
			p.mu.Unlock()
			if lat > 0 {
				time.Sleep(lat)
			}
			if m != blackhole {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return // io.EOF or a reset: either way the connection is over
		}
	}
}

// resetConn closes c with a TCP RST where possible.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// SetLatency delays every chunk forwarded from now on, in both directions,
// by d.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Reset closes every open connection with a TCP RST. New connections are
// still accepted and forwarded (unless the proxy is cut).
func (p *Proxy) Reset() {
	p.mu.Lock()
	conns := make([]*pconn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		resetConn(pc.client)
		pc.server.Close()
	}
}

// Cut resets every open connection and, until Heal, closes every new one
// at once: the server is unreachable.
func (p *Proxy) Cut() {
	p.setMode(refuse)
	p.Reset()
}

// Blackhole keeps every connection, open and new, open but forwards no
// byte in either direction until Heal: a hung server, which clients notice
// only through their timeouts. Bytes sent meanwhile are dropped.
func (p *Proxy) Blackhole() { p.setMode(blackhole) }

// Heal returns to normal forwarding. Connections reset or closed meanwhile
// stay closed; clients reconnect.
func (p *Proxy) Heal() { p.setMode(forward) }

func (p *Proxy) setMode(m mode) {
	p.mu.Lock()
	p.mode = m
	p.mu.Unlock()
}

// Conns returns the number of open proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Accepted returns how many connections the proxy has accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// WaitConns blocks until at least n connections are open, or ctx is done.
func (p *Proxy) WaitConns(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		ok, ch := len(p.conns) >= n, p.changed
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the proxy: it closes the listener and every connection and
// waits for its goroutines. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Reset()
	p.wg.Wait()
	return err
}
