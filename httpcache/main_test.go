package httpcache_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	goleak.VerifyTestMain(m)
}

// node is one process of a test fleet: a cache, a middleware and a mux.
type node struct {
	cache *tiered.Cache
	mw    *httpcache.Middleware
	mux   *http.ServeMux
}

func newMiniClient(t testing.TB) (*redis.Client, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb, m
}

func newNode(t testing.TB, o tiered.Options) *node {
	t.Helper()
	if o.Namespace == "" {
		o.Namespace = "web"
	}
	if o.Redis != nil && o.RedisTimeout == 0 {
		// These tests check what is cached where, not how fast: under a
		// full load on 2 cores a Redis call can take past the 250ms
		// default, and the middleware would rightly serve a MISS.
		o.RedisTimeout = 10 * time.Second
	}
	c, err := tiered.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	mw, err := httpcache.New(c, httpcache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &node{cache: c, mw: mw, mux: http.NewServeMux()}
}

func (n *node) handle(t testing.TB, pattern string, h http.Handler, o httpcache.Options) {
	t.Helper()
	if err := n.mw.Handle(n.mux, pattern, h, o); err != nil {
		t.Fatalf("Handle(%q): %v", pattern, err)
	}
}

// do serves one request and waits for the L1 fills it made.
func (n *node) do(method, target string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	n.mux.ServeHTTP(w, r)
	n.cache.WaitL1()
	return w
}

// waitFor waits until cond holds, failing the test after 10s: a wait for
// an event the test cannot be told of directly, never a verdict on timing.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
