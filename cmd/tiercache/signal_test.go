package main_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/redistest"
)

// TestSecondInterruptEnds guards the way out of a command that the first
// Ctrl-C cannot stop at once: here invalidate, whose UNLINK a server
// paused for writes holds, with --timeout 1h (go-redis bounds a call by
// its ctx's deadline, not by its cancellation). The first SIGINT ends the
// command's ctx; it must also give SIGINT its default handling back, so
// that the next one ends the process: every SIGINT after the first was
// ignored.
func TestSecondInterruptEnds(t *testing.T) {
	t.Parallel()
	if signal.Ignored(os.Interrupt) {
		t.Skip("SIGINT is ignored in this process, and so in the command it starts")
	}
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := admin.Do(ctx, "client", "pause", 120000, "write").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.Do(context.Background(), "client", "unpause")
	cmd := exec.CommandContext(ctx, bin, "invalidate", "-p", strconv.Itoa(srv.Port()), "--timeout", "1h", "user:1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Once the server holds its UNLINK, its signal handler is installed.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for held := false; !held; {
		clients, err := admin.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		held = strings.Contains(clients, "cmd=unlink")
		select {
		case err := <-exited:
			t.Fatalf("invalidate ended before the server held it: %v", err)
		case <-deadline:
			t.Fatalf("the server held no UNLINK within a minute: %s", clients)
		case <-tick.C:
		}
	}
	// SIGINT until it ends: the first ends its ctx, and one that comes
	// after the first was handled must end the process.
	deadline = time.After(time.Minute)
	for {
		if err := cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("invalidate ended with %v; want it killed by SIGINT", err)
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
				t.Fatalf("invalidate ended with %v; want it killed by SIGINT", err)
			}
			return
		case <-deadline:
			t.Fatal("invalidate still running a minute into repeated SIGINTs (its UNLINK held, --timeout 1h)")
		case <-tick.C:
		}
	}
}
