package redistest_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServerKillRestart(t *testing.T) {
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v := c.Get(ctx, "k").Val(); v != "v" {
		t.Fatalf("GET = %q", v)
	}
	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded on a killed server")
	}
	s.Restart()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if n := c.Exists(ctx, "k").Val(); n != 0 {
		t.Fatal("data survived a restart of a server without persistence")
	}
}

func TestTwoServersTwoPorts(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("both servers on %s", a.Addr())
	}
	if a.Port() == 6379 || b.Port() == 6379 {
		t.Fatal("a test server took the machine's own Redis port")
	}
}

func TestMaxPort(t *testing.T) {
	s := redistest.Start(t, redistest.MaxPort(55535))
	if s.Port() > 55535 {
		t.Fatalf("port %d > 55535", s.Port())
	}
}

// ping sends PING on a raw connection through addr and reads the reply.
func ping(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return errors.New("unexpected reply " + line)
	}
	return nil
}

func TestProxyFaults(t *testing.T) {
	s := redistest.Start(t)
	p := redistest.NewProxy(t, s.Addr())
	if err := ping(p.Addr(), time.Second); err != nil {
		t.Fatalf("PING through the proxy: %v", err)
	}

	// Reset: an open raw connection dies; new ones work.
	raw, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := p.WaitConns(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a reset connection succeeded")
	}
	if err := ping(p.Addr(), time.Second); err != nil {
		t.Fatalf("PING after Reset: %v", err)
	}

	p.Cut()
	if err := ping(p.Addr(), time.Second); err == nil {
		t.Fatal("PING through a cut proxy succeeded")
	}
	p.Heal()
	if err := ping(p.Addr(), time.Second); err != nil {
		t.Fatalf("PING after Heal: %v", err)
	}

	p.Blackhole()
	err = ping(p.Addr(), 100*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING through a black hole = %v; want a timeout", err)
	}
	p.Heal()

	p.SetLatency(500 * time.Millisecond)
	if err := ping(p.Addr(), 50*time.Millisecond); err == nil {
		t.Fatal("PING with 500ms latency answered within 50ms")
	}
	p.SetLatency(0)
	if p.Accepted() < 5 {
		t.Fatalf("Accepted = %d; want >= 5", p.Accepted())
	}
}

func TestMissingBinaryAction(t *testing.T) {
	for _, tc := range []struct {
		found bool
		env   string
		want  string
	}{
		{true, "", ""}, {true, "1", ""}, {false, "", "skip"}, {false, "0", "skip"}, {false, "1", "fail"},
	} {
		if got := redistest.MissingAction(tc.found, tc.env); got != tc.want {
			t.Errorf("missingAction(%v, %q) = %q; want %q", tc.found, tc.env, got, tc.want)
		}
	}
}
