package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name under which a [Sentinel] setup monitors its
// primary.
const MasterName = "tiercache"

// Sentinel is a Sentinel-managed Redis started for a test by
// [StartSentinel]: a primary, a replica and three sentinels, on 127.0.0.1.
// Roles change with failovers: [Sentinel.Primary] says which data server
// is the primary now. Methods that change the setup fail the test like
// t.Fatal, so they must be called from the test's goroutine.
type Sentinel struct {
	t testing.TB

	data      [2]*Server // the primary and the replica StartSentinel began with
	sentinels []*Server

	mu    sync.Mutex // protects admin
	admin map[*Server]*redis.Client
}

// StartSentinel starts a primary, a replica of it and three sentinels that
// monitor it as [MasterName] with quorum 2, down-after-milliseconds 1000
// and failover-timeout 10000, each sentinel with a configuration file of
// its own in a temporary directory. It returns once the replica is in sync
// and every sentinel knows the replica and the two other sentinels (which
// takes up to two of their 2s hello periods). Every process is killed
// when the test ends.
//
// When redis-server is not on PATH, StartSentinel skips the test, or fails
// it when [RequireRedis] holds. It must be called from the test's
// goroutine.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	Binary(t)
	s := &Sentinel{t: t, admin: make(map[*Server]*redis.Client)}
	repl := []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"}
	s.data[0] = Start(t, Args(repl...))
	s.data[1] = Start(t, Args(append(repl, "--replicaof", "127.0.0.1", strconv.Itoa(s.data[0].Port()))...))
	waitUntil(t, "replica in sync", convergeTimeout, func(ctx context.Context) error {
		r, err := roleOf(ctx, s.client(s.data[1]))
		if err == nil && !r.connected {
			err = fmt.Errorf("replica %s not in sync: %w", s.data[1].Addr(), errPending)
		}
		if err == nil {
			err = replicasOnline(ctx, s.client(s.data[0]))
		}
		return err
	})
	for range 3 {
		conf := filepath.Join(t.TempDir(), "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %[1]s 1000\n"+
			"sentinel failover-timeout %[1]s 10000\n"+
			"sentinel parallel-syncs %[1]s 1\n", MasterName, s.data[0].Port())
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatalf("redistest: sentinel configuration: %v", err)
		}
		s.sentinels = append(s.sentinels, Start(t, func(c *config) { c.conf = conf }, Args("--sentinel")))
	}
	waitUntil(t, "sentinels ready", convergeTimeout, s.ready)
	return s
}

// client returns the administrative client of srv, creating it once; it
// is closed when the test ends.
func (s *Sentinel) client(srv *Server) *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.admin[srv]
	if !ok {
		c = redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
		s.t.Cleanup(func() { _ = c.Close() })
		s.admin[srv] = c
	}
	return c
}

// ready reports nil once every sentinel sees the primary up, the replica
// and the two other sentinels.
func (s *Sentinel) ready(ctx context.Context) error {
	for _, sn := range s.sentinels {
		m, err := s.client(sn).Do(ctx, "sentinel", "master", MasterName).Result()
		if err != nil {
			return fmt.Errorf("SENTINEL MASTER on %s: %w", sn.Addr(), err)
		}
		f := flatMap(m)
		if f["flags"] != "master" || f["num-slaves"] != "1" || f["num-other-sentinels"] != "2" {
			return fmt.Errorf("sentinel %s sees flags %q, %s replicas, %s other sentinels: %w",
				sn.Addr(), f["flags"], f["num-slaves"], f["num-other-sentinels"], errPending)
		}
	}
	return nil
}

// flatMap turns a reply of alternating field names and values (RESP2) or
// a map (RESP3) into a map of strings.
func flatMap(v any) map[string]string {
	out := make(map[string]string)
	switch m := v.(type) {
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			out[fmt.Sprint(m[i])] = fmt.Sprint(m[i+1])
		}
	case map[any]any:
		for k, val := range m {
			out[fmt.Sprint(k)] = fmt.Sprint(val)
		}
	}
	return out
}

// SentinelAddrs returns the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// Sentinels returns the three sentinel processes.
func (s *Sentinel) Sentinels() []*Server { return append([]*Server(nil), s.sentinels...) }

