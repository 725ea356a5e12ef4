package httpcache_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// pastL1 requests target until the response no longer comes from the cache
// (its TTL passed on the cache's clock, which this package cannot
// replace), and returns that first response: the refill's. A hang guard ends the
// wait; no slack is allowed on the clock.
func pastL1(t *testing.T, n *node, target string) *httptest.ResponseRecorder {
	t.Helper()
	guard := time.Now().Add(10 * time.Second)
	for {
		w := n.do("GET", target, nil)
		if x := w.Header().Get("X-Cache"); x != "HIT-L1" && x != "HIT-L2" {
			return w
		}
		if time.Now().After(guard) {
			t.Fatal("the response never expired")
		}
		<-time.After(time.Millisecond)
	}
}

// TestStaleIfError: an expired response whose refill answers 500 is served
// stale (X-Cache: STALE, the old body), and the handler is not run again
// while the throttle holds; a 404 refill is not replaced by the stale copy;
// without StaleIfError the 500 reaches the client.
func TestStaleIfError(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[on], func(t *testing.T) {
			rdb, _ := newMiniClient(t)
			n := newNode(t, tiered.Options{Redis: rdb})
			var status atomic.Int64
			var calls atomic.Int64
			status.Store(http.StatusOK)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(int(status.Load()))
				_, _ = w.Write([]byte("body " + r.PathValue("id")))
			})
			o := httpcache.Options{Prefix: "p", ID: "id", TTL: 30 * time.Millisecond}
			if on {
				o.StaleIfError = time.Hour
			}
			n.handle(t, "GET /p/{id}", h, o)
			if w := n.do("GET", "/p/1", nil); w.Code != 200 || w.Header().Get("X-Cache") != "MISS" {
				t.Fatalf("first: %d %s", w.Code, w.Header().Get("X-Cache"))
			}
			n.cache.WaitL1()
			status.Store(http.StatusInternalServerError)
			w := pastL1(t, n, "/p/1")
			if !on {
				if w.Code != 500 {
					t.Fatalf("without StaleIfError: %d; want the handler's 500", w.Code)
				}
				return
			}
			if w.Code != 200 || w.Header().Get("X-Cache") != "STALE" || w.Body.String() != "body 1" {
				t.Fatalf("refill answered 500: %d %q %q; want 200 STALE with the old body", w.Code, w.Header().Get("X-Cache"), w.Body.String())
			}
			n.cache.WaitL1()
			before := calls.Load()
			if w := n.do("GET", "/p/1", nil); w.Code != 200 || w.Body.String() != "body 1" || w.Header().Get("X-Cache") != "STALE" || calls.Load() != before {
				t.Fatalf("within the throttle: %d %s %q, handler ran %d times; want 200 STALE with the old body, no run", w.Code, w.Header().Get("X-Cache"), w.Body.String(), calls.Load()-before)
			}
			// A 404 refill of another expired response reaches the client.
			status.Store(http.StatusOK)
			n.do("GET", "/p/2", nil)
			n.cache.WaitL1()
			status.Store(http.StatusNotFound)
			if w := pastL1(t, n, "/p/2"); w.Code != 404 {
				t.Fatalf("refill answered 404: %d %q; want the 404", w.Code, w.Header().Get("X-Cache"))
			}
		})
	}
}

// TestRevalidateTimeout: a slow refill of an expired response (the handler
// blocks until the test lets it go) does not hold the request back past
// RevalidateTimeout: the stale response is served, then the handler's new
// response fills the cache in the background.
func TestRevalidateTimeout(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	var body atomic.Value
	body.Store("v1")
	var gate atomic.Pointer[chan struct{}]
	entered, done := make(chan struct{}, 8), make(chan struct{}, 8)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g := gate.Load(); g != nil {
			entered <- struct{}{}
			<-*g
			defer func() { done <- struct{}{} }()
		}
		_, _ = w.Write([]byte(body.Load().(string)))
	})
	n.handle(t, "GET /r/{id}", h, httpcache.Options{Prefix: "r", ID: "id", TTL: 30 * time.Millisecond, StaleIfError: time.Hour, RevalidateTimeout: time.Millisecond})
	n.do("GET", "/r/1", nil)
	n.cache.WaitL1()
	release := make(chan struct{})
	gate.Store(&release)
	body.Store("v2")
	w := pastL1(t, n, "/r/1") // returns while the handler is blocked
	if w.Header().Get("X-Cache") != "STALE" || w.Body.String() != "v1" {
		t.Fatalf("slow refill: %q %q; want STALE v1", w.Header().Get("X-Cache"), w.Body.String())
	}
	// The stale response may come back before the refill's handler even
	// started: wait until it is behind the gate before taking the gate away.
	<-entered
	gate.Store(nil)
	close(release)
	<-done
	deadline := time.Now().Add(10 * time.Second) // hang guard: the fill lands just after the handler returns
	for {
		n.cache.WaitL1()
		w := n.do("GET", "/r/1", nil)
		if w.Body.String() == "v2" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background refill never landed: %q %q", w.Header().Get("X-Cache"), w.Body.String())
		}
	}
}
