// Package pythoninvalidate tests tiercache_invalidate.py, a Python
// publisher of invalidations that follows docs/protocol.md, against a real
// redis-server and a Go node.
package pythoninvalidate_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// pyNode is a Go node of a fleet that the Python module invalidates, with
// a group "user" of strings.
type pyNode struct {
	c                  *tiered.Cache
	g                  *tiered.Group[string]
	received, rejected chan struct{}
	flushes            atomic.Int64 // whole-L1 flushes after start-up
}

func newPyNode(t *testing.T, rdb *redis.Client, ns string) *pyNode {
	t.Helper()
	n := &pyNode{received: make(chan struct{}, 16), rejected: make(chan struct{}, 16)}
	var ready atomic.Bool
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: ns, TTL: time.Hour, L1TTL: time.Hour,
		Recorder: tiered.RecorderFunc(func(e tiered.Event) {
			switch {
			case e.Kind == tiered.EventInvalidationReceived:
				n.received <- struct{}{}
			case e.Kind == tiered.EventBusRejected:
				n.rejected <- struct{}{}
			case e.Kind == tiered.EventFlush && ready.Load():
				n.flushes.Add(1)
			}
		})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	ready.Store(true)
	n.c = c
	if n.g, err = tiered.NewGroup[string](c, "user", tiered.GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	return n
}

// fill loads ids into both tiers.
func (n *pyNode) fill(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := n.g.Fetch(context.Background(), id, func(context.Context, string) (string, error) { return "v" + id, nil }); err != nil {
			t.Fatal(err)
		}
	}
	n.c.WaitL1()
}

// inL1 returns how many of ids the node's L1 holds.
func (n *pyNode) inL1(ids ...string) int {
	in := 0
	for _, id := range ids {
		if _, ok := n.g.Peek(id); ok {
			in++
		}
	}
	return in
}

// TestPythonTooLargeSendsFlush guards the module's handling of one key too
// large for a bus message (MaxMessageBytes, 64 KiB): it published the
// message anyway, which every node drops unread, and exited 0, leaving the
// key in every L1. docs/protocol.md says a foreign writer must send a
// flush instead, as a Go node does: the node must empty its L1, and drop
// nothing.
func TestPythonTooLargeSendsFlush(t *testing.T) {
	py := python(t)
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns = "pybig"
	n := newPyNode(t, rdb, ns)
	big := strings.Repeat("x", 70000)
	n.fill(t, big, "small")
	if got := n.inL1(big, "small"); got != 2 {
		t.Fatalf("before: L1 holds %d of the 2 ids", got)
	}
	out := runPython(t, py, "--port", strconv.Itoa(srv.Port()), "--namespace", ns, "keys", "user:"+big)
	select {
	case <-n.received:
	case <-n.rejected:
		t.Fatalf("the Go node dropped the message unread (larger than its MaxMessageBytes); python printed %q", out)
	case <-time.After(time.Minute):
		t.Fatal("no invalidation reached the Go node within a minute")
	}
	if !strings.Contains(out, "sent 1 flush(es)") {
		t.Fatalf("python printed %q; want it to say that it sent a flush", out)
	}
	if got := n.inL1(big, "small"); got != 0 {
		t.Fatalf("after the flush, L1 holds %d of the 2 ids; want none", got)
	}
	if f := n.flushes.Load(); f != 1 {
		t.Fatalf("the Go node flushed %d times; want 1", f)
	}
	if c, err := rdb.Exists(context.Background(), ns+":"+n.g.Key(big)).Result(); err != nil || c != 0 {
		t.Fatalf("EXISTS of the large key: %d, %v; want it gone from Redis", c, err)
	}
}

// TestPythonRefusesBadNamespace guards the module's check of the
// namespace, the rule of remote.ValidateNamespace (1 to 64 bytes of
// [A-Za-z0-9_.-]): --namespace '*' made its SCAN pattern "*:user:1" match
// every other namespace's keys, and removed them.
func TestPythonRefusesBadNamespace(t *testing.T) {
	py := python(t)
	// The class refuses it, before it touches Redis (no server needed).
	out, err := exec.Command(py, "-c", `import tiercache_invalidate as t
try:
    t.Invalidator(None, "*")
except ValueError as e:
    print("refused:", e)
else:
    print("accepted")
t.Invalidator(None, "shop.v2-a_B")
print("valid accepted")`).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "refused: namespace '*'") || !strings.Contains(string(out), "valid accepted") {
		t.Fatalf("Invalidator(None, \"*\"): %v, output %q; want a ValueError, and a valid namespace accepted", err, out)
	}

	// The command line refuses it (exit 2), and no key of another namespace goes.
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "shop:user:1", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(srv.Port())
	for _, ns := range []string{"*", "sh?p", "a b", "", strings.Repeat("n", 65)} {
		cmd := exec.Command(py, "tiercache_invalidate.py", "--port", port, "--namespace", ns, "patterns", "user:1")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "must be 1 to 64 bytes, each in [A-Za-z0-9_.-]") {
			t.Fatalf("--namespace %q: %v, output %q; want exit 2 and the namespace rule", ns, err, out)
		}
		if c, err := rdb.Exists(ctx, "shop:user:1").Result(); err != nil || c != 1 {
			t.Fatalf("after --namespace %q: EXISTS shop:user:1 = %d, %v; want the key of namespace shop untouched", ns, c, err)
		}
	}
}
