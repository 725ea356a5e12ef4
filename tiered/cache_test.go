package tiered_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

func TestNewValidatesOptions(t *testing.T) {
	rdb, _ := newMini(t)
	for _, tc := range []struct {
		name    string
		opts    tiered.Options
		wantErr string
	}{
		{"zero", tiered.Options{}, ""},
		{"redis", tiered.Options{Redis: rdb, Namespace: "shop"}, ""},
		{"bad namespace", tiered.Options{Namespace: "a b"}, "namespace"},
		{"no tier", tiered.Options{DisableL1: true}, "no tier"},
		{"negative TTL", tiered.Options{TTL: -time.Second}, "negative TTL"},
		{"negative L1TTL", tiered.Options{L1TTL: -1}, "negative L1TTL"},
		{"negative LoadTimeout", tiered.Options{LoadTimeout: -1}, "negative LoadTimeout"},
		{"negative RedisTimeout", tiered.Options{RedisTimeout: -1}, "negative RedisTimeout"},
		{"negative size", tiered.Options{L1MaxBytes: -1}, "L1MaxBytes"},
		{"jitter 1", tiered.Options{Jitter: 1}, "Jitter"},
		{"jitter negative", tiered.Options{Jitter: -0.1}, "Jitter"},
		{"negative LeaseTTL", tiered.Options{LeaseTTL: -1}, "negative LeaseTTL"},
		{"LeaseTTL too short", tiered.Options{LeaseTTL: tiered.MinLeaseTTL - 1}, "below the minimum"},
		{"LeaseTTL minimum", tiered.Options{LeaseTTL: tiered.MinLeaseTTL}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tiered.New(tc.opts)
			if c != nil {
				defer c.Close()
			}
			if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New() error = %v; want containing %q", err, tc.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "tiered: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestNewGroupValidates(t *testing.T) {
	c := newCache(t, tiered.Options{})
	if _, err := tiered.NewGroup[User](c, "", tiered.GroupOptions{}); err == nil {
		t.Error("NewGroup(empty name) succeeded")
	}
	if _, err := tiered.NewGroup[User](c, "u", tiered.GroupOptions{TTL: -1}); err == nil {
		t.Error("NewGroup(negative TTL) succeeded")
	}
	newGroup[User](t, c, "u", tiered.GroupOptions{})
	if _, err := tiered.NewGroup[string](c, "u", tiered.GroupOptions{}); err == nil {
		t.Error("NewGroup(duplicate name) succeeded")
	}
}

func TestKeysAreInjective(t *testing.T) {
	c := newCache(t, tiered.Options{})
	a := newGroup[string](t, c, "a", tiered.GroupOptions{})
	ab := newGroup[string](t, c, "a:b", tiered.GroupOptions{})
	pct := newGroup[string](t, c, "a%3Ab", tiered.GroupOptions{})
	keys := map[string]string{
		a.Key("b:c"):   "a + b:c",
		ab.Key("c"):    "a:b + c",
		pct.Key("c"):   "a%3Ab + c",
		a.Key("b%3Ac"): "a + b%3Ac",
	}
	if len(keys) != 4 {
		t.Fatalf("distinct (name, id) pairs share a key: %v", keys)
	}
	if got := ab.Key("c"); got != "a%3Ab:c" {
		t.Errorf(`Key of ("a:b", "c") = %q; want "a%%3Ab:c"`, got)
	}
	ctx := context.Background()
	load := func(v string) tiered.LoaderFunc[string] {
		return func(context.Context, string) (string, error) { return v, nil }
	}
	if v, _ := a.Fetch(ctx, "b:c", load("A")); v != "A" {
		t.Fatalf("a.Fetch = %q", v)
	}
	if v, _ := ab.Fetch(ctx, "c", load("AB")); v != "AB" {
		t.Fatalf("ab.Fetch = %q; the groups share an entry", v)
	}
}

func TestFetchL1Only(t *testing.T) {
	c := newCache(t, tiered.Options{})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	var calls atomic.Int64
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		u, err := g.Fetch(ctx, "42", userLoader(&calls))
		if err != nil || u.Name != "user 42" {
			t.Fatalf("Fetch = %+v, %v", u, err)
		}
		c.WaitL1()
	}
	if calls.Load() != 1 {
		t.Fatalf("loader calls = %d; want 1", calls.Load())
	}
	if s := g.Stats(); s.L1Hits != 2 || s.L1Misses != 1 || s.Loads != 1 {
		t.Fatalf("Stats = %+v; want 2 L1 hits, 1 miss, 1 load", s)
	}
}

func TestFetchSharesL2AcrossNodes(t *testing.T) {
	rdb, _ := newMini(t)
	ctx := context.Background()
	var calls atomic.Int64
	n1 := newGroup[User](t, newCache(t, tiered.Options{Redis: rdb}), "user", tiered.GroupOptions{})
	n2 := newGroup[User](t, newCache(t, tiered.Options{Redis: rdb}), "user", tiered.GroupOptions{})
	if _, err := n1.Fetch(ctx, "7", userLoader(&calls)); err != nil {
		t.Fatal(err)
	}
	u, err := n2.Fetch(ctx, "7", userLoader(&calls))
	if err != nil || u.Name != "user 7" {
		t.Fatalf("node 2 Fetch = %+v, %v", u, err)
	}
	if calls.Load() != 1 {
		t.Fatalf("loader calls = %d; want 1 (node 2 reads L2)", calls.Load())
	}
	if s := n2.Stats(); s.L2Hits != 1 || s.Loads != 0 {
		t.Fatalf("node 2 Stats = %+v; want 1 L2 hit, no load", s)
	}
	if s := n1.Stats(); s.LeasesWon != 1 || s.L2Misses != 1 {
		t.Fatalf("node 1 Stats = %+v; want 1 lease won, 1 L2 miss", s)
	}
}

func TestGetSetDelete(t *testing.T) {
	rdb, m := newMini(t)
	ctx := context.Background()
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "app"})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{TTL: time.Hour})
	if _, err := g.Get(ctx, "1"); !errors.Is(err, tiered.ErrNotCached) {
		t.Fatalf("Get(missing) error = %v; want ErrNotCached", err)
	}
	if err := g.Set(ctx, "1", User{ID: "1", Name: "Ann"}); err != nil {
		t.Fatal(err)
	}
	if !m.Exists("app:user:1") {
		t.Fatal("Set did not write app:user:1 to Redis")
	}
	c.WaitL1()
	if u, err := g.Get(ctx, "1"); err != nil || u.Name != "Ann" {
		t.Fatalf("Get = %+v, %v", u, err)
	}
	other := newGroup[User](t, newCache(t, tiered.Options{Redis: rdb, Namespace: "app"}), "user", tiered.GroupOptions{})
	if u, err := other.Get(ctx, "1"); err != nil || u.Name != "Ann" {
		t.Fatalf("other node Get = %+v, %v", u, err)
	}
	if err := g.Invalidate(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if m.Exists("app:user:1") {
		t.Fatal("Invalidate left the key in Redis")
	}
	if _, err := g.Get(ctx, "1"); !errors.Is(err, tiered.ErrNotCached) {
		t.Fatalf("Get after Invalidate error = %v; want ErrNotCached", err)
	}
}

