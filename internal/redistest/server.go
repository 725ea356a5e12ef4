package redistest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// startAttempts bounds how many ports Start tries.
	startAttempts = 10
	// restartTimeout bounds how long Restart waits for its port to be
	// free again.
	restartTimeout = 5 * time.Second
	// stopTimeout bounds how long Stop waits for a graceful exit before
	// it kills the process.
	stopTimeout = 10 * time.Second
)

// Option configures [Start].
type Option func(*config)

type config struct {
	args    []string
	maxPort int
	// clusterPort makes Start pick a port P below the kernel's ephemeral
	// range whose cluster bus port P+10000 is free too.
	clusterPort bool
	// conf is a configuration file passed before every other argument
	// (a Sentinel needs one it can rewrite).
	conf string
}

// Args adds arguments to the redis-server command line, after the ones
// Start passes itself, so they may override them (for example "--save",
// "60 1" turns persistence on). Start fails the test if the server does not
// accept them.
func Args(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// MaxPort makes Start pick a port no higher than port, which must be in
// [10000, 65535]; a Redis Cluster node, for example, also needs port+10000
// for its bus. Default: any free port.
func MaxPort(port int) Option {
	return func(c *config) { c.maxPort = port }
}

func newConfig(opts []Option) (config, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.maxPort != 0 && (c.maxPort < lowestPort || c.maxPort > 65535) {
		return c, fmt.Errorf("redistest: MaxPort(%d) outside [%d, 65535]", c.maxPort, lowestPort)
	}
	return c, nil
}

// Server is a real redis-server process started for a test by [Start]. Its
// methods are safe for concurrent use; Kill, Stop and Restart run one at a
// time.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	conf string // a configuration file, first on the command line; "" for none
	args []string
	port int

	mu   sync.Mutex // serializes Kill, Stop and Restart; protects proc
	proc *process   // the running process; nil after Kill or Stop
}

// Start starts a redis-server on a free 127.0.0.1 port, with persistence
// off ("--save", "", "--appendonly", "no") and its directory and output
// (redis.log) in a directory from t.TempDir, and returns once it answers
// commands. When the port it picked is taken meanwhile, it retries with
// another one. The server is killed when the test ends.
//
// When redis-server is not on PATH, Start skips the test, or fails it when
// [RequireRedis] holds (see [Binary]). When the server does not come up,
// Start fails the test with the end of the server's output. Like t.Fatal,
// it must be called from the goroutine running the test. It calls
// [QuietRedisLog].
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	QuietRedisLog()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), conf: cfg.conf, args: cfg.args}
	t.Cleanup(s.Kill)
	for range startAttempts {
		if cfg.clusterPort {
			s.port, err = freeClusterPort()
		} else {
			s.port, err = freePort(cfg.maxPort)
		}
		if err != nil {
			break
		}
		var p *process
		if p, err = s.launch(); err == nil {
			s.proc = p
			return s
		}
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	t.Fatalf("redistest: cannot start redis-server: %v", err)
	return nil
}

// Addr returns the server's address, "127.0.0.1:PORT". It does not change
// across Kill and Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Kill sends SIGKILL to the server and returns once the process has exited.
// Clients see their connections fail, and new ones refused. Killing a
// server that is not running does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// Stop shuts the server down gracefully (SIGTERM), and returns once the
// process has exited; if it has not within 10s, Stop kills it. Stopping a
// server that is not running does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.stop(stopTimeout)
		s.proc = nil
	}
}

// Running reports whether the server's process is running: it was started
// and not killed or stopped since.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Restart starts the server again on the same address, with the same
// arguments and directory, and returns once it answers commands. A running
// server is killed first. Persistence being off, the new server starts
// empty. A port just freed by a kill may be refused for a moment, so
// Restart retries for up to 5s; it fails the test of [Start] if the server
// does not come up (for example because another process took the port
// meanwhile), so it must be called from that test's goroutine.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
	deadline := time.Now().Add(restartTimeout)
	for {
		p, err := s.launch()
		if err == nil {
			s.proc = p
			return
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			s.t.Fatalf("redistest: cannot restart redis-server on %s: %v", s.Addr(), err)
		}
		// A bounded wait for the port to be released, not a test interleaving.
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns a new go-redis client for the server, closed when t's test
// ends. Its options are go-redis defaults (including retries) but for
// ContextTimeoutEnabled: a ctx deadline bounds every command. The client
// follows the server across Kill and Restart, since the address stays.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
