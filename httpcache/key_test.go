package httpcache_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// TestKeyCoversTheMatchedPath: a route whose match depends on more of the
// path than its ID (another wildcard, a subtree) keeps one response per
// path, and the writes of its resource remove all of them.
func TestKeyCoversTheMatchedPath(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	var calls atomic.Int64
	path := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, r.URL.Path)
	})
	n.handle(t, "GET /users/{uid}/posts/{pid}", path, httpcache.Options{Prefix: "user_post", ID: "pid"})
	n.handle(t, "PUT /posts/{pid}", path, httpcache.Options{ExtraKeys: map[string]string{"user_post": "{pid}"}})
	n.handle(t, "GET /files/{id}/", path, httpcache.Options{Prefix: "file", ID: "id"})
	n.handle(t, "DELETE /files/{id}/", path, httpcache.Options{Prefix: "file", ID: "id"})
	n.handle(t, "GET /by/{id...}", path, httpcache.Options{Prefix: "by", ID: "id"})

	for _, step := range []struct {
		method, target, xcache string
	}{
		{"GET", "/users/1/posts/5", "MISS"},
		{"GET", "/users/2/posts/5", "MISS"},
		{"GET", "/users/1/posts/5", "HIT-L1"},
		{"GET", "/users/2/posts/5", "HIT-L1"},
		{"GET", "/users/2/posts/6", "MISS"},
		{"PUT", "/posts/5", ""},
		{"GET", "/users/1/posts/5", "MISS"},
		{"GET", "/users/2/posts/5", "MISS"},
		{"GET", "/users/2/posts/6", "HIT-L1"},

		{"GET", "/files/5/a.txt", "MISS"},
		{"GET", "/files/5/b.txt", "MISS"},
		{"GET", "/files/5/", "MISS"},
		{"GET", "/files/5/a.txt", "HIT-L1"},
		{"GET", "/files/6/a.txt", "MISS"},
		{"DELETE", "/files/5/x", ""},
		{"GET", "/files/5/a.txt", "MISS"},
		{"GET", "/files/5/b.txt", "MISS"},
		{"GET", "/files/6/a.txt", "HIT-L1"},

		{"GET", "/by/a/b", "MISS"}, // the id holds the rest of the path
		{"GET", "/by/a/c", "MISS"},
		{"GET", "/by/a/b", "HIT-L1"},
	} {
		w := n.do(step.method, step.target, nil)
		if got := w.Header().Get("X-Cache"); got != step.xcache || step.method == "GET" && w.Body.String() != step.target {
			t.Fatalf("%s %s = %s %q; want %s %q", step.method, step.target, got, w.Body, step.xcache, step.target)
		}
	}

	// Warm fills the entry a request of the route's own path reads.
	if err := n.mw.Warm(context.Background(), "file", []string{"7"}, httpcache.WarmOptions{}); err != nil {
		t.Fatal(err)
	}
	n.cache.WaitL1()
	before := calls.Load()
	if w := n.do("GET", "/files/7/", nil); w.Header().Get("X-Cache") != "HIT-L1" || calls.Load() != before {
		t.Fatalf("GET /files/7/ after Warm = %s after %d more calls; want HIT-L1", w.Header().Get("X-Cache"), calls.Load()-before)
	}
}

// TestKeyByHost: a pattern without a host matches every host, and its
// responses are shared by them unless VaryHeaders names Host.
func TestKeyByHost(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	host := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Host")
		fmt.Fprint(w, r.Host)
	})
	n.handle(t, "GET /site/{id}", host, httpcache.Options{Prefix: "site", ID: "id", VaryHeaders: []string{"host"}})
	n.handle(t, "PUT /site/{id}", host, httpcache.Options{Prefix: "site", ID: "id"})
	get := func(h, xcache string) {
		t.Helper()
		r := httptest.NewRequest("GET", "/site/1", nil)
		r.Host = h
		w := httptest.NewRecorder()
		n.mux.ServeHTTP(w, r)
		n.cache.WaitL1()
		if w.Header().Get("X-Cache") != xcache || w.Body.String() != h {
			t.Fatalf("GET /site/1 on %s = %s %q; want %s %q", h, w.Header().Get("X-Cache"), w.Body, xcache, h)
		}
	}
	get("a.example", "MISS")
	get("b.example", "MISS")
	get("a.example", "HIT-L1")
	get("b.example", "HIT-L1")
	n.do("PUT", "/site/1", nil)
	get("a.example", "MISS")
	get("b.example", "MISS")
	if err := n.mw.Warm(context.Background(), "site", []string{"1"}, httpcache.WarmOptions{}); err == nil {
		t.Fatal("Warm of a route keyed by Host succeeded; want an error (its requests all carry a Host)")
	}
}
