package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skip into a failure.
const RequireEnv = "TIERCACHE_REQUIRE_REDIS"

// RequireRedis reports whether the environment requires a real Redis
// (TIERCACHE_REQUIRE_REDIS=1).
func RequireRedis() bool { return os.Getenv(RequireEnv) == "1" }

// missingAction says what to do when the binary is missing: "" (found),
// "skip" or "fail".
func missingAction(found bool, env string) string {
	switch {
	case found:
		return ""
	case env == "1":
		return "fail"
	}
	return "skip"
}

// Binary returns the path of redis-server, or skips (fails, when
// TIERCACHE_REQUIRE_REDIS=1) the test when there is none on PATH.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	switch missingAction(err == nil, os.Getenv(RequireEnv)) {
	case "fail":
		t.Fatalf("redis-server not found on PATH and %s=1: install it (Debian: apt-get install redis-server)", RequireEnv)
	case "skip":
		t.Skipf("redis-server not found on PATH: skipping (install it, e.g. apt-get install redis-server; set %s=1 to fail instead)", RequireEnv)
	}
	return path
}

// Option configures [Start].
type Option func(*config)

type config struct {
	args    []string
	maxPort int
}

// Args adds arguments to the redis-server command line.
func Args(args ...string) Option { return func(c *config) { c.args = append(c.args, args...) } }

// MaxPort makes Start pick a port no higher than p (a Redis Cluster needs
// port+10000 to be a valid port too).
func MaxPort(p int) Option { return func(c *config) { c.maxPort = p } }

// Server is a real redis-server process started for a test. Its methods
// are safe for concurrent use.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string

	mu   sync.Mutex // protects cmd and done
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited and been waited for
}

// Start starts a redis-server on a free 127.0.0.1 port (retrying with
// another port when one is taken), with persistence off and its files in a
// temporary directory, and waits until it answers PING. The server is
// killed when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), args: cfg.args}
	t.Cleanup(s.Kill)
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		port, err := freePort(cfg.maxPort)
		if err != nil {
			lastErr = err
			continue
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: cannot start redis-server: %v", lastErr)
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort(max int) (int, error) {
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if max == 0 || port <= max {
			return port, nil
		}
		if port > max {
			// The kernel hands out high ports: pick one at random below max.
			p := 20000 + int(time.Now().UnixNano()%int64(max-20000))
			if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
				l.Close()
				return p, nil
			}
		}
	}
	return 0, fmt.Errorf("no free port <= %d", max)
}

// start runs the process and waits for PING; on failure it kills it and
// returns an error with the end of its log.
func (s *Server) start() error {
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", s.logPath(), "--protected-mode", "no",
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		exited <- cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(exited); err != nil {
		s.Kill()
		return fmt.Errorf("%w\n%s", err, s.logTail())
	}
	return nil
}

// waitReady polls PING until the server answers (a bounded start-up wait,
// not a test synchronization).
func (s *Server) waitReady(exited <-chan error) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
}

func (s *Server) logPath() string { return filepath.Join(s.dir, "redis.log") }

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if i := len(b) - 2000; i > 0 {
		b = b[i:]
	}
	return string(bytes.TrimSpace(b))
}

// Addr returns the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Kill sends SIGKILL to the server and waits until it is gone. Killing a
// server that is not running does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port (after Kill), with an
// empty dataset, and waits until it answers PING. The port may be
// briefly unavailable after a kill, so it retries for up to 10s.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("redistest: cannot restart redis-server on port %d: %v", s.port, err)
}

// Client returns a go-redis client for the server (ContextTimeoutEnabled,
// no retries), closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}
