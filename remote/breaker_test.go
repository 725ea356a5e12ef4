package remote_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// notice is one call of OnBreaker.
type notice struct {
	endpoint string
	open     bool
	err      error
}

// breakerStore is a store whose breakers run on a clock the test moves,
// and the channel of its OnBreaker calls.
type breakerStore struct {
	*remote.Store
	now     atomic.Int64
	notices chan notice
}

func newBreakerStore(t *testing.T, rdb redis.UniversalClient, o remote.Options) *breakerStore {
	t.Helper()
	bs := &breakerStore{notices: make(chan notice, 64)}
	o.OnBreaker = func(ep string, open bool, err error) { bs.notices <- notice{ep, open, err} }
	s, err := remote.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	bs.Store = s
	if !o.DisableBreaker {
		remote.SetBreakerClock(s, bs.now.Load)
	}
	return bs
}

// cool moves the breakers' clock past a cool-down of d.
func (bs *breakerStore) cool(d time.Duration) { bs.now.Add(int64(d)) }

func (bs *breakerStore) expect(t *testing.T, endpoint string, open bool) notice {
	t.Helper()
	select {
	case n := <-bs.notices:
		if n.endpoint != endpoint || n.open != open {
			t.Fatalf("OnBreaker(%q, open=%v, %v); want (%q, open=%v)", n.endpoint, n.open, n.err, endpoint, open)
		}
		return n
	default:
		t.Fatalf("no OnBreaker call; want (%q, open=%v)", endpoint, open)
	}
	return notice{}
}

func (bs *breakerStore) expectNone(t *testing.T) {
	t.Helper()
	select {
	case n := <-bs.notices:
		t.Fatalf("OnBreaker(%q, open=%v, %v); want no call", n.endpoint, n.open, n.err)
	default:
	}
}

func miniClient(t *testing.T, m *miniredis.Miniredis) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

const loading = "LOADING Redis is loading the dataset in memory"

// TestBreakerOpensAndProbes: consecutive failures open the breaker; an open
// breaker refuses calls without sending anything; after the cool-down one
// probe goes; a failed probe opens it again, a good one closes it.
func TestBreakerOpensAndProbes(t *testing.T) {
	m := miniredis.RunT(t)
	bs := newBreakerStore(t, miniClient(t, m), remote.Options{BreakerFailures: 3, BreakerCooldown: time.Second})
	ctx := context.Background()
	m.SetError(loading)
	for i := range 3 {
		if _, err := bs.Get(ctx, "k"); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
			t.Fatalf("Get #%d = %v; want the server's error", i, err)
		}
	}
	n := bs.expect(t, m.Addr(), true)
	if !redis.IsLoadingError(n.err) {
		t.Fatalf("OnBreaker err = %v; want the LOADING failure", n.err)
	}
	m.SetError("") // a call that reached the server would now be counted
	sent := m.CommandCount()
	calls := []func() error{
		func() error { _, err := bs.Get(ctx, "k"); return err },
		func() error { _, err := bs.GetMany(ctx, []string{"a", "b"}); return err },
		func() error { return bs.Set(ctx, "k", value("v", time.Minute), time.Minute) },
		func() error { _, _, _, err := bs.Acquire(ctx, "k", time.Second); return err },
		func() error {
			_, err := bs.Fill(ctx, remote.Lease{Key: "k", Token: 1}, value("v", time.Minute), time.Minute)
			return err
		},
		func() error { _, err := bs.Release(ctx, remote.Lease{Key: "k", Token: 1}); return err },
		func() error { return bs.Unlink(ctx, "a", "b") },
		func() error { _, err := bs.DeletePattern(ctx, "a*"); return err },
	}
	for i, call := range calls {
		if err := call(); !errors.Is(err, remote.ErrBreakerOpen) {
			t.Fatalf("call #%d while open = %v; want ErrBreakerOpen", i, err)
		}
	}
	if got := m.CommandCount(); got != sent {
		t.Fatalf("%d commands reached the server while the breaker was open; want 0", got-sent)
	}
	if !remote.BreakerOpen(bs.Store, m.Addr()) {
		t.Fatal("BreakerOpen = false while open")
	}

	m.SetError(loading)
	bs.cool(time.Second)
	if _, err := bs.Get(ctx, "k"); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("probe = %v; want the server's error", err)
	}
	bs.expectNone(t) // a failed probe opens it again without a notice
	if _, err := bs.Get(ctx, "k"); !errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("Get after a failed probe = %v; want ErrBreakerOpen", err)
	}
	m.SetError("")
	bs.cool(time.Second)
	if _, err := bs.Get(ctx, "k"); err != nil {
		t.Fatalf("probe = %v; want success", err)
	}
	bs.expect(t, m.Addr(), false)
	for i, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("call #%d after the close = %v", i, err)
		}
	}
}

