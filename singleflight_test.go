package tiercache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	goleak.VerifyTestMain(m)
}

const crowd = 1000

// storm is a cache on a real Redis whose recorder closes joined once
// crowd-1 callers have joined the load in flight.
type storm struct {
	rdb    *redis.Client
	cache  *tiered.Cache
	group  *tiered.Group[string]
	joined chan struct{}
}

func newStorm(t *testing.T) *storm {
	t.Helper()
	s := &storm{rdb: redistest.Start(t).Client(t), joined: make(chan struct{})}
	var n atomic.Int64
	rec := tiered.RecorderFunc(func(e tiered.Event) {
		if e.Kind == tiered.EventCollapsed && n.Add(1) == crowd-1 {
			close(s.joined)
		}
	})
	c, err := tiered.New(tiered.Options{Redis: s.rdb, Namespace: "storm", Recorder: rec,
		RedisTimeout: 10 * time.Second}) // the test counts loads and leases, not how fast a busy machine answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s.cache = c
	if s.group, err = tiered.NewGroup[string](c, "hot", tiered.GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// run starts crowd goroutines that Fetch one cold key with load; ctxs[i], if
// set, is goroutine i's context. It returns each goroutine's outcome.
func (s *storm) run(load tiered.LoaderFunc[string], ctxs map[int]context.Context) (vals []string, errs []error, panics []any, wg *sync.WaitGroup) {
	vals, errs, panics = make([]string, crowd), make([]error, crowd), make([]any, crowd)
	wg = &sync.WaitGroup{}
	for i := 0; i < crowd; i++ {
		ctx := context.Background()
		if c, ok := ctxs[i]; ok {
			ctx = c
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			vals[i], errs[i] = s.group.Fetch(ctx, "cold", load)
		}()
	}
	return vals, errs, panics, wg
}

func TestStormLoadsOnce(t *testing.T) {
	s := newStorm(t)
	var calls atomic.Int64
	cancelled := map[int]context.Context{}
	cancels := make([]context.CancelFunc, 0, 100)
	for i := 0; i < crowd; i += 10 { // every tenth caller gives up mid-load
		ctx, cancel := context.WithCancel(context.Background())
		cancelled[i], cancels = ctx, append(cancels, cancel)
	}
	release := make(chan struct{})
	load := func(ctx context.Context, id string) (string, error) {
		calls.Add(1)
		<-s.joined // every other caller is waiting on this load
		<-release
		return "v", nil
	}
	vals, errs, _, wg := s.run(load, cancelled)
	<-s.joined
	for _, cancel := range cancels {
		cancel()
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("loader calls = %d; want 1", n)
	}
	for i := 0; i < crowd; i++ {
		_, isCancelled := cancelled[i]
		switch {
		case isCancelled && !errors.Is(errs[i], context.Canceled) && errs[i] != nil:
			t.Fatalf("cancelled caller %d: %v", i, errs[i])
		case !isCancelled && (errs[i] != nil || vals[i] != "v"):
			t.Fatalf("caller %d = %q, %v; want v", i, vals[i], errs[i])
		}
	}
	if st := s.cache.Stats(); st.Collapsed != crowd-1 || st.Loads != 1 || st.LeasesWon != 1 {
		t.Fatalf("Stats = %+v; want %d collapsed, 1 load, 1 lease", st, crowd-1)
	}
}

// TestStormCancelledReturnAtOnce shows that a cancelled waiter returns while
// the load is still blocked.
func TestStormCancelledReturnAtOnce(t *testing.T) {
	s := newStorm(t)
	release := make(chan struct{})
	load := func(ctx context.Context, id string) (string, error) {
		<-release
		return "v", nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	ctxs := map[int]context.Context{}
	for i := 0; i < crowd; i++ {
		ctxs[i] = ctx
	}
	_, errs, _, wg := s.run(load, ctxs)
	<-s.joined
	cancel()
	wg.Wait() // would hang if a cancelled waiter waited for the load
	close(release)
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("caller %d error = %v; want context.Canceled", i, err)
		}
	}
}

func TestStormLoaderError(t *testing.T) {
	s := newStorm(t)
	boom := errors.New("db down")
	var calls atomic.Int64
	load := func(ctx context.Context, id string) (string, error) {
		calls.Add(1)
		<-s.joined
		return "", boom
	}
	_, errs, _, wg := s.run(load, nil)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, boom) {
			t.Fatalf("caller %d error = %v; want %v", i, err, boom)
		}
	}
	if n := s.rdb.Exists(context.Background(), "storm:hot:cold").Val(); n != 0 {
		t.Fatal("the lease was not released after the loader error")
	}
	v, err := s.group.Fetch(context.Background(), "cold", func(context.Context, string) (string, error) {
		calls.Add(1)
		return "v2", nil
	})
	if err != nil || v != "v2" || calls.Load() != 2 {
		t.Fatalf("next Fetch = %q, %v after %d loads; want a fresh load", v, err, calls.Load())
	}
}

func TestStormLoaderPanic(t *testing.T) {
	s := newStorm(t)
	load := func(ctx context.Context, id string) (string, error) {
		<-s.joined
		panic("loader bug")
	}
	_, _, panics, wg := s.run(load, nil)
	wg.Wait()
	for i, p := range panics {
		pe, ok := p.(*tiered.PanicError)
		if !ok || pe.Value != "loader bug" || len(pe.Stack) == 0 {
			t.Fatalf("caller %d recovered %#v; want *tiered.PanicError with the value and a stack", i, p)
		}
	}
	if n := s.rdb.Exists(context.Background(), "storm:hot:cold").Val(); n != 0 {
		t.Fatal("the lease was not released after the loader panic")
	}
	v, err := s.group.Fetch(context.Background(), "cold", func(context.Context, string) (string, error) { return "ok", nil })
	if err != nil || v != "ok" {
		t.Fatalf("Fetch after the panic = %q, %v; the cache must keep working", v, err)
	}
}
