package redistest_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// fakeTB is a testing.TB whose Fatal and Skip record what happened and end
// the calling goroutine, so that a test can check them.
type fakeTB struct {
	testing.TB
	outcome, msg string // written before the goroutine ends
}

func (f *fakeTB) Fatal(args ...any)                 { f.end("fatal", fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.end("fatal", fmt.Sprintf(format, args...)) }
func (f *fakeTB) Skip(args ...any)                  { f.end("skip", fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.end("skip", fmt.Sprintf(format, args...)) }

func (f *fakeTB) end(outcome, msg string) {
	f.outcome, f.msg = outcome, msg
	runtime.Goexit()
}

// outcome runs fn on its own goroutine with a fakeTB backed by t, and
// returns "fatal", "skip" or "" (fn returned) with the message.
func outcome(t *testing.T, fn func(testing.TB)) (string, string) {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.outcome, f.msg
}

// ping sends PING over a new raw connection to addr and reads the reply,
// all within timeout.
func ping(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	return pingOn(c)
}

// pingOn sends PING over c and reads the reply.
func pingOn(c net.Conn) error {
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	return readPong(c)
}

// readPong reads a +PONG reply from c.
func readPong(c net.Conn) error {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("reply %q; want +PONG", line)
	}
	return nil
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// waitCtx returns a context bounding a wait in a test, so that a broken
// notification fails the test instead of hanging it.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
