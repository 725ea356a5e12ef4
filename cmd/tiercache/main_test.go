package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/tiered"
)

// bin is the tiercache command, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tiercache-cmd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "tiercache")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// A go-redis pool whose dial failed retries on a goroutine that
		// notices Close only after its one-second sleep.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// result is what one run of the command gave.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// cli runs the command with args, with no TIERCACHE_REDIS_URL or
// REDISCLI_AUTH from the test's environment, plus extraEnv.
func cli(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIERCACHE_REDIS_URL=") && !strings.HasPrefix(kv, "REDISCLI_AUTH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// mustRun runs the command and fails the test unless it succeeds.
func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := cli(t, nil, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("tiercache %q: %v", args, r)
	}
	return r
}

// node is one cache of a fleet, in the test process, with a group of
// strings named group.
type node struct {
	c        *tiered.Cache
	g        *tiered.Group[string]
	received chan struct{} // one per invalidation applied from the bus
	rejected chan struct{} // one per bus message dropped unread (not signed under BusKey)
	flushes  atomic.Int64  // whole-L1 flushes after start-up
	ready    atomic.Bool
}

func newNode(t *testing.T, rdb redis.UniversalClient, namespace, group string, busKey ...[]byte) *node {
	t.Helper()
	n := &node{received: make(chan struct{}, 64), rejected: make(chan struct{}, 64)}
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: namespace, L1TTL: time.Hour, TTL: time.Hour, BusKey: busKey,
		Recorder: tiered.RecorderFunc(func(e tiered.Event) {
			switch e.Kind {
			case tiered.EventInvalidationReceived:
				n.received <- struct{}{}
			case tiered.EventBusRejected:
				n.rejected <- struct{}{}
			case tiered.EventFlush:
				if n.ready.Load() {
					n.flushes.Add(1)
				}
			}
		})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.ready.Store(true)
	n.c = c
	if n.g, err = tiered.NewGroup[string](c, group, tiered.GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	return n
}

// fill loads ids into both tiers and checks that L1 holds them.
func (n *node) fill(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := n.g.Fetch(context.Background(), id, func(context.Context, string) (string, error) { return "v" + id, nil }); err != nil {
			t.Fatalf("Fetch(%q): %v", id, err)
		}
	}
	n.c.WaitL1()
	for _, id := range ids {
		if _, ok := n.g.Peek(id); !ok {
			t.Fatalf("Peek(%q) after Fetch: not in L1", id)
		}
	}
}

// waitReceived waits until the node applied one invalidation from the bus.
func (n *node) waitReceived(t *testing.T) {
	t.Helper()
	select {
	case <-n.received:
	case <-time.After(time.Minute):
		t.Fatal("no invalidation reached the node within a minute")
	}
}

// inL1 returns which of ids the node's L1 holds.
func (n *node) inL1(ids ...string) []string {
	var in []string
	for _, id := range ids {
		if _, ok := n.g.Peek(id); ok {
			in = append(in, id)
		}
	}
	return in
}

// inRedis returns which of the group's ids Redis holds.
func inRedis(t *testing.T, rdb redis.UniversalClient, namespace string, n *node, ids ...string) []string {
	t.Helper()
	var in []string
	for _, id := range ids {
		k := namespace + ":" + n.g.Key(id)
		c, err := rdb.Exists(context.Background(), k).Result()
		if err != nil {
			t.Fatalf("EXISTS %s: %v", k, err)
		}
		if c == 1 {
			in = append(in, id)
		}
	}
	return in
}