func TestEmptyIDAndNilLoader(t *testing.T) {
	c := newCache(t, tiered.Options{})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	ctx := context.Background()
	var calls atomic.Int64
	if _, err := g.Fetch(ctx, "", userLoader(&calls)); err == nil {
		t.Error("Fetch(empty id) succeeded")
	}
	if _, err := g.Fetch(ctx, "1", nil); err == nil {
		t.Error("Fetch(nil loader) succeeded")
	}
	if err := g.Set(ctx, "", User{}); err == nil {
		t.Error("Set(empty id) succeeded")
	}
	if err := g.Invalidate(ctx, "a", ""); err == nil {
		t.Error("Delete(empty id) succeeded")
	}
	if _, err := g.FetchMany(ctx, []string{"a", ""}, nil); err == nil {
		t.Error("FetchMany(empty id) succeeded")
	}
}

func TestDecodeErrorIsRemovedAndReloaded(t *testing.T) {
	rdb, m := newMini(t)
	ctx := context.Background()
	// No bus: the writer's messages would land during the reader's loads
	// and rightly stop their fills, which the end of the test checks.
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "app", DisableBus: true})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	writer := newGroup[string](t, newCache(t, tiered.Options{Redis: rdb, Namespace: "app", DisableBus: true}), "user", tiered.GroupOptions{})
	if err := writer.Set(ctx, "1", "not a user object"); err != nil { // a JSON string where an object is expected
		t.Fatal(err)
	}
	m.Set("app:user:2", "no envelope at all")
	var calls atomic.Int64
	for _, id := range []string{"1", "2"} {
		u, err := g.Fetch(ctx, id, userLoader(&calls))
		if err != nil || u.Name != "user "+id {
			t.Fatalf("Fetch(%q) = %+v, %v; want a fresh load", id, u, err)
		}
	}
	if s := g.Stats(); s.DecodeErrors != 2 || s.Loads != 2 || s.LeasesWon != 2 {
		t.Fatalf("Stats = %+v; want 2 decode errors, 2 loads, 2 leases", s)
	}
	// FetchMany: the removed keys are taken once more and filled.
	if err := writer.Set(ctx, "3", "not a user object"); err != nil {
		t.Fatal(err)
	}
	m.Set("app:user:4", "no envelope at all")
	got, err := g.FetchMany(ctx, []string{"3", "4"}, func(_ context.Context, ids []string) (map[string]User, error) {
		out := make(map[string]User)
		for _, id := range ids {
			out[id] = User{ID: id, Name: "user " + id}
		}
		return out, nil
	})
	if err != nil || got["3"].Name != "user 3" || got["4"].Name != "user 4" {
		t.Fatalf("FetchMany = %+v, %v; want fresh loads", got, err)
	}
	if s := g.Stats(); s.DecodeErrors != 4 || s.Loads != 3 || s.LeasesWon != 4 {
		t.Fatalf("Stats = %+v; want 4 decode errors, 3 loads, 4 leases", s)
	}
	for _, id := range []string{"1", "2", "3", "4"} {
		if !strings.Contains(mustMini(t, m, "app:user:"+id), "user "+id) {
			t.Fatalf("Redis does not hold the reloaded value of %s", id)
		}
	}
}

