// Package metricstest runs one scripted workload against a real
// redis-server, for the tests of the metric adapters: each adapter records
// the workload and checks that its metrics say exactly what the workload
// did (the numbers are in [Workload.Run]'s documentation).
package metricstest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/memsize"
	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/tiered"
)

// User is the value type of the group "user".
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// L1MaxBytes is the L1 capacity of the recorded cache. Its fixed
// structures take half of it; the value "big" (600,000 bytes) never fits in
// the other half, so its fill is rejected.
const L1MaxBytes = 1 << 20

// Workload is a recorded cache A and another node B on one real
// redis-server. A reaches Redis through a proxy, so that its bus can be
// cut; B does not.
type Workload struct {
	A      *tiered.Cache
	Users  *tiered.Group[User]   // A's group "user"
	Posts  *tiered.Group[string] // A's group "post"
	B      *tiered.Cache
	BUsers *tiered.Group[User]
	proxy  *redistest.Proxy
	direct *redis.Client // straight to the server
	events chan tiered.Event
}

// Start starts the server, the proxy and both caches; rec receives A's
// events. It skips the test without redis-server (see redistest.Binary).
// Everything is closed when the test ends.
func Start(t *testing.T, rec tiered.Recorder) *Workload {
	t.Helper()
	srv := redistest.Start(t)
	w := &Workload{proxy: redistest.NewProxy(t, srv.Addr()), events: make(chan tiered.Event, 64)}
	w.direct = srv.Client(t)
	rdbA := redis.NewClient(&redis.Options{Addr: w.proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdbA.Close() })
	// A heartbeat of an hour: nothing on the bus but what the script does
	// (the loss is detected at once, from the cut connection). A long
	// RedisTimeout: on a loaded machine a slow call must not count as a
	// Redis error the script did not drive (the cut refuses at once).
	w.A = newCache(t, tiered.Options{
		Redis: rdbA, Namespace: "m", L1MaxBytes: L1MaxBytes, Heartbeat: time.Hour, RedisTimeout: 10 * time.Second,
		Recorder: tiered.RecorderFunc(func(e tiered.Event) {
			rec.Record(e)
			switch e.Kind { // the events Run waits for
			case tiered.EventCollapsed, tiered.EventInvalidationReceived, tiered.EventBusLost, tiered.EventBusRestored:
				w.events <- e
			}
		}),
	})
	w.expect(t, tiered.EventBusRestored)
	w.Users = newGroup[User](t, w.A, "user")
	w.Posts = newGroup[string](t, w.A, "post")
	w.B = newCache(t, tiered.Options{Redis: w.direct, Namespace: "m", Heartbeat: time.Hour, RedisTimeout: 10 * time.Second})
	w.BUsers = newGroup[User](t, w.B, "user")
	return w
}

