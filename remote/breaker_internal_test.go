package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// change is one call of OnBreaker.
type change struct {
	open bool
	err  error
}

// testBreaker returns a breaker that opens after failures failures, with a
// cool-down of 1s on a clock the test moves, and the channel of its
// notifications.
func testBreaker(failures int) (*breaker, *atomic.Int64, chan change) {
	var now atomic.Int64
	ch := make(chan change, 100)
	cfg := &breakerConfig{
		failures: int64(failures),
		cooldown: int64(time.Second),
		notify:   func(_ string, open bool, err error) { ch <- change{open, err} },
		now:      now.Load,
	}
	return newBreaker("ep", cfg), &now, ch
}

func mustAdmit(t *testing.T, b *breaker) uint64 {
	t.Helper()
	tk, err := b.admit()
	if err != nil {
		t.Fatalf("admit() = %v; want admitted", err)
	}
	return tk
}

func mustRefuse(t *testing.T, b *breaker) {
	t.Helper()
	if _, err := b.admit(); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("admit() = %v; want ErrBreakerOpen", err)
	}
}

func expectChange(t *testing.T, ch chan change, open bool) {
	t.Helper()
	select {
	case c := <-ch:
		if c.open != open {
			t.Fatalf("OnBreaker(open=%v); want open=%v", c.open, open)
		}
	default:
		t.Fatalf("no OnBreaker call; want open=%v", open)
	}
}

func expectNoChange(t *testing.T, ch chan change) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("OnBreaker(open=%v, %v); want no call", c.open, c.err)
	default:
	}
}

var errNet = &net.OpError{Op: "read", Net: "tcp", Err: io.ErrUnexpectedEOF}

func TestBreakerStateMachine(t *testing.T) {
	b, now, ch := testBreaker(3)
	// Failures interrupted by a success do not open it: they must be consecutive.
	for range 2 {
		b.done(mustAdmit(t, b), failure, errNet)
	}
	b.done(mustAdmit(t, b), success, nil)
	for range 2 {
		b.done(mustAdmit(t, b), failure, errNet)
	}
	mustAdmit(t, b)
	expectNoChange(t, ch)
	// The third consecutive failure opens it.
	b.done(mustAdmit(t, b), failure, errNet)
	c := <-ch
	if !c.open || c.err != errNet {
		t.Fatalf("OnBreaker = %+v; want open with the failure", c)
	}
	mustRefuse(t, b)
	now.Store(int64(time.Second) - 1)
	mustRefuse(t, b)

	// After the cool-down one call probes; the others are refused meanwhile.
	now.Store(int64(time.Second))
	probe := mustAdmit(t, b)
	mustRefuse(t, b)
	b.done(probe, failure, errNet) // a failed probe opens it again, silently
	expectNoChange(t, ch)
	mustRefuse(t, b)
	now.Store(2*int64(time.Second) - 1)
	mustRefuse(t, b)

	// A probe whose caller gave up tells nothing: the next call probes.
	now.Store(2 * int64(time.Second))
	b.done(mustAdmit(t, b), neutral, nil)
	expectNoChange(t, ch)
	probe = mustAdmit(t, b)
	mustRefuse(t, b)
	b.done(probe, success, nil)
	expectChange(t, ch, false)

	// Closed again, with a fresh count.
	for range 2 {
		b.done(mustAdmit(t, b), failure, errNet)
	}
	expectNoChange(t, ch)
	b.done(mustAdmit(t, b), failure, errNet)
	expectChange(t, ch, true)
}

// TestBreakerIgnoresStaleOutcomes: calls admitted before the breaker opened
// end after it did; their outcomes must neither close it nor count.
func TestBreakerIgnoresStaleOutcomes(t *testing.T) {
	b, now, ch := testBreaker(1)
	early1, early2 := mustAdmit(t, b), mustAdmit(t, b)
	b.done(mustAdmit(t, b), failure, errNet)
	expectChange(t, ch, true)
	b.done(early1, success, nil)
	b.done(early2, failure, errNet)
	expectNoChange(t, ch)
	mustRefuse(t, b)
	now.Store(int64(time.Second))
	probe := mustAdmit(t, b)
	b.done(probe, success, nil)
	expectChange(t, ch, false)
	b.done(probe, failure, errNet) // a probe's outcome counts once
	expectNoChange(t, ch)
	mustAdmit(t, b)
}