// mustMini returns what miniredis holds under key.
func mustMini(t *testing.T, m *miniredis.Miniredis, key string) string {
	t.Helper()
	v, err := m.Get(key)
	if err != nil {
		t.Fatalf("miniredis %s: %v", key, err)
	}
	return v
}

func TestLoaderErrorIsNotCached(t *testing.T) {
	rdb, m := newMini(t)
	ctx := context.Background()
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "app"})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	boom := errors.New("db down")
	_, err := g.Fetch(ctx, "1", func(context.Context, string) (User, error) { return User{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Fetch error = %v; want %v", err, boom)
	}
	if m.Exists("app:user:1") {
		t.Fatal("the lease was not released after a loader error")
	}
	var calls atomic.Int64
	if _, err := g.Fetch(ctx, "1", userLoader(&calls)); err != nil || calls.Load() != 1 {
		t.Fatalf("second Fetch = %v with %d loads; want a fresh load", err, calls.Load())
	}
	if s := g.Stats(); s.LoadErrors != 1 || s.Loads != 2 {
		t.Fatalf("Stats = %+v; want 1 load error of 2 loads", s)
	}
}

func TestCancelledWaiterReturnsAtOnce(t *testing.T) {
	rdb, _ := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	started, release := make(chan struct{}), make(chan struct{})
	load := func(ctx context.Context, id string) (User, error) {
		close(started)
		<-release
		return User{ID: id}, ctx.Err() // the loader's ctx is not the caller's: nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.Fetch(ctx, "1", load)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Fetch error = %v; want context.Canceled", err)
	}
	close(release)
	var calls atomic.Int64
	u, err := g.Fetch(context.Background(), "1", userLoader(&calls))
	if err != nil || u.ID != "1" {
		t.Fatalf("Fetch after the load = %+v, %v", u, err)
	}
	if calls.Load() != 0 {
		t.Fatal("the abandoned load did not complete and fill the cache")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	rdb, _ := newMini(t)
	c, err := tiered.New(tiered.Options{Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.Fetch(context.Background(), "1", func(ctx context.Context, id string) (User, error) {
			close(started)
			<-ctx.Done() // Close cancels the loader
			return User{}, ctx.Err()
		})
	}()
	<-started
	c.Close()
	c.Close()
	wg.Wait()
	var calls atomic.Int64
	if _, err := g.Fetch(context.Background(), "2", userLoader(&calls)); !errors.Is(err, tiered.ErrClosed) {
		t.Fatalf("Fetch after Close error = %v; want ErrClosed", err)
	}
	if err := g.Set(context.Background(), "2", User{}); !errors.Is(err, tiered.ErrClosed) {
		t.Fatalf("Set after Close error = %v; want ErrClosed", err)
	}
}

func TestRedisDownFallsBackToLoader(t *testing.T) {
	rdb, m := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb, RedisTimeout: 100 * time.Millisecond})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	m.Close()
	var calls atomic.Int64
	u, err := g.Fetch(context.Background(), "1", userLoader(&calls))
	if err != nil || u.Name != "user 1" {
		t.Fatalf("Fetch with Redis down = %+v, %v; want the loader's value", u, err)
	}
	if s := g.Stats(); s.RedisErrors == 0 {
		t.Fatalf("Stats = %+v; want the Redis error counted", s)
	}
	if err := g.Set(context.Background(), "1", User{}); err == nil {
		t.Fatal("Set with Redis down returned no error")
	}
}

func TestRecorderSeesEvents(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	rec := tiered.RecorderFunc(func(e tiered.Event) {
		mu.Lock()
		seen[e.Group+"/"+e.Kind.String()+"/"+e.Tier.String()]++
		mu.Unlock()
	})
	c := newCache(t, tiered.Options{Recorder: rec})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	var calls atomic.Int64
	g.Fetch(context.Background(), "1", userLoader(&calls))
	c.WaitL1()
	g.Fetch(context.Background(), "1", userLoader(&calls))
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"user/miss/l1", "user/load/unknown", "user/hit/l1"} {
		if seen[want] != 1 {
			t.Errorf("events[%q] = %d; want 1 (all: %v)", want, seen[want], seen)
		}
	}
}

