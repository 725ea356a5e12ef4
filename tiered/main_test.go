package tiered_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	// A go-redis pool whose dial failed (a killed cluster node) retries on
	// a goroutine that notices Close only after its one-second sleep.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// User is the value type of the tests.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// newMini returns a client on a fresh miniredis.
func newMini(t testing.TB) (*redis.Client, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb, m
}

// newReal returns a client on a fresh real redis-server.
func newReal(t testing.TB) *redis.Client {
	t.Helper()
	return redistest.Start(t).Client(t)
}

// startRedis starts a real redis-server.
func startRedis(t testing.TB) *redistest.Server { return redistest.Start(t) }

// startServer starts a real redis-server and returns its address.
func startServer(t testing.TB) string { return redistest.Start(t).Addr() }

// newProxy puts a fault-injecting proxy in front of addr.
func newProxy(t testing.TB, addr string) *redistest.Proxy { return redistest.NewProxy(t, addr) }

// newCache returns a Cache closed at cleanup.
func newCache(t testing.TB, o tiered.Options) *tiered.Cache {
	t.Helper()
	c, err := tiered.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
	defer cancel()
	if err := c.WaitBus(ctx); err != nil {
		t.Fatalf("WaitBus: %v", err)
	}
	return c
}

func newGroup[V any](t testing.TB, c *tiered.Cache, name string, o tiered.GroupOptions) *tiered.Group[V] {
	t.Helper()
	g, err := tiered.NewGroup[V](c, name, o)
	if err != nil {
		t.Fatalf("NewGroup(%q): %v", name, err)
	}
	return g
}

// userLoader is a loader that counts its calls in calls.
func userLoader(calls *atomic.Int64) tiered.LoaderFunc[User] {
	return func(_ context.Context, id string) (User, error) {
		calls.Add(1)
		return User{ID: id, Name: "user " + id}, nil
	}
}

// manualClock is an L1 clock (local.Clock) that moves only when told.
type manualClock struct{ now atomic.Int64 }

func newManualClock(t time.Time) *manualClock {
	c := &manualClock{}
	c.now.Store(t.UnixNano())
	return c
}

func (c *manualClock) Now() int64          { return c.now.Load() }
func (c *manualClock) Add(d time.Duration) { c.now.Add(int64(d)) }
func (c *manualClock) Set(t time.Time)     { c.now.Store(t.UnixNano()) }
