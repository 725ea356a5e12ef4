package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
)

// TestGroupCommit: Publish calls that arrive while a PUBLISH is in flight
// go out together, in one message, when it ends; each call returns that
// message's outcome. The first PUBLISH is held by the test; five calls
// queue behind it. With group commits off (NoGroup) they take five
// PUBLISHes, one after the other.
func TestGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noGroup bool
		fail    bool // the PUBLISH after the held one fails
	}{
		{name: "grouped"},
		{name: "grouped-fails", fail: true},
		{name: "noGroup", noGroup: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
			var (
				mu    sync.Mutex
				sent  []bus.Message
				held  = make(chan struct{})
				enter = make(chan struct{})
			)
			o := bus.Options{Heartbeat: time.Hour, Timeout: 10 * time.Second}
			if tc.noGroup {
				bus.NoGroup(&o)
			}
			o.Publish = func(ctx context.Context, payload []byte) error {
				m, err := bus.Decode(payload)
				if err != nil {
					return err
				}
				if m.Kind == bus.KindHeartbeat {
					return nil
				}
				mu.Lock()
				sent = append(sent, m)
				n := len(sent)
				mu.Unlock()
				if n == 1 {
					close(enter)
					<-held
				}
				if n == 2 && tc.fail {
					return errors.New("refused by the test")
				}
				return rdb.Publish(ctx, "test:bus", payload).Err()
			}
			rb := newRecorder()
			a := newBus(t, srv.Addr(), newRecorder(), o)
			newBus(t, srv.Addr(), rb, bus.Options{})
			rb.expect(t, "restored")
			ctx := context.Background()
			first := make(chan error, 1)
			go func() { first <- a.Publish(ctx, bus.KindKeys, "first") }()
			<-enter
			const n = 5
			errs := make(chan error, n)
			var want []string
			for i := range n {
				k := fmt.Sprintf("k%d", i)
				want = append(want, k)
				go func() { errs <- a.Publish(ctx, bus.KindKeys, k) }()
			}
			deadline := time.Now().Add(hangGuard)
			for bus.Queued(a) < n { // every call waits behind the held PUBLISH
				if time.Now().After(deadline) {
					t.Fatalf("only %d calls queued within %v", bus.Queued(a), hangGuard)
				}
				time.Sleep(time.Millisecond)
			}
			close(held)
			if err := <-first; err != nil {
				t.Fatalf("first Publish: %v", err)
			}
			failed := 0
			for range n {
				if err := <-errs; err != nil {
					failed++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case tc.noGroup:
				if len(sent) != n+1 {
					t.Fatalf("%d PUBLISHes without group commits; want %d", len(sent), n+1)
				}
				return
			case len(sent) != 2:
				t.Fatalf("%d PUBLISHes; want 2 (the held one, then the five queued calls together)", len(sent))
			}
			got := slices.Clone(sent[1].Items)
			slices.Sort(got)
			if !slices.Equal(got, want) || sent[1].Seq != 2 {
				t.Fatalf("second message: seq %d, items %v; want seq 2, items %v", sent[1].Seq, got, want)
			}
			if tc.fail {
				if failed != n {
					t.Fatalf("%d of %d calls carried by the failed message returned an error", failed, n)
				}
				return
			}
			if failed != 0 {
				t.Fatalf("%d calls failed", failed)
			}
			rb.expect(t, "apply")
			rb.expect(t, "apply")
			rb.mu.Lock()
			defer rb.mu.Unlock()
			if len(rb.applied) != 2 || len(rb.applied[1].Items) != n {
				t.Fatalf("the other node applied %+v", rb.applied)
			}
		})
	}
}

// pipeHook records the command names of each pipeline a client sends.
type pipeHook struct {
	mu    sync.Mutex
	pipes [][]string
}