// TestBreakerIgnores: misses, reply errors of a working server and the
// caller's own cancellation never open the breaker; the same number of
// failures of a server that cannot serve does.
func TestBreakerIgnores(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name      string
		serverErr string
		ctx       context.Context
		opens     bool
	}{
		{"miss", "", ctx, false},
		{"NOSCRIPT", "NOSCRIPT No matching script", ctx, false},
		{"WRONGTYPE", "WRONGTYPE Operation against a key holding the wrong kind of value", ctx, false},
		{"caller cancelled", loading, cancelled, false},
		{"LOADING", loading, ctx, true},
		{"MASTERDOWN", "MASTERDOWN Link with MASTER is down", ctx, true},
		{"CLUSTERDOWN", "CLUSTERDOWN The cluster is down", ctx, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := miniredis.RunT(t)
			bs := newBreakerStore(t, miniClient(t, m), remote.Options{BreakerFailures: 2})
			m.SetError(tc.serverErr)
			for range 4 {
				_, err := bs.Get(tc.ctx, "k")
				if errors.Is(err, remote.ErrBreakerOpen) {
					break
				}
			}
			if got := remote.BreakerOpen(bs.Store, m.Addr()); got != tc.opens {
				t.Fatalf("breaker open = %v; want %v", got, tc.opens)
			}
		})
	}
}

// TestBreakerDisabled: with DisableBreaker every call reaches the server,
// however often it fails.
func TestBreakerDisabled(t *testing.T) {
	m := miniredis.RunT(t)
	bs := newBreakerStore(t, miniClient(t, m), remote.Options{BreakerFailures: 1, DisableBreaker: true})
	m.SetError(loading)
	for i := range 5 {
		if _, err := bs.Get(context.Background(), "k"); !redis.IsLoadingError(err) {
			t.Fatalf("Get #%d with the breaker off = %v; want the server's LOADING error", i, err)
		}
	}
	bs.expectNone(t)
}

func TestBreakerOptionsValidated(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := miniClient(t, m)
	for _, o := range []remote.Options{{BreakerFailures: -1}, {BreakerCooldown: -time.Second}} {
		if _, err := remote.New(rdb, o); err == nil {
			t.Errorf("New(%+v) succeeded; want an error", o)
		}
	}
}

// TestBreakerKillRestart: a real redis-server killed, then restarted on the
// same port.
func TestBreakerKillRestart(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	bs := newBreakerStore(t, rdb, remote.Options{BreakerFailures: 3, BreakerCooldown: time.Second})
	ctx := context.Background()
	if err := bs.Set(ctx, "k", value("v", time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	for i := range 3 {
		if _, err := bs.Get(ctx, "k"); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
			t.Fatalf("Get #%d on a killed server = %v; want a network error", i, err)
		}
	}
	bs.expect(t, srv.Addr(), true)
	if _, err := bs.Get(ctx, "k"); !errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("Get while open = %v; want ErrBreakerOpen", err)
	}
	srv.Restart()
	if _, err := bs.Get(ctx, "k"); !errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("Get before the cool-down = %v; want ErrBreakerOpen", err)
	}
	bs.cool(time.Second)
	r, err := bs.Get(ctx, "k")
	if err != nil || r.Kind != remote.KindMiss {
		t.Fatalf("probe after restart = %v, %v; want a miss (the restarted server is empty)", r.Kind, err)
	}
	bs.expect(t, srv.Addr(), false)
}

