package redistest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// dialTimeout bounds the proxy's dial to its target.
const dialTimeout = time.Second

// ErrClosed is returned by [Proxy.Wait] and [Proxy.WaitConns] once the
// proxy is closed.
var ErrClosed = errors.New("redistest: proxy closed")

// Proxy is a TCP proxy in front of an address, that injects faults when a
// test asks: latency, resets, an unreachable or a hung server. Faults apply
// the moment the method returns, and last until changed. Its methods are
// safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	stop   context.CancelFunc // cancels the context of every goroutine
	wg     sync.WaitGroup     // counts the accept loop and the pipes

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex // protects the fields below
	mode     mode
	latency  time.Duration
	gen      uint64 // incremented by Reset: connections accepted before are not added
	conns    map[*pconn]struct{}
	accepted int
	changed  chan struct{} // closed and replaced on every change of the fields above
	closed   bool
}

// mode is what the proxy does with connections and bytes.
type mode uint8

const (
	forward   mode = iota // forward bytes, after the latency
	refuse                // close new connections at once
	blackhole             // hold bytes until the mode changes
)

// pconn is one proxied connection: the client side and the server side.
type pconn struct {
	client, server net.Conn
	once           sync.Once
	dead           chan struct{} // closed by close
}

// close resets both sides, once, and wakes the pipes that wait to write.
func (c *pconn) close() {
	c.once.Do(func() {
		resetConn(c.client)
		resetConn(c.server)
		close(c.dead)
	})
}

// resetConn closes c with a TCP RST where possible, so the peer sees
// ECONNRESET rather than an orderly EOF.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// NewProxy starts a proxy on a free 127.0.0.1 port that forwards every
// connection to target, dialled once per accepted connection. It fails the
// test if it cannot listen, and is closed when the test ends (see
// [Proxy.Close]).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	p := &Proxy{
		target:  target,
		ln:      ln,
		stop:    stop,
		conns:   make(map[*pconn]struct{}),
		changed: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop(ctx)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Addr returns the address clients connect to, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// acceptLoop accepts connections until the listener is closed.
func (p *Proxy) acceptLoop(ctx context.Context) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		m, gen := p.accept()
		if m == refuse {
			resetConn(c)
			continue
		}
		s, err := d.DialContext(ctx, "tcp", p.target)
		if err != nil {
			resetConn(c) // the target is down: so is the proxied server
			continue
		}
		pc := &pconn{client: c, server: s, dead: make(chan struct{})}
		if !p.add(pc, gen) {
			pc.close() // reset or closed since it was accepted
			continue
		}
		p.wg.Add(2)
		go p.pipe(ctx, pc, c, s)
		go p.pipe(ctx, pc, s, c)
	}
}

// accept counts a new connection and returns the mode and generation it
// was accepted under.
func (p *Proxy) accept() (mode, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accepted++
	p.notifyLocked()
	return p.mode, p.gen
}

// add registers pc unless the proxy was reset or closed since generation
// gen; it reports whether it did.
func (p *Proxy) add(pc *pconn, gen uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.gen != gen {
		return false
	}
	p.conns[pc] = struct{}{}
	p.notifyLocked()
	return true
}

// drop unregisters and closes pc.
func (p *Proxy) drop(pc *pconn) {
	p.mu.Lock()
	if _, ok := p.conns[pc]; ok {
		delete(p.conns, pc)
		p.notifyLocked()
	}
	p.mu.Unlock()
	pc.close()
}

func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// pipe copies from src to dst until either side fails or pc is closed;
// then it closes pc, so that both directions end together.
func (p *Proxy) pipe(ctx context.Context, pc *pconn, src, dst net.Conn) {
	defer p.wg.Done()
	defer p.drop(pc)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.deliver(ctx, pc, dst, buf[:n]) {
			return
		}
		if err != nil {
			return // io.EOF or a reset: either way the connection is over
		}
	}
}

// deliver writes b to dst after the current latency, once no black hole
// holds it back. It reports false if pc or the proxy was closed meanwhile,
// or the write failed.
func (p *Proxy) deliver(ctx context.Context, pc *pconn, dst net.Conn, b []byte) bool {
	p.mu.Lock()
	lat := p.latency
	p.mu.Unlock()
	if lat > 0 && !pause(ctx, pc, lat) {
		return false
	}
	if !p.waitOpen(ctx, pc) {
		return false
	}
	_, err := dst.Write(b)
	return err == nil
}

// pause waits for d, or until pc or the proxy is closed; it reports
// whether d elapsed.
func pause(ctx context.Context, pc *pconn, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-pc.dead:
	case <-ctx.Done():
	}
	return false
}

// waitOpen waits while the proxy is a black hole; it reports false if pc
// or the proxy was closed meanwhile.
func (p *Proxy) waitOpen(ctx context.Context, pc *pconn) bool {
	for {
		p.mu.Lock()
		m, changed := p.mode, p.changed
		p.mu.Unlock()
		if m != blackhole {
			return true
		}
		select {
		case <-changed:
		case <-pc.dead:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Close stops the proxy: it closes the listener, resets every connection
// and waits for every goroutine of the proxy to return. It returns the
// error of closing the listener. Later calls wait for the first to finish
// and return the same error; the test's cleanup calls it too.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.notifyLocked()
		p.mu.Unlock()
		p.closeErr = p.ln.Close()
		p.stop()
		p.Reset()
		p.wg.Wait()
	})
	return p.closeErr
}