// TestBreakerConcurrent hammers one breaker from many goroutines under a
// moving clock: at most one probe is ever in flight, and OnBreaker
// alternates open, close, open...
func TestBreakerConcurrent(t *testing.T) {
	var now atomic.Int64
	var mu sync.Mutex // protects seq
	var seq []bool
	cfg := &breakerConfig{failures: 2, cooldown: 10, now: now.Load,
		notify: func(_ string, open bool, _ error) {
			mu.Lock()
			seq = append(seq, open)
			mu.Unlock()
		}}
	b := newBreaker("ep", cfg)
	var probes, maxProbes atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				now.Add(1)
				tk, err := b.admit()
				if err != nil {
					continue
				}
				isProbe := tk&stateMask == stateProbing
				if isProbe {
					n := probes.Add(1)
					if n > maxProbes.Load() {
						maxProbes.Store(n)
					}
				}
				o := []outcome{failure, failure, success, neutral}[(i+w)%4]
				if isProbe {
					probes.Add(-1)
				}
				b.done(tk, o, errNet)
			}
		})
	}
	wg.Wait()
	if m := maxProbes.Load(); m > 1 {
		t.Fatalf("%d probes in flight at once; want at most 1", m)
	}
	if len(seq) < 2 {
		t.Fatalf("OnBreaker called %d times; want opens and closes", len(seq))
	}
	for i, open := range seq {
		if open != (i%2 == 0) {
			t.Fatalf("OnBreaker sequence %v: not alternating open, close", seq)
		}
	}
}

type temporary struct{}

func (temporary) Error() string   { return "i/o timeout" }
func (temporary) Timeout() bool   { return true }
func (temporary) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	bg := context.Background()
	storeCtx, cancel := context.WithTimeoutCause(bg, time.Nanosecond, errStoreTimeout)
	defer cancel()
	<-storeCtx.Done()
	callerDeadline, cancel2 := context.WithTimeout(bg, time.Nanosecond)
	defer cancel2()
	<-callerDeadline.Done()
	callerCancelled, cancel3 := context.WithCancel(bg)
	cancel3()
	// The store's timeout derived from a cancelled caller ctx: the caller's.
	inner, cancel4 := context.WithTimeoutCause(callerCancelled, time.Hour, errStoreTimeout)
	defer cancel4()

	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want outcome
	}{
		{"nil", bg, nil, success},
		{"miss", bg, redis.Nil, success},
		{"too few replicas", bg, fmt.Errorf("x: %w", ErrNotReplicated), success},
		{"NOSCRIPT", bg, redis.ErrNoScript, success},
		{"WRONGTYPE wrapped", bg, fmt.Errorf("x: %w", redisErr("WRONGTYPE Operation against a key")), success},
		{"OOM", bg, redisErr("OOM command not allowed"), success},
		{"LOADING", bg, redisErr("LOADING Redis is loading the dataset in memory"), failure},
		{"BUSY", bg, redisErr("BUSY Redis is busy running a script"), failure},
		{"MASTERDOWN", bg, redisErr("MASTERDOWN Link with MASTER is down"), failure},
		{"CLUSTERDOWN", bg, redisErr("CLUSTERDOWN The cluster is down"), failure},
		{"max clients", bg, redisErr("ERR max number of clients reached"), failure},
		{"network", bg, errNet, failure},
		{"EOF", bg, io.EOF, failure},
		{"timeout", bg, temporary{}, failure},
		{"pool timeout", bg, redis.ErrPoolTimeout, failure},
		{"store deadline", storeCtx, context.DeadlineExceeded, failure},
		{"store deadline as i/o timeout", storeCtx, temporary{}, failure},
		{"caller deadline", callerDeadline, context.DeadlineExceeded, neutral},
		{"caller cancel", callerCancelled, context.Canceled, neutral},
		{"caller cancel under the store ctx", inner, context.Canceled, neutral},
		{"closed client", bg, redis.ErrClosed, neutral},
		// The masters of one write with WaitReplicas: one short of
		// replicas, another unreachable. The worst counts.
		{"joined: replicas short and network", bg, errors.Join(fmt.Errorf("a: %w", ErrNotReplicated), fmt.Errorf("b: %w", errNet)), failure},
		{"joined: replicas short twice", bg, errors.Join(ErrNotReplicated, ErrNotReplicated), success},
		{"joined: closed client and replicas short", bg, errors.Join(redis.ErrClosed, ErrNotReplicated), success},
	} {
		if got := classify(tc.ctx, tc.err); got != tc.want {
			t.Errorf("classify(%s) = %d; want %d", tc.name, got, tc.want)
		}
	}
}

// redisErr is a reply error as go-redis returns it.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

// TestGuardAllocs: the breaker adds no allocation to a successful call.
func TestGuardAllocs(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()}) // New does no I/O, nor do enter and exit
	defer rdb.Close()
	s, err := New(rdb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys := []string{"a", "b"}
	allocs := testing.AllocsPerRun(1000, func() {
		g, err := s.enter(ctx, "ns:k")
		if err != nil {
			panic(err)
		}
		g.exit(ctx, nil)
		g, _ = s.enterOn(ctx, rdb, keys)
		g.exitEach(ctx, nil, len(keys), func(int) error { return redis.Nil })
	})
	if allocs != 0 {
		t.Fatalf("enter/exit allocate %v times per call; want 0", allocs)
	}
}
