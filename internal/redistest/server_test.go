package redistest_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/redistest"
)

func TestServerKillRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET k v: %v", err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k = %q, %v; want %q, nil", v, err, "v")
	}
	addr := s.Addr()
	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING on a killed server succeeded")
	}
	s.Kill() // a second Kill does nothing
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Addr() after Restart = %s; want %s", s.Addr(), addr)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after Restart = %d, %v; want 0, nil (no persistence)", n, err)
	}
}

func TestServerStopRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	s.Stop()
	if err := ping(s.Addr(), time.Second); err == nil {
		t.Fatal("PING on a stopped server succeeded")
	}
	s.Restart()
	if err := ping(s.Addr(), time.Second); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	s.Restart() // restarting a running server kills it first
	if err := ping(s.Addr(), time.Second); err != nil {
		t.Fatalf("PING after a second Restart: %v", err)
	}
}

func TestTwoServersTwoPorts(t *testing.T) {
	t.Parallel()
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Port() == b.Port() {
		t.Fatalf("both servers on port %d", a.Port())
	}
	for _, s := range []*redistest.Server{a, b} {
		if s.Port() == 6379 {
			t.Fatal("a test server on the machine's Redis port 6379")
		}
		if want := "127.0.0.1:" + strconv.Itoa(s.Port()); s.Addr() != want {
			t.Errorf("Addr() = %s; want %s", s.Addr(), want)
		}
	}
}

func TestMaxPort(t *testing.T) {
	t.Parallel()
	// 55535 is within the kernel's usual ephemeral range; 30000 below it.
	for _, max := range []int{55535, 30000} {
		s := redistest.Start(t, redistest.MaxPort(max))
		if s.Port() > max {
			t.Errorf("Start(MaxPort(%d)).Port() = %d", max, s.Port())
		}
		if err := ping(s.Addr(), time.Second); err != nil {
			t.Errorf("PING on port %d: %v", s.Port(), err)
		}
	}
}

func TestArgs(t *testing.T) {
	t.Parallel()
	c := redistest.Start(t, redistest.Args("--maxmemory", "1mb")).Client(t)
	got, err := c.ConfigGet(context.Background(), "maxmemory").Result()
	if err != nil || got["maxmemory"] != "1048576" {
		t.Fatalf("CONFIG GET maxmemory = %v, %v; want 1048576", got, err)
	}
}

func TestStartFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []redistest.Option
		want string
	}{
		{"bad argument", []redistest.Option{redistest.Args("--maxmemory", "nonsense")}, "argument must be a memory value"},
		{"MaxPort too low", []redistest.Option{redistest.MaxPort(1024)}, "MaxPort(1024)"},
		{"MaxPort too high", []redistest.Option{redistest.MaxPort(70000)}, "MaxPort(70000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redistest.Binary(t)
			got, msg := outcome(t, func(tb testing.TB) { redistest.Start(tb, tc.opts...) })
			if got != "fatal" || !strings.Contains(msg, tc.want) {
				t.Errorf("Start: %s %q; want fatal containing %q", got, msg, tc.want)
			}
		})
	}
}

func TestPortTaken(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	if err := redistest.LaunchOn(t, s); !errors.Is(err, redistest.ErrPortInUse) {
		t.Fatalf("launch on the port of a running server: %v; want ErrPortInUse", err)
	}
	if err := ping(s.Addr(), time.Second); err != nil {
		t.Fatalf("PING on the first server: %v", err)
	}
}

func TestBinaryMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	starts := map[string]func(testing.TB){
		"Start":         func(tb testing.TB) { redistest.Start(tb) },
		"StartCluster":  func(tb testing.TB) { redistest.StartCluster(tb) },
		"StartSentinel": func(tb testing.TB) { redistest.StartSentinel(tb) },
	}
	for _, tc := range []struct{ env, want string }{{"", "skip"}, {"1", "fatal"}} {
		t.Setenv(redistest.RequireEnv, tc.env)
		for name, start := range starts {
			got, msg := outcome(t, start)
			if got != tc.want || !strings.Contains(msg, "redis-server not found") {
				t.Errorf("%s with %s=%q and no binary: %s %q; want %s", name, redistest.RequireEnv, tc.env, got, msg, tc.want)
			}
		}
	}
}