func (h *pipeHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *pipeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var names []string
		for _, c := range cmds {
			names = append(names, c.Name())
		}
		if slices.Contains(names, "publish") { // not a connection's set-up
			h.mu.Lock()
			h.pipes = append(h.pipes, names)
			h.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// TestPublishAfter: the caller's commands and the message go in one
// pipeline, the commands first, and the message arrives; with the order
// switched (PublishFirst) the PUBLISH comes first. A sharded bus refuses
// it, running nothing.
func TestPublishAfter(t *testing.T) {
	srv := redistest.Start(t)
	for _, first := range []bool{false, true} {
		t.Run(fmt.Sprintf("publishFirst=%v", first), func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
			h := &pipeHook{}
			rdb.AddHook(h)
			o := bus.Options{Client: rdb, Channel: "test:after", Handler: newRecorder(), Heartbeat: time.Hour, Timeout: 10 * time.Second}
			if first {
				bus.PublishFirst(&o)
			}
			a, err := bus.New(o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			rb := newRecorder()
			rdbB := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			t.Cleanup(func() { rdbB.Close() })
			newBusOn(t, rdbB, "test:after", rb, bus.Options{})
			rb.expect(t, "restored")
			if !a.Pipelines() {
				t.Fatal("a single server's bus does not pipeline")
			}
			var set *redis.StatusCmd
			var setErr, ctxErr error
			after := false
			err = a.PublishAfter(context.Background(), func(ctx context.Context, p redis.Pipeliner) func() {
				set = p.Set(ctx, "after:marker", "1", 0)
				return func() { after, setErr, ctxErr = true, set.Err(), ctx.Err() }
			}, bus.KindKeys, "k")
			if err != nil || !after || setErr != nil || ctxErr != nil {
				t.Fatalf("PublishAfter = %v; after called %v, its SET = %v, the pipeline's context then %v; want it called with the SET done and the context live", err, after, setErr, ctxErr)
			}
			rb.expect(t, "apply")
			h.mu.Lock()
			defer h.mu.Unlock()
			want := []string{"set", "publish"}
			if first {
				want = []string{"publish", "set"}
			}
			if len(h.pipes) != 1 || !slices.Equal(h.pipes[0], want) {
				t.Fatalf("pipelines = %v; want one, %v", h.pipes, want)
			}
		})
	}
	t.Run("sharded", func(t *testing.T) {
		ran := false
		s := newBus(t, srv.Addr(), newRecorder(), bus.Options{Sharded: true})
		err := s.PublishAfter(context.Background(), func(context.Context, redis.Pipeliner) func() { ran = true; return nil }, bus.KindKeys, "k")
		if !errors.Is(err, bus.ErrNoPipeline) || ran || s.Pipelines() {
			t.Fatalf("sharded PublishAfter = %v, ran %v, Pipelines %v; want ErrNoPipeline and nothing run", err, ran, s.Pipelines())
		}
	})
}

// TestPanicInBeforeFailsItsSend: a PublishAfter whose before panics while
// its send carries another queued call: the sender's call panics, the
// other call returns an error (it was not sent), and the bus publishes
// again afterwards.
func TestPanicInBeforeFailsItsSend(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	held, enter := make(chan struct{}), make(chan struct{})
	var once sync.Once
	o := bus.Options{Client: rdb, Channel: "test:panic", Handler: newRecorder(), Heartbeat: time.Hour, Timeout: 10 * time.Second}
	o.Publish = func(ctx context.Context, payload []byte) error {
		if m, err := bus.Decode(payload); err == nil && m.Kind != bus.KindHeartbeat {
			once.Do(func() { close(enter); <-held })
		}
		return rdb.Publish(ctx, "test:panic", payload).Err()
	}
	a, err := bus.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	go func() { _ = a.Publish(ctx, bus.KindKeys, "first") }()
	<-enter
	type outcome struct {
		err      error
		panicked bool
	}
	outs := make(chan outcome, 2)
	call := func(f func() error) {
		defer func() {
			if p := recover(); p != nil {
				outs <- outcome{panicked: true}
			}
		}()
		outs <- outcome{err: f()}
	}
	waitQueued := func(n int) {
		deadline := time.Now().Add(hangGuard)
		for bus.Queued(a) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d calls queued within %v; want %d", bus.Queued(a), hangGuard, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	go call(func() error {
		return a.PublishAfter(ctx, func(context.Context, redis.Pipeliner) func() { panic("before") }, bus.KindKeys, "a")
	})
	waitQueued(1)
	go call(func() error { return a.Publish(ctx, bus.KindKeys, "b") })
	waitQueued(2)
	close(held)
	var o1, o2 outcome
	for i, o := range []*outcome{&o1, &o2} {
		select {
		case *o = <-outs:
		case <-time.After(hangGuard): // a hang guard, not a synchronization
			t.Fatalf("call %d of 2 did not return within %v", i+1, hangGuard)
		}
	}
	if o1.panicked == o2.panicked {
		t.Fatalf("outcomes %+v and %+v; want one panic (the sender's) and one error", o1, o2)
	}
	if other := map[bool]outcome{o1.panicked: o1, o2.panicked: o2}[false]; other.err == nil {
		t.Fatal("the call carried by the panicked send returned no error")
	}
	if err := a.Publish(ctx, bus.KindKeys, "after"); err != nil {
		t.Fatalf("Publish after the panic: %v", err)
	}
}
