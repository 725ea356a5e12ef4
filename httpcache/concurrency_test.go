package httpcache_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// burst sends n concurrent GETs of target to n's mux, once first is
// closed by the handler's first call and every other request has joined
// its load, releases it, and returns the responses.
func burst(t *testing.T, n *node, target string, count int, started, release chan struct{}) []*httptest.ResponseRecorder {
	t.Helper()
	out := make([]*httptest.ResponseRecorder, count)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := httptest.NewRecorder()
			n.mux.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
			out[i] = w
		}()
	}
	<-started
	waitFor(t, func() bool { return n.cache.Stats().Collapsed == uint64(count-1) })
	close(release)
	wg.Wait()
	return out
}

func TestConcurrentMissesRunHandlerOnce(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	var calls atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	n.handle(t, "GET /posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		fmt.Fprintf(w, "post %s", r.PathValue("id"))
	}), postOpts)
	httpcache.SetClock(n.mw, newClock().now)
	const count = 8
	aged := 0
	for i, w := range burst(t, n, "/posts/1", count, started, release) {
		if w.Code != 200 || w.Body.String() != "post 1" || w.Header().Get("X-Cache") != "MISS" {
			t.Fatalf("response %d = %d %q X-Cache %q; want 200 \"post 1\" MISS", i, w.Code, w.Body, w.Header().Get("X-Cache"))
		}
		if age, ok := w.Header()["Age"]; ok {
			if len(age) != 1 || age[0] != "0" {
				t.Fatalf("response %d: Age %q; want 0", i, age)
			}
			aged++
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d concurrent misses ran the handler %d times; want once", count, calls.Load())
	}
	// The request whose run filled the cache gets the handler's response;
	// the others, served the entry it stored, say its Age.
	if aged != count-1 {
		t.Fatalf("%d of %d responses carry Age; want all but the one that ran the handler", aged, count)
	}
}

// TestUncacheableWaitersRunHandlerThemselves: when the response of the run
// that concurrent misses waited for turns out uncacheable (it sets a
// cookie), each waiter runs the handler itself and gets its own response,
// never the cookie of another request.
func TestUncacheableWaitersRunHandlerThemselves(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	var calls atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	n.handle(t, "GET /posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := calls.Add(1)
		if call == 1 {
			close(started)
			<-release
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: fmt.Sprint(call)})
		fmt.Fprintf(w, "call %d", call)
	}), postOpts)
	const count = 5
	var bodies []string
	for _, w := range burst(t, n, "/posts/1", count, started, release) {
		cookie := w.Header().Get("Set-Cookie")
		if !strings.HasPrefix(cookie, "session=") || "call "+strings.TrimPrefix(cookie, "session=") != w.Body.String() {
			t.Fatalf("response %q came with cookie %q: another request's response", w.Body, cookie)
		}
		bodies = append(bodies, w.Body.String())
		if x := w.Header().Get("X-Cache"); x != "BYPASS" {
			t.Fatalf("response %q: X-Cache %q; want BYPASS (not stored)", w.Body, x)
		}
	}
	slices.Sort(bodies)
	if calls.Load() != count || len(slices.Compact(bodies)) != count {
		t.Fatalf("%d handler calls, bodies %v; want %d distinct runs", calls.Load(), bodies, count)
	}
}

// checkingWriter runs check when the response is about to leave.
type checkingWriter struct {
	http.ResponseWriter
	check func()
	once  sync.Once
}

func (w *checkingWriter) WriteHeader(code int) {
	w.once.Do(w.check)
	w.ResponseWriter.WriteHeader(code)
}

func (w *checkingWriter) Write(b []byte) (int, error) {
	w.once.Do(w.check)
	return w.ResponseWriter.Write(b)
}