// Options returns options for a go-redis failover client of this setup:
// the three sentinels, [MasterName], and ContextTimeoutEnabled.
func (s *Sentinel) Options() *redis.FailoverOptions {
	return &redis.FailoverOptions{MasterName: MasterName, SentinelAddrs: s.SentinelAddrs(), ContextTimeoutEnabled: true}
}

// Client returns a new failover client built from [Sentinel.Options],
// closed when t's test ends.
func (s *Sentinel) Client(t testing.TB) *redis.Client {
	c := redis.NewFailoverClient(s.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// primaryAddr returns the primary's address as sentinel sn reports it.
func (s *Sentinel) primaryAddr(ctx context.Context, sn *Server) (string, error) {
	a, err := s.client(sn).Do(ctx, "sentinel", "get-master-addr-by-name", MasterName).StringSlice()
	if err != nil {
		return "", err
	}
	if len(a) != 2 {
		return "", fmt.Errorf("get-master-addr-by-name = %v", a)
	}
	return net.JoinHostPort(a[0], a[1]), nil
}

// Primary returns the data server every sentinel names as the primary.
func (s *Sentinel) Primary(t testing.TB) *Server {
	t.Helper()
	var p *Server
	waitUntil(t, "sentinels agree on the primary", convergeTimeout, func(ctx context.Context) error {
		var err error
		p, err = s.agreedPrimary(ctx)
		return err
	})
	return p
}

// Replica returns the data server that is not the primary.
func (s *Sentinel) Replica(t testing.TB) *Server {
	t.Helper()
	if p := s.Primary(t); p == s.data[0] {
		return s.data[1]
	}
	return s.data[0]
}

// agreedPrimary returns the data server all sentinels name, or an error.
func (s *Sentinel) agreedPrimary(ctx context.Context) (*Server, error) {
	var addr string
	for i, sn := range s.sentinels {
		a, err := s.primaryAddr(ctx, sn)
		if err != nil {
			return nil, fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
		}
		if i > 0 && a != addr {
			return nil, fmt.Errorf("sentinels name %s and %s: %w", addr, a, errPending)
		}
		addr = a
	}
	for _, d := range s.data {
		if d.Addr() == addr {
			return d, nil
		}
	}
	return nil, fmt.Errorf("sentinels name %s, which is not a data server", addr)
}

// Failover makes the sentinels fail the primary over to the replica with
// SENTINEL FAILOVER (a forced failover: the replica is promoted without
// the primary stopping its clients, so writes the replica had not received
// are lost, as in any Sentinel failover), and returns the new primary once
// every sentinel names it and it runs as a primary. The former primary
// keeps running as a primary until Sentinel turns it into a replica, about
// eight seconds later (see [Sentinel.WaitReplicaInSync]).
func (s *Sentinel) Failover(t testing.TB) *Server {
	t.Helper()
	old := s.Primary(t)
	ctx, cancel := adminCtx()
	defer cancel()
	mustDo(t, s.client(s.sentinels[0]).Do(ctx, "sentinel", "failover", MasterName).Err(), "SENTINEL FAILOVER")
	var p *Server
	waitUntil(t, "Sentinel failover", convergeTimeout, func(ctx context.Context) error {
		var err error
		if p, err = s.agreedPrimary(ctx); err != nil {
			return err
		}
		if p == old {
			return fmt.Errorf("sentinels still name %s: %w", old.Addr(), errPending)
		}
		r, err := roleOf(ctx, s.client(p))
		if err == nil && !r.master {
			err = fmt.Errorf("%s not a primary yet: %w", p.Addr(), errPending)
		}
		return err
	})
	return p
}

// WaitReplicaInSync waits until the data server that is not the primary
// replicates from the primary and is in sync (after a failover, Sentinel
// reconfigures the former primary about eight seconds after it promoted
// the replica).
func (s *Sentinel) WaitReplicaInSync(t testing.TB) {
	t.Helper()
	p, r := s.Primary(t), s.Replica(t)
	waitUntil(t, "replica in sync with the primary", 2*convergeTimeout, func(ctx context.Context) error {
		ro, err := roleOf(ctx, s.client(r))
		if err != nil {
			return err
		}
		if ro.master || ro.masterAt != p.Addr() || !ro.connected {
			return fmt.Errorf("%s: primary %v, replicating from %q, in sync %v: %w", r.Addr(), ro.master, ro.masterAt, ro.connected, errPending)
		}
		return replicasOnline(ctx, s.client(p))
	})
}
