package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/minitime"
)

// env is the Redis every node of a run shares: a real server (or
// cluster) given with -redis, a redis-server the harness started, or an
// embedded miniredis.
type env struct {
	name    string
	addrs   []string
	cluster bool
	mini    *miniredis.Miniredis // nil on a real server
	version string               // the server's version, if it says
	// warning, if set, says why the figures are not representative; the
	// report opens with it.
	warning string
	stop    func()
}

// miniWarning is why figures measured on miniredis are not representative.
const miniWarning = "miniredis runs every Lua script in a fresh interpreter under one global lock, and tiercache fills every miss with a compare-and-set script, so miss-heavy figures here understate it; the client-side caching peers need a real server and are skipped."

// chooseEnv picks the Redis of a run: the servers of -redis; else the
// embedded miniredis if -miniredis; else a redis-server of its own when
// lookPath finds the binary; else the embedded miniredis, with a warning.
// It never uses a server the user did not name, such as one on port 6379.
// What it started, it tells on errOut.
func chooseEnv(cfg *config, lookPath func(string) (string, error), errOut io.Writer) (*env, error) {
	switch {
	case cfg.redis != "":
		return newEnv(cfg.redis)
	case cfg.miniredis:
		e, err := startMiniredis()
		if err == nil {
			e.warning = "These figures were measured on an embedded miniredis (-miniredis) and are not representative: " + miniWarning +
				" Drop -miniredis (with redis-server installed) or run with -redis ADDR for representative figures."
		}
		return e, err
	}
	bin, err := lookPath("redis-server")
	if err != nil {
		e, err := startMiniredis()
		if err != nil {
			return nil, err
		}
		e.warning = "redis-server was not found on PATH, so these figures were measured on an embedded miniredis and are not representative: " + miniWarning +
			" Install redis-server (Debian: apt-get install redis-server) and run again, or run with -redis ADDR."
		fmt.Fprintf(errOut, "bench: WARNING: redis-server not found on PATH; running on an embedded miniredis, whose figures are not representative (see the top of the report)\n")
		return e, nil
	}
	s, err := startOwnServer(bin)
	if err != nil {
		return nil, fmt.Errorf("%w\n(run with -redis ADDR to use a server of yours, or -miniredis for the embedded one)", err)
	}
	fmt.Fprintf(errOut, "bench: started redis-server %s on %s (pid %d) for this run; it is stopped when the run ends (-redis ADDR uses a server of yours)\n",
		s.version, s.addr, s.cmd.Process.Pid)
	return &env{
		name:    fmt.Sprintf("Redis %s (a redis-server the harness started on %s)", s.version, s.addr),
		addrs:   []string{s.addr},
		version: s.version,
		stop:    s.kill,
	}, nil
}

// newEnv connects to addrs (comma-separated; more than one means a
// cluster), or starts an embedded miniredis whose clock is advanced in real
// time: miniredis does not count TTLs down by itself, and leases, TTLs and
// expiry must behave as on Redis.
func newEnv(addrs string) (*env, error) {
	if addrs != "" {
		e := &env{addrs: strings.Split(addrs, ","), stop: func() {}}
		e.cluster = len(e.addrs) > 1
		c := e.plainClient()
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("redis %s: %w", addrs, err)
		}
		e.version = serverVersion(ctx, c)
		e.name = "Redis " + e.version + " at " + addrs
		if e.cluster {
			e.name = "Redis Cluster " + e.version + " at " + addrs
		}
		return e, nil
	}
	return startMiniredis()
}

// attachEnv connects a worker process to the Redis its parent chose.
func attachEnv(addrs string, mini bool) *env {
	e := &env{addrs: strings.Split(addrs, ","), stop: func() {}}
	e.cluster = len(e.addrs) > 1 && !mini
	return e
}

func startMiniredis() (*env, error) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, err
	}
	stopClock := minitime.Follow(m, 5*time.Millisecond)
	return &env{name: "embedded miniredis", addrs: []string{m.Addr()}, mini: m, stop: func() {
		stopClock()
		m.Close()
	}}, nil
}

func serverVersion(ctx context.Context, c redis.UniversalClient) string {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return ""
}

func (e *env) close() { e.stop() }

// realRedis reports whether the nodes talk to a real server (which client-
// side caching needs: miniredis has no RESP3 key tracking).
func (e *env) realRedis() bool { return e.mini == nil }

// plainClient returns a client with no hooks, for the harness's own calls.
func (e *env) plainClient() redis.UniversalClient {
	if e.cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: e.addrs, ContextTimeoutEnabled: true})
	}
	return redis.NewClient(&redis.Options{Addr: e.addrs[0], ContextTimeoutEnabled: true})
}

// client returns a new client (its own connections) for one node, counting
// every command it sends into n.
func (e *env) client(n *atomic.Uint64) redis.UniversalClient {
	c := e.plainClient()
	c.AddHook(countHook{n})
	return c
}

// countHook counts the commands a go-redis client sends, pipelined ones
// included (one each).
type countHook struct{ n *atomic.Uint64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(uint64(len(cmds)))
		return next(ctx, cmds)
	}
}

var _ redis.Hook = countHook{}

// cleanup removes every key under prefix, on every master of a cluster: a
// run leaves nothing behind in a server that may hold other data.
func (e *env) cleanup(ctx context.Context, prefix string) error {
	if e.mini != nil {
		e.mini.FlushAll()
		return nil
	}
	c := e.plainClient()
	defer c.Close()
	del := func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := c.Unlink(ctx, k).Err(); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	switch c := c.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, del)
	case *redis.Client:
		return del(ctx, c)
	}
	return nil
}
