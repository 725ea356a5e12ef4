package redistest_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
)

// newClient returns a go-redis client for addr that does not retry,
// closed at cleanup.
func newClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dial opens a raw connection to addr, closed at cleanup.
func dial(t *testing.T, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pingWithin sends PING through c with a ctx deadline of d.
func pingWithin(c *redis.Client, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Ping(ctx).Err()
}

// newProxy starts a server and a proxy in front of it.
func newProxy(t *testing.T) (*redistest.Server, *redistest.Proxy) {
	s := redistest.Start(t)
	return s, redistest.NewProxy(t, s.Addr())
}

func TestProxyForwards(t *testing.T) {
	t.Parallel()
	_, p := newProxy(t)
	c := newClient(t, p.Addr())
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET k v through the proxy: %v", err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k through the proxy = %q, %v; want %q, nil", v, err, "v")
	}
	if got := p.Stats(); got != (redistest.Stats{Conns: 1, Accepted: 1}) {
		t.Fatalf("Stats() = %+v; want 1 open, 1 accepted", got)
	}
}

func TestProxyLatency(t *testing.T) {
	t.Parallel()
	_, p := newProxy(t)
	c := newClient(t, p.Addr())
	if err := pingWithin(c, time.Second); err != nil {
		t.Fatalf("PING: %v", err)
	}
	p.SetLatency(500 * time.Millisecond)
	if err := pingWithin(c, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("PING with a 50ms deadline through 500ms of latency = %v; want a timeout", err)
	}
	if err := ping(p.Addr(), 50*time.Millisecond); !isTimeout(err) {
		t.Fatalf("raw PING with a 50ms deadline through 500ms of latency = %v; want a timeout", err)
	}
	p.SetLatency(0)
	if err := pingWithin(c, time.Second); err != nil {
		t.Fatalf("PING with latency off: %v", err)
	}
}

func TestProxyReset(t *testing.T) {
	t.Parallel()
	_, p := newProxy(t)
	raw := dial(t, p.Addr())
	if err := pingOn(raw); err != nil {
		t.Fatalf("raw PING: %v", err)
	}
	c := newClient(t, p.Addr())
	if err := pingWithin(c, time.Second); err != nil {
		t.Fatalf("PING: %v", err)
	}
	before := p.Accepted()
	p.Reset()
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns() after Reset = %d; want 0", n)
	}
	if err := raw.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read on a reset connection = %v; want a reset or EOF", err)
	}
	// go-redis either fails the next command or notices the dead
	// connection and dials again; the one after that works.
	if err := pingWithin(c, time.Second); err == nil && p.Accepted() == before {
		t.Fatal("PING after Reset succeeded on the old connection")
	}
	if err := pingWithin(c, time.Second); err != nil {
		t.Fatalf("PING after Reset, reconnected: %v", err)
	}
	if err := ping(p.Addr(), time.Second); err != nil {
		t.Fatalf("raw PING on a new connection after Reset: %v", err)
	}
}

func TestProxyCutHeal(t *testing.T) {
	t.Parallel()
	_, p := newProxy(t)
	c := newClient(t, p.Addr())
	if err := pingWithin(c, time.Second); err != nil {
		t.Fatalf("PING: %v", err)
	}
	p.Cut()
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns() after Cut = %d; want 0", n)
	}
	before := p.Accepted()
	for i := 0; i < 2; i++ {
		if err := ping(p.Addr(), time.Second); err == nil || isTimeout(err) {
			t.Fatalf("raw PING %d through a cut proxy = %v; want a reset or EOF", i, err)
		}
	}
	// Each raw PING was refused only after the proxy accepted it, so both
	// count. go-redis may fail on its pooled, cut connection without
	// dialing at all, so its attempt adds nothing to count on.
	if got := p.Accepted(); got < before+2 {
		t.Fatalf("Accepted() = %d; want >= %d (cut connections count)", got, before+2)
	}
	if err := pingWithin(c, time.Second); err == nil {
		t.Fatal("PING through a cut proxy succeeded")
	}
	p.Heal()
	if err := pingWithin(c, time.Second); err != nil {
		t.Fatalf("PING after Heal: %v", err)
	}
}

func TestProxyBlackhole(t *testing.T) {
	t.Parallel()
	_, p := newProxy(t)
	raw := dial(t, p.Addr())
	if err := pingOn(raw); err != nil {
		t.Fatalf("raw PING: %v", err)
	}
	c := newClient(t, p.Addr())
	p.Blackhole()
	if err := pingWithin(c, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("PING with a 100ms deadline through a black hole = %v; want a timeout", err)
	}
	if err := raw.SetDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := pingOn(raw); !isTimeout(err) {
		t.Fatalf("raw PING through a black hole = %v; want a timeout", err)
	}
	p.Heal()
	// The held PING goes through now, and its reply comes back.
	if err := raw.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := readPong(raw); err != nil {
		t.Fatalf("reply to the held PING after Heal: %v", err)
	}
	if err := pingWithin(c, time.Second); err != nil {
		t.Fatalf("PING after Heal: %v", err)
	}
}

func TestProxyConns(t *testing.T) {
	t.Parallel()
	_, p := newProxy(t)
	ctx := waitCtx(t)
	conns := []net.Conn{dial(t, p.Addr()), dial(t, p.Addr()), dial(t, p.Addr())}
	if err := p.WaitConns(ctx, 3); err != nil {
		t.Fatalf("WaitConns(3): %v", err)
	}
	if got := p.Stats(); got != (redistest.Stats{Conns: 3, Accepted: 3}) {
		t.Fatalf("Stats() = %+v; want 3 open, 3 accepted", got)
	}
	conns[0].Close()
	if err := p.Wait(ctx, func(s redistest.Stats) bool { return s.Conns == 2 }); err != nil {
		t.Fatalf("Wait(Conns == 2) after a client closed: %v", err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.WaitConns(short, 4); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitConns(4) with a canceled ctx = %v; want context.Canceled", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close() = %v", err)
	}
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns() after Close = %d; want 0", n)
	}
	if err := p.WaitConns(ctx, 1); !errors.Is(err, redistest.ErrClosed) {
		t.Fatalf("WaitConns(1) after Close = %v; want ErrClosed", err)
	}
}

func TestProxyWaitWakes(t *testing.T) {
	t.Parallel()
	_, p := newProxy(t)
	ctx := waitCtx(t)
	done := make(chan error, 1)
	go func() { done <- p.WaitConns(ctx, 1) }()
	dial(t, p.Addr())
	if err := <-done; err != nil {
		t.Fatalf("WaitConns(1) while a client connects: %v", err)
	}
}

func TestProxyTargetDown(t *testing.T) {
	t.Parallel()
	s, p := newProxy(t)
	ctx := waitCtx(t)
	dial(t, p.Addr())
	if err := p.WaitConns(ctx, 1); err != nil {
		t.Fatalf("WaitConns(1): %v", err)
	}
	s.Kill()
	if err := p.Wait(ctx, func(s redistest.Stats) bool { return s.Conns == 0 }); err != nil {
		t.Fatalf("Wait(Conns == 0) after the server died: %v", err)
	}
	if err := ping(p.Addr(), time.Second); err == nil || isTimeout(err) {
		t.Fatalf("raw PING through a proxy to a dead server = %v; want a reset or EOF", err)
	}
	s.Restart()
	if err := ping(p.Addr(), time.Second); err != nil {
		t.Fatalf("raw PING after the server restarted: %v", err)
	}
}