// TestInvalidationBeforeResponse: when the client gets the response of a
// write, the cached GET is gone from Redis and the other nodes were told.
func TestInvalidationBeforeResponse(t *testing.T) {
	rdb, m := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "body") })
	n.handle(t, "/posts/{id}", h, postOpts)
	n.do("GET", "/posts/1", nil)
	if !m.Exists("web:post:1") {
		t.Fatal("GET did not fill Redis")
	}
	sent := n.cache.Stats().InvalidationsSent
	checked := false
	w := &checkingWriter{ResponseWriter: httptest.NewRecorder(), check: func() {
		checked = true
		if m.Exists("web:post:1") || n.cache.Stats().InvalidationsSent != sent+1 {
			t.Error("the write's response left before its invalidation reached Redis and the bus")
		}
	}}
	n.mux.ServeHTTP(w, httptest.NewRequest("PUT", "/posts/1", nil))
	if !checked {
		t.Fatal("the write sent no response")
	}
}

func TestWritePanicInvalidates(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprint("SkipInvalidateOn5xx=", skip), func(t *testing.T) {
			rdb, m := newMiniClient(t)
			n := newNode(t, tiered.Options{Redis: rdb})
			n.handle(t, "GET /posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "v1") }), postOpts)
			n.handle(t, "PUT /posts/{id}", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("after commit") }),
				httpcache.Options{Prefix: "post", ID: "id", SkipInvalidateOn5xx: skip})
			n.do("GET", "/posts/1", nil)
			func() {
				defer func() {
					if recover() != "after commit" {
						t.Error("the handler's panic did not reach the server")
					}
				}()
				n.do("PUT", "/posts/1", nil)
			}()
			if m.Exists("web:post:1") == !skip {
				t.Fatalf("after a panicking write, cached GET in Redis: %v; want %v", m.Exists("web:post:1"), skip)
			}
		})
	}
}

// TestRedisDown: with Redis unreachable, reads are served by the handler,
// and a write answers with the handler's status while its invalidation is
// counted and retried in the background, reaching Redis once it is back.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	direct := srv.Client(t)
	// The cut refuses connections at once: a long RedisTimeout costs
	// nothing there, and keeps the first GET from timing out under load.
	n := newNode(t, tiered.Options{Redis: rdb, RedisTimeout: 10 * time.Second})
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "call %d", calls.Add(1)) })
	n.handle(t, "/posts/{id}", h, postOpts)
	if w := n.do("GET", "/posts/1", nil); w.Header().Get("X-Cache") != "MISS" || direct.Exists(t.Context(), "web:post:1").Val() != 1 {
		t.Fatal("GET did not fill Redis")
	}

	proxy.Cut()
	for i := range 3 {
		w := n.do("GET", "/posts/2", nil)
		if w.Code != 200 || !strings.HasPrefix(w.Body.String(), "call ") {
			t.Fatalf("GET %d with Redis down = %d %q; want the handler's 200", i, w.Code, w.Body)
		}
	}
	w := n.do("PUT", "/posts/1", nil)
	if w.Code != 200 {
		t.Fatalf("PUT with Redis down = %d; want the handler's 200", w.Code)
	}
	if s := n.mw.Stats(); s.InvalidationErrors != 1 || n.cache.PendingInvalidations() == 0 {
		t.Fatalf("InvalidationErrors = %d, pending %d; want 1 and a retry queued", s.InvalidationErrors, n.cache.PendingInvalidations())
	}
	if direct.Exists(t.Context(), "web:post:1").Val() != 1 {
		t.Fatal("the key left Redis while Redis was unreachable: the cut did not hold")
	}

	proxy.Heal()
	waitFor(t, func() bool { return n.cache.PendingInvalidations() == 0 })
	if direct.Exists(t.Context(), "web:post:1").Val() != 0 {
		t.Fatal("the retried invalidation did not remove the key")
	}
}

// TestHitHeadersAreCopies: a hit's header values are the response's own;
// a later middleware that edits them in place does not change the cached
// entry that other requests share.
func TestHitHeadersAreCopies(t *testing.T) {
	n := newNode(t, tiered.Options{})
	n.handle(t, "GET /posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "body")
	}), postOpts)
	n.do("GET", "/posts/1", nil)
	w := n.do("GET", "/posts/1", nil)
	if w.Header().Get("X-Cache") != "HIT-L1" {
		t.Fatal("no hit")
	}
	w.Header()["Content-Type"][0] = "text/evil"
	if w2 := n.do("GET", "/posts/1", nil); w2.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("Content-Type of the next hit = %q; an edit of a response changed the cache", w2.Header().Get("Content-Type"))
	}
}