// TestBreakerSlowServer: through the proxy, a server slower than the
// store's Timeout opens the breaker; a caller whose own deadline is shorter
// than the store's Timeout does not; once healed, the probe closes it.
func TestBreakerSlowServer(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	mk := func(timeout time.Duration) *breakerStore {
		return newBreakerStore(t, rdb, remote.Options{Timeout: timeout, BreakerFailures: 2, BreakerCooldown: time.Second})
	}
	patient, hasty := mk(time.Hour), mk(100*time.Millisecond)
	if _, err := patient.Get(ctx, "k"); err != nil { // a connection up
		t.Fatal(err)
	}
	proxy.SetLatency(2 * time.Second)

	for range 2 { // the caller's own deadline passes first: not the server's fault
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := patient.Get(cctx, "k")
		cancel()
		if err == nil || errors.Is(err, remote.ErrBreakerOpen) {
			t.Fatalf("Get under a caller deadline = %v; want a timeout", err)
		}
	}
	patient.expectNone(t)
	if remote.BreakerOpen(patient.Store, proxy.Addr()) {
		t.Fatal("the caller's own deadlines opened the breaker")
	}

	for i := range 2 { // the store's Timeout passes: the server is too slow
		if _, err := hasty.Get(ctx, "k"); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
			t.Fatalf("Get #%d on a slow server = %v; want a timeout", i, err)
		}
	}
	n := hasty.expect(t, proxy.Addr(), true)
	t.Logf("opened by: %v", n.err)
	if _, err := hasty.Get(ctx, "k"); !errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("Get while open = %v; want ErrBreakerOpen", err)
	}

	proxy.SetLatency(0)
	proxy.Heal()
	// Probe until one succeeds: a new connection through the proxy may
	// still miss the 100ms on a loaded machine, and a failed probe only
	// opens the breaker again.
	for i := 0; ; i++ {
		hasty.cool(time.Second)
		_, err := hasty.Get(ctx, "k")
		if err == nil {
			break
		}
		if i == 20 {
			t.Fatalf("20 probes after Heal failed; last: %v", err)
		}
		hasty.expectNone(t)
	}
	hasty.expect(t, proxy.Addr(), false)
}

// fakeCluster is a ClusterClient over two standalone servers, a and b, each
// owning half of the slots (so no MOVED ever comes), and keys of each.
type fakeCluster struct {
	rdb        *redis.ClusterClient
	a, b       *miniredis.Miniredis
	epA, epB   string   // their endpoint names (go-redis's addresses of the nodes)
	aKey, bKey []string // local keys whose master is a, b
}

func newFakeCluster(t *testing.T, ns string) *fakeCluster {
	fc := &fakeCluster{a: miniredis.RunT(t), b: miniredis.RunT(t)}
	// The addresses are read once: a failed call makes the store reload the
	// layout in the background, which may run after the servers stopped.
	addrA, addrB := fc.a.Addr(), fc.b.Addr()
	fc.rdb = redis.NewClusterClient(&redis.ClusterOptions{
		ContextTimeoutEnabled: true, MaxRetries: -1, MaxRedirects: -1,
		ClusterSlots: func(context.Context) ([]redis.ClusterSlot, error) {
			return []redis.ClusterSlot{
				{Start: 0, End: 8191, Nodes: []redis.ClusterNode{{Addr: addrA}}},
				{Start: 8192, End: 16383, Nodes: []redis.ClusterNode{{Addr: addrB}}},
			}, nil
		},
	})
	t.Cleanup(func() { fc.rdb.Close() })
	ctx := context.Background()
	_, aPort, _ := strings.Cut(fc.a.Addr(), ":")
	for i := 0; len(fc.aKey) < 3 || len(fc.bKey) < 3; i++ {
		if i > 1000 {
			t.Fatalf("keys found on a: %d, on b: %d", len(fc.aKey), len(fc.bKey))
		}
		k := fmt.Sprintf("k%d", i)
		m, err := fc.rdb.MasterForKey(ctx, ns+":"+k)
		if err != nil {
			t.Fatal(err)
		}
		if ep := m.Options().Addr; strings.HasSuffix(ep, ":"+aPort) {
			fc.epA, fc.aKey = ep, append(fc.aKey, k)
		} else {
			fc.epB, fc.bKey = ep, append(fc.bKey, k)
		}
	}
	return fc
}

