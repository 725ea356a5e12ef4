package httpcache_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// TestGaveUpAtLoadTimeoutNotCached: a handler that returns when its
// context ends (the load's LoadTimeout), writing nothing, is no response:
// its request gets a 504, nothing is cached, and the next request runs the
// handler again. With StaleIfError, the refill that gives up serves the
// stale response instead of replacing it.
func TestGaveUpAtLoadTimeoutNotCached(t *testing.T) {
	t.Run("fresh", func(t *testing.T) {
		rdb, _ := newMiniClient(t)
		n := newNode(t, tiered.Options{Redis: rdb, LoadTimeout: 50 * time.Millisecond})
		var slow atomic.Bool
		slow.Store(true)
		n.handle(t, "GET /p/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slow.Load() {
				<-r.Context().Done() // gives up: writes nothing
				return
			}
			fmt.Fprint(w, "full body")
		}), httpcache.Options{Prefix: "p", ID: "id"})
		if w := n.do("GET", "/p/1", nil); w.Code != http.StatusGatewayTimeout {
			t.Fatalf("a run that gave up at LoadTimeout answered %d %q; want 504", w.Code, w.Body)
		}
		slow.Store(false)
		if w := n.do("GET", "/p/1", nil); w.Header().Get("X-Cache") != "MISS" || w.Body.String() != "full body" {
			t.Fatalf("the next GET: %q %q; want a MISS with the full body (nothing cached before)", w.Header().Get("X-Cache"), w.Body)
		}
	})
	t.Run("stale", func(t *testing.T) {
		rdb, _ := newMiniClient(t)
		n := newNode(t, tiered.Options{Redis: rdb, LoadTimeout: 50 * time.Millisecond})
		var slow atomic.Bool
		n.handle(t, "GET /p/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slow.Load() {
				<-r.Context().Done()
				return
			}
			fmt.Fprint(w, "full body")
		}), httpcache.Options{Prefix: "p", ID: "id", TTL: 30 * time.Millisecond, StaleIfError: time.Hour})
		n.do("GET", "/p/1", nil)
		slow.Store(true)
		if w := pastL1(t, n, "/p/1"); w.Header().Get("X-Cache") != "STALE" || w.Body.String() != "full body" {
			t.Fatalf("a refill that gave up at LoadTimeout: %q %q; want STALE with the old body", w.Header().Get("X-Cache"), w.Body)
		}
	})
}

// TestRequestNoStore: a request with Cache-Control: no-store bypasses the
// cache (RFC 9111 5.2.1.5: nothing of it or its response is stored); a
// request's no-cache is not honoured (any client could otherwise make
// every request a load of the database), as docs/http.md says.
func TestRequestNoStore(t *testing.T) {
	n := newNode(t, tiered.Options{})
	var calls atomic.Int64
	n.handle(t, "GET /p/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "call %d", calls.Add(1))
	}), httpcache.Options{Prefix: "p", ID: "id"})
	if w := n.do("GET", "/p/1", withHeader("Cache-Control", "max-age=0, No-Store")); w.Header().Get("X-Cache") != "BYPASS" {
		t.Fatalf("a no-store request: X-Cache %q; want BYPASS", w.Header().Get("X-Cache"))
	}
	if w := n.do("GET", "/p/1", nil); w.Header().Get("X-Cache") != "MISS" || w.Body.String() != "call 2" {
		t.Fatalf("the GET after a no-store request: %q %q; want a MISS (nothing stored)", w.Header().Get("X-Cache"), w.Body)
	}
	n.cache.WaitL1()
	if w := n.do("GET", "/p/1", withHeader("Cache-Control", "no-cache")); w.Header().Get("X-Cache") != "HIT-L1" || w.Body.String() != "call 2" {
		t.Fatalf("a no-cache request: %q %q; want the cached response", w.Header().Get("X-Cache"), w.Body)
	}
}