func TestNewWarnsWithoutContextTimeouts(t *testing.T) {
	_, m := newMini(t)
	for _, enabled := range []bool{false, true} {
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: enabled})
		var buf bytes.Buffer
		c := newCache(t, tiered.Options{Redis: rdb, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		c.Close()
		rdb.Close()
		if warned := strings.Contains(buf.String(), "ContextTimeoutEnabled"); warned == enabled {
			t.Errorf("ContextTimeoutEnabled=%v: warned = %v", enabled, warned)
		}
	}
}

// TestRedisFailuresLogSparingly: during an outage every miss fails, but the
// log gets at most one line per second, each saying how many failures it
// stands for.
func TestRedisFailuresLogSparingly(t *testing.T) {
	rdb, m := newMini(t)
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "quiet", DisableBus: true, Logger: logger})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	m.SetError("LOADING Redis is loading the dataset in memory")
	start := time.Now()
	var calls atomic.Int64
	for i := range 50 {
		if _, err := g.Fetch(context.Background(), fmt.Sprint(i), userLoader(&calls)); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	mu.Lock()
	lines := strings.Count(buf.String(), "redis call failed")
	mu.Unlock()
	if fails := c.Stats().RedisErrors; fails < 50 {
		t.Fatalf("RedisErrors = %d; want at least 50", fails)
	}
	if lines < 1 || lines > 1+int(elapsed/time.Second) {
		t.Fatalf("%d log lines for 50 failures in %v; want one per second at most", lines, elapsed)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestLoaderSeesCallerValues: a load runs on a context of its own (Close
// cancels it, its callers do not), which still carries the values of the
// context of the caller that started it, for Fetch and FetchMany.
func TestLoaderSeesCallerValues(t *testing.T) {
	rdb, _ := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb})
	g := newGroup[User](t, c, "user", tiered.GroupOptions{})
	type key struct{}
	var seen []any
	var mu sync.Mutex
	note := func(ctx context.Context) {
		mu.Lock()
		seen = append(seen, ctx.Value(key{}))
		mu.Unlock()
	}
	load := func(ctx context.Context, id string) (User, error) {
		note(ctx)
		return User{ID: id}, nil
	}
	many := func(ctx context.Context, ids []string) (map[string]User, error) {
		note(ctx)
		out := make(map[string]User, len(ids))
		for _, id := range ids {
			out[id] = User{ID: id}
		}
		return out, nil
	}
	plain := context.WithValue(context.Background(), key{}, "plain")
	cctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "cancellable"))
	defer cancel()
	if _, err := g.Fetch(plain, "1", load); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Fetch(cctx, "2", load); err != nil {
		t.Fatal(err)
	}
	if _, err := g.FetchMany(cctx, []string{"3", "4"}, many); err != nil {
		t.Fatal(err)
	}
	want := []any{"plain", "cancellable", "cancellable"}
	if !slices.Equal(seen, want) {
		t.Fatalf("the loaders saw the values %v; want %v", seen, want)
	}
}