// TestBreakerPerClusterMaster: on a cluster each master has its breaker; a
// failing master opens its own, the other keeps serving; a pipeline over
// both charges each master with its own keys only, and is refused whole,
// touching neither, while one is open.
func TestBreakerPerClusterMaster(t *testing.T) {
	fc := newFakeCluster(t, "ns")
	bs := newBreakerStore(t, fc.rdb, remote.Options{Namespace: "ns", BreakerFailures: 2, BreakerCooldown: time.Second})
	ctx := context.Background()
	mixed := []string{fc.aKey[0], fc.bKey[0], fc.aKey[1]}
	if _, err := bs.GetMany(ctx, mixed); err != nil {
		t.Fatal(err)
	}
	fc.b.SetError(loading)
	for range 2 {
		if _, err := bs.GetMany(ctx, mixed); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
			t.Fatalf("GetMany with b failing = %v; want b's error", err)
		}
	}
	bs.expect(t, fc.epB, true)
	bs.expectNone(t) // a answered every time: not charged with b's failures
	if remote.BreakerOpen(bs.Store, fc.epA) {
		t.Fatal("a's breaker opened on b's failures")
	}

	aSent, bSent := fc.a.CommandCount(), fc.b.CommandCount()
	if _, err := bs.GetMany(ctx, mixed); !errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("GetMany over an open master = %v; want ErrBreakerOpen", err)
	}
	if _, err := bs.Get(ctx, fc.bKey[1]); !errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("Get on b while open = %v; want ErrBreakerOpen", err)
	}
	if fc.a.CommandCount() != aSent || fc.b.CommandCount() != bSent {
		t.Fatal("a refused call reached a server")
	}
	// a serves on its own.
	if err := bs.Set(ctx, fc.aKey[2], value("va", time.Minute), time.Minute); err != nil {
		t.Fatalf("Set on a while b is open: %v", err)
	}
	if recs, err := bs.GetMany(ctx, fc.aKey); err != nil || recs[2].Kind != remote.KindValue {
		t.Fatalf("GetMany on a while b is open = %v, %v", recs, err)
	}
	// A scan runs on every master: b's refusal is reported, a is scanned.
	if _, err := bs.DeletePattern(ctx, "k*"); !errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("DeletePattern with b open = %v; want ErrBreakerOpen", err)
	}
	if r, _ := bs.Get(ctx, fc.aKey[2]); r.Kind != remote.KindMiss {
		t.Fatalf("a's key after DeletePattern: %v; want removed", r.Kind)
	}

	fc.b.SetError("")
	bs.cool(time.Second)
	if _, err := bs.GetMany(ctx, mixed); err != nil { // the probe of b
		t.Fatalf("GetMany after b recovered = %v", err)
	}
	bs.expect(t, fc.epB, false)
}

// TestBreakerManyGoroutines: concurrent calls while a server dies and comes
// back; run under -race. Every call either reaches the server or is refused
// with ErrBreakerOpen, and the notices alternate open, close.
func TestBreakerManyGoroutines(t *testing.T) {
	m := miniredis.RunT(t)
	bs := newBreakerStore(t, miniClient(t, m), remote.Options{BreakerFailures: 3})
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() { close(stop); wg.Wait() }()
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = bs.Get(ctx, "k")
				bs.cool(time.Millisecond)
			}
		})
	}
	recv := func() notice {
		select {
		case n := <-bs.notices:
			return n
		case <-time.After(10 * time.Second): // a hang guard, not a synchronization
			t.Fatal("no OnBreaker call within 10s")
		}
		return notice{}
	}
	for range 3 {
		m.SetError(loading)
		n := recv()
		m.SetError("")
		c := recv()
		if !n.open || c.open {
			t.Errorf("notices %+v, %+v; want open then close", n, c)
		}
	}
}