// TestPanicDuringFillIsTheRequestsOwn: a handler that panics while filling
// (http.ErrAbortHandler, as httputil.ReverseProxy does) panics its own
// request with that very value, so that net/http recognises the abort;
// the requests that waited for it run the handler themselves instead of
// panicking with another request's panic.
func TestPanicDuringFillIsTheRequestsOwn(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	n.handle(t, "GET /p/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(started)
			<-release
			panic(http.ErrAbortHandler)
		}
		fmt.Fprint(w, "ok")
	}), httpcache.Options{Prefix: "p", ID: "id"})
	const count = 4
	type outcome struct {
		panicked any
		body     string
	}
	out := make(chan outcome, count)
	for range count {
		go func() {
			w := httptest.NewRecorder()
			defer func() { out <- outcome{recover(), w.Body.String()} }()
			n.mux.ServeHTTP(w, httptest.NewRequest("GET", "/p/1", nil))
		}()
	}
	<-started
	waitFor(t, func() bool { return n.cache.Stats().Collapsed == count-1 })
	close(release)
	aborted, served := 0, 0
	for range count {
		o := <-out
		switch {
		case o.panicked == http.ErrAbortHandler:
			aborted++
		case o.panicked == nil && o.body == "ok":
			served++
		default:
			t.Errorf("a request panicked with %T %v (body %q); want http.ErrAbortHandler for the filler's, none for the others", o.panicked, o.panicked, o.body)
		}
	}
	if aborted != 1 || served != count-1 {
		t.Fatalf("%d requests aborted, %d served; want the filler's aborted and the %d others served", aborted, served, count-1)
	}
}

// TestStatusHeadersKept: a route that caches statuses besides 200 keeps
// the headers they need: a 405's Allow, a 503's Retry-After, a 401's
// WWW-Authenticate.
func TestStatusHeadersKept(t *testing.T) {
	n := newNode(t, tiered.Options{})
	answers := map[string]struct {
		status       int
		header, want string
	}{
		"1": {http.StatusMethodNotAllowed, "Allow", "GET"},
		"2": {http.StatusServiceUnavailable, "Retry-After", "120"},
		"3": {http.StatusUnauthorized, "Www-Authenticate", `Basic realm="x"`},
	}
	n.handle(t, "GET /p/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.PathValue("id")]
		w.Header().Set(a.header, a.want)
		w.WriteHeader(a.status)
	}), httpcache.Options{Prefix: "p", ID: "id", Statuses: []int{200, 401, 405, 503}})
	for id, a := range answers {
		n.do("GET", "/p/"+id, nil)
		n.cache.WaitL1()
		w := n.do("GET", "/p/"+id, nil)
		if w.Header().Get("X-Cache") != "HIT-L1" || w.Code != a.status || w.Header().Get(a.header) != a.want {
			t.Errorf("a cached %d: X-Cache %q, status %d, %s %q; want a hit with %q", a.status, w.Header().Get("X-Cache"), w.Code, a.header, w.Header().Get(a.header), a.want)
		}
	}
}

// TestPanicAfterRequestLeftIsLogged: a fill goes on when its request stops
// waiting (its client left); a panic of the handler after that reaches no
// request, and is logged with its stack instead of vanishing.
func TestPanicAfterRequestLeftIsLogged(t *testing.T) {
	var logs syncBuffer
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	mw, err := httpcache.New(n.cache, httpcache.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	n.mw = mw
	started, release := make(chan struct{}), make(chan struct{})
	n.handle(t, "GET /p/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		panic("handler bug")
	}), httpcache.Options{Prefix: "p", ID: "id"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		n.mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/p/1", nil).WithContext(ctx))
	}()
	<-started
	cancel()
	if p := <-done; p != nil {
		t.Fatalf("the request that left panicked with %v", p)
	}
	close(release)
	n.cache.Close() // waits for the run, which has logged by then
	if s := logs.String(); !strings.Contains(s, "handler bug") || !strings.Contains(s, "goroutine") {
		t.Fatalf("the handler's panic after its request left was not logged with its stack: %q", s)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
