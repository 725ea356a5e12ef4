// Package pythoninvalidate tests tiercache_invalidate.py, a Python
// publisher of invalidations that follows docs/protocol.md, against a real
// redis-server and a Go node.
package pythoninvalidate_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// python returns a Python 3 interpreter that can import redis (redis-py):
// $TIERCACHE_PYTHON, python3 on PATH, or /usr/bin/python3 (where Debian's
// python3-redis installs). Without one the test is skipped, or fails when
// TIERCACHE_REQUIRE_REDIS=1.
func python(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("TIERCACHE_PYTHON"), "python3", "/usr/bin/python3"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if err := exec.Command(c, "-c", "import redis").Run(); err == nil {
			return c
		}
	}
	msg := "no python3 with the redis module (tried $TIERCACHE_PYTHON, python3, /usr/bin/python3; on Debian: apt-get install python3-redis)"
	if redistest.RequireRedis() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runPython runs the module with args and returns its output.
func runPython(t *testing.T, py string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, append([]string{"tiercache_invalidate.py"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 tiercache_invalidate.py %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestSelfTest checks the Python encoder against the message vectors of
// testdata/protocol, so it cannot drift from the Go one.
func TestSelfTest(t *testing.T) {
	py := python(t)
	if out := runPython(t, py, "selftest", "../../testdata/protocol/messages.json"); !strings.Contains(out, "vectors ok") {
		t.Fatalf("selftest: %s", out)
	}
}

// TestPythonInvalidatesGoNode runs the Python module against a real
// redis-server while a Go node holds keys in its L1, and checks that the
// node's L1 and Redis lost exactly the keys named, with and without
// sequence numbers, and that the node never flushed (took no message for a
// gap).
func TestPythonInvalidatesGoNode(t *testing.T) {
	py := python(t)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns = "py"
	received := make(chan struct{}, 16)
	var flushes atomic.Int64
	var ready atomic.Bool
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: ns, TTL: time.Hour, L1TTL: time.Hour,
		Recorder: tiered.RecorderFunc(func(e tiered.Event) {
			switch {
			case e.Kind == tiered.EventInvalidationReceived:
				received <- struct{}{}
			case e.Kind == tiered.EventFlush && ready.Load():
				flushes.Add(1)
			}
		})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.WaitBus(ctx); err != nil {
		t.Fatal(err)
	}
	ready.Store(true)
	g, err := tiered.NewGroup[string](c, "user", tiered.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"1", "2", "3", "30", "*", "5"}
	for _, id := range ids {
		if _, err := g.Fetch(ctx, id, func(context.Context, string) (string, error) { return "v" + id, nil }); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitL1()
	inL1 := func() []string {
		var in []string
		for _, id := range ids {
			if _, ok := g.Peek(id); ok {
				in = append(in, id)
			}
		}
		return in
	}
	inRedis := func() []string {
		var in []string
		for _, id := range ids {
			if n, _ := rdb.Exists(ctx, ns+":"+g.Key(id)).Result(); n == 1 {
				in = append(in, id)
			}
		}
		return in
	}
	wait := func() {
		t.Helper()
		select {
		case <-received:
		case <-time.After(time.Minute):
			t.Fatal("no invalidation reached the Go node within a minute")
		}
	}
	if got := inL1(); !slices.Equal(got, ids) {
		t.Fatalf("before: L1 holds %q", got)
	}
	port := strconv.Itoa(srv.Port())
	steps := []struct {
		args []string
		want []string // what stays, in L1 and in Redis
	}{
		{[]string{"keys", "user:1", "user:2"}, []string{"3", "30", "*", "5"}},
		{[]string{"patterns", "user:3?", `user:\*`}, []string{"3", "5"}},
		{[]string{"--no-sequence", "keys", "user:3"}, []string{"5"}},
	}
	for _, s := range steps {
		runPython(t, py, append([]string{"--port", port, "--namespace", ns}, s.args...)...)
		wait()
		if got := inL1(); !slices.Equal(got, s.want) {
			t.Fatalf("after %q, L1 holds %q; want %q", s.args, got, s.want)
		}
		if got := inRedis(); !slices.Equal(got, s.want) {
			t.Fatalf("after %q, Redis holds %q; want %q", s.args, got, s.want)
		}
	}
	if f := flushes.Load(); f != 0 {
		t.Fatalf("the Go node flushed its L1 %d times; want 0", f)
	}
}