func newCache(t *testing.T, o tiered.Options) *tiered.Cache {
	t.Helper()
	c, err := tiered.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func newGroup[V any](t *testing.T, c *tiered.Cache, name string) *tiered.Group[V] {
	t.Helper()
	g, err := tiered.NewGroup[V](c, name, tiered.GroupOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// expect waits for A's next awaited event and fails unless it is of kind
// want.
func (w *Workload) expect(t *testing.T, want tiered.EventKind) tiered.Event {
	t.Helper()
	select {
	case e := <-w.events:
		if e.Kind != want {
			t.Fatalf("event %v; want %v", e.Kind, want)
		}
		return e
	case <-time.After(10 * time.Second): // a hang guard, not a synchronization
		t.Fatalf("no %v within 10s", want)
	}
	return tiered.Event{}
}

func loadUser(_ context.Context, id string) (User, error) {
	if id == "big" {
		return User{ID: id, Name: strings.Repeat("x", 600_000)}, nil
	}
	return User{ID: id, Name: "user " + id}, nil
}

func loadPost(_ context.Context, id string) (string, error) {
	if id == "err" {
		return "", errors.New("no such post")
	}
	return "post " + id, nil
}

// Run plays the script on A. duringCut runs while A's bus is lost. The
// script, and what it leaves in A's metrics:
//
//	user: Fetch 1, 2, 3 (misses: loaded, leases won), Fetch 1, 2 (L1 hits);
//	      B sets 4 (A receives 1 invalidation), Fetch 4 (L2 hit);
//	      "bad" holds bytes that are no envelope: Fetch bad (a decode error,
//	      then a load); Fetch big (loaded, its L1 fill rejected)
//	      → L1 hits 2, L1 misses 6, L2 hits 1, L2 misses 5, loads 5,
//	        leases won 5, decode errors 1
//	post: 2 concurrent Fetches of p (1 load, 1 collapsed), Fetch err (the
//	      loader fails), during the cut Fetch cut (Redis error, loaded)
//	      → L1 misses 4, L2 misses 2, loads 3, load errors 1, collapsed 1,
//	        leases won 2, Redis errors 1
//	cache: Delete user 1 and the pattern "user:2*" (2 invalidations sent,
//	      1 pattern, 2 L1 entries removed); the bus is cut and healed (1
//	      loss, 1 reconnect, downtime > 0; 3 flushes with the one at
//	      start-up)
//	L1:   8 fills (1, 2, 3, p, 4, bad, big, cut), 1 rejected (big);
//	      5 entries left (3, p, 4, bad, cut), Bytes their charges (see Bytes)
func (w *Workload) Run(t *testing.T, duringCut func()) {
	t.Helper()
	ctx := context.Background()
	w.fetchUsers(t, "1", "2", "3")
	w.A.WaitL1()
	w.fetchUsers(t, "1", "2")
	w.collapse(t)
	if _, err := w.Posts.Fetch(ctx, "err", loadPost); err == nil {
		t.Fatal("Fetch(err) returned no error")
	}
	if err := w.BUsers.Set(ctx, "4", User{ID: "4", Name: "from B"}); err != nil {
		t.Fatal(err)
	}
	w.expect(t, tiered.EventInvalidationReceived)
	if err := w.direct.Set(ctx, "m:"+w.Users.Key("bad"), "not an envelope", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	w.fetchUsers(t, "4", "bad", "big")
	w.A.WaitL1()
	if err := w.Users.Invalidate(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if err := w.A.InvalidatePattern(ctx, "user:2*"); err != nil {
		t.Fatal(err)
	}
	w.proxy.Cut()
	w.expect(t, tiered.EventBusLost)
	if _, err := w.Posts.Fetch(ctx, "cut", loadPost); err != nil {
		t.Fatal(err)
	}
	w.A.WaitL1()
	duringCut()
	w.proxy.Heal()
	w.expect(t, tiered.EventBusRestored)
	w.A.WaitL1()
}

func (w *Workload) fetchUsers(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := w.Users.Fetch(context.Background(), id, loadUser); err != nil {
			t.Fatalf("Fetch(%q): %v", id, err)
		}
	}
}

// collapse fetches post p twice at once: the second Fetch joins the first's
// load, which is held until it has.
func (w *Workload) collapse(t *testing.T) {
	t.Helper()
	entered, release := make(chan struct{}), make(chan struct{})
	held := func(ctx context.Context, id string) (string, error) {
		close(entered)
		<-release
		return loadPost(ctx, id)
	}
	errs := make(chan error, 2)
	fetch := func() {
		_, err := w.Posts.Fetch(context.Background(), "p", held)
		errs <- err
	}
	go fetch()
	<-entered
	go fetch()
	w.expect(t, tiered.EventCollapsed)
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Bytes returns the L1 bytes the script leaves: the half of L1MaxBytes its
// fixed structures take, and the charges of the entries of user 3, 4 and
// bad, and of post p and cut (each its value's size, its key and its
// entry; see tiered.Options.L1MaxBytes).
func Bytes() int64 {
	l1, err := local.New[any](local.Options{MaxCost: L1MaxBytes, ChargeMemory: true})
	if err != nil {
		panic(err)
	}
	defer l1.Close()
	n := min(local.FixedBytes(local.Options{MaxCost: L1MaxBytes}), L1MaxBytes/2)
	add := func(key string, v any) {
		data, _ := json.Marshal(v)
		n += max(memsize.Value(v, len(data)), 1) + l1.EntryBytes(key)
	}
	for _, id := range []string{"3", "bad"} {
		add("user:"+id, User{ID: id, Name: "user " + id})
	}
	add("user:4", User{ID: "4", Name: "from B"})
	add("post:p", "post p")
	add("post:cut", "post cut")
	return n
}
