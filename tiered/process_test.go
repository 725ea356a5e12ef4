package tiered_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

const helperEnv = "TIERCACHE_HELPER_NODE_ADDR"

// TestHelperProcessNode is not a test: it is a cache node that
// TestInvalidationAcrossProcesses runs in a separate OS process (the test
// binary re-executed). It loads key 1, says "ready", waits for an
// invalidation from another process, checks that its L1 no longer serves
// the key, and says "invalidated <lag> <served>".
func TestHelperProcessNode(t *testing.T) {
	addr := os.Getenv(helperEnv)
	if addr == "" {
		t.Skip("helper process only")
	}
	received := make(chan time.Duration, 16)
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "procs", Recorder: tiered.RecorderFunc(func(e tiered.Event) {
		if e.Kind == tiered.EventInvalidationReceived {
			received <- e.Duration
		}
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, _ := tiered.NewGroup[string](c, "post", tiered.GroupOptions{})
	ctx := context.Background()
	if err := c.WaitBus(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Fetch(ctx, "1", constLoader("v1")); err != nil {
		t.Fatal(err)
	}
	c.WaitL1()
	fmt.Println("ready")
	lag := <-received
	before := g.Stats().L1Hits
	v, _ := g.Fetch(ctx, "1", constLoader("v2"))
	servedFromL1 := g.Stats().L1Hits > before
	fmt.Printf("invalidated %d %v %s\n", lag.Nanoseconds(), servedFromL1, v)
	io.Copy(io.Discard, os.Stdin) // until the parent closes our stdin
}

// TestInvalidationAcrossProcesses proves the bus between OS processes: two
// child processes each hold a key in L1; this process invalidates it; both
// stop serving it from L1 and load the new value.
func TestInvalidationAcrossProcesses(t *testing.T) {
	srv := startRedis(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines *bufio.Scanner
	}
	var children []child
	for i := 0; i < 2; i++ {
		cmd := exec.Command(exe, "-test.run=^TestHelperProcessNode$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+srv.Addr())
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ch := child{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
		children = append(children, ch)
		t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	}
	next := func(c child) string {
		for c.lines.Scan() {
			if l := c.lines.Text(); strings.HasPrefix(l, "ready") || strings.HasPrefix(l, "invalidated") {
				return l
			}
		}
		t.Fatalf("child ended: %v", c.lines.Err())
		return ""
	}
	for _, c := range children {
		if l := next(c); l != "ready" {
			t.Fatalf("child said %q; want ready", l)
		}
	}
	rdb := srv.Client(t)
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "procs"})
	g := newGroup[string](t, c, "post", tiered.GroupOptions{})
	if err := g.Set(context.Background(), "1", "v2"); err != nil {
		t.Fatal(err)
	}
	for i, ch := range children {
		var lag int64
		var fromL1 bool
		var v string
		if _, err := fmt.Sscanf(next(ch), "invalidated %d %t %s", &lag, &fromL1, &v); err != nil {
			t.Fatal(err)
		}
		if fromL1 || v != "v2" {
			t.Fatalf("child %d served %q (from L1: %v) after the invalidation; want v2 from Redis", i, v, fromL1)
		}
		t.Logf("child %d: propagation lag %v", i, time.Duration(lag))
	}
}
