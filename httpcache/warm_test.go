package httpcache_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

func TestWarm(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	var calls atomic.Int64
	n.handle(t, "GET /posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.PathValue("id") == "404" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "post %s at %s", r.PathValue("id"), r.URL.Path)
	}), httpcache.Options{Prefix: "post", ID: "id", Query: []string{"page"}})
	var last tiered.WarmProgress
	err := n.mw.Warm(context.Background(), "post", []string{"1", "2", "a|b/c", "404", "1"}, httpcache.WarmOptions{
		BatchSize: 2, Progress: func(p tiered.WarmProgress) { last = p },
	})
	var we *tiered.WarmError
	if !errors.As(err, &we) || fmt.Sprint(we.Failed) != "[404]" {
		t.Fatalf("Warm = %v; want id 404 failed (not cacheable)", err)
	}
	if last != (tiered.WarmProgress{Done: 4, Total: 4, Failed: 1}) || calls.Load() != 4 {
		t.Fatalf("last progress %+v after %d handler calls; want 4 of 4 done, 1 failed, 4 calls", last, calls.Load())
	}
	n.cache.WaitL1()
	for target, body := range map[string]string{"/posts/1": "post 1 at /posts/1", "/posts/2": "post 2 at /posts/2", "/posts/a%7Cb%2Fc": "post a|b/c at /posts/a|b/c"} {
		w := n.do("GET", target, nil)
		if w.Header().Get("X-Cache") != "HIT-L1" || w.Body.String() != body {
			t.Errorf("GET %s after Warm = %s %q; want HIT-L1 %q", target, w.Header().Get("X-Cache"), w.Body, body)
		}
	}
	if w := n.do("GET", "/posts/404", nil); w.Header().Get("X-Cache") != "BYPASS" || calls.Load() != 5 {
		t.Errorf("GET of the failed id: X-Cache %s after %d calls; want BYPASS (a 404 is not kept)", w.Header().Get("X-Cache"), calls.Load())
	}
	if err := n.mw.Warm(context.Background(), "post", []string{"1"}, httpcache.WarmOptions{}); err != nil || calls.Load() != 5 {
		t.Fatalf("second Warm = %v after %d calls; want nothing run", err, calls.Load())
	}

	n.handle(t, "GET /users/{uid}/posts/{pid}", http.NotFoundHandler(), httpcache.Options{Prefix: "user_post", ID: "pid"})
	n.handle(t, "GET /me/{id}", http.NotFoundHandler(), httpcache.Options{Prefix: "me", ID: "id",
		Caller: func(*http.Request) (string, bool) { return "x", true }})
	for _, prefix := range []string{"nope", "user_post", "me"} {
		if err := n.mw.Warm(context.Background(), prefix, []string{"1"}, httpcache.WarmOptions{}); err == nil || !strings.HasPrefix(err.Error(), "httpcache: ") {
			t.Errorf("Warm(%q) = %v; want an httpcache error", prefix, err)
		}
	}
}

// TestWarmLosesToAWrite: a PUT that lands while warming runs the handler
// for its resource wins; the warmed response of the old data is not kept.
func TestWarmLosesToAWrite(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	var mu sync.Mutex
	title := "old"
	read, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	n.handle(t, "/posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" {
			mu.Lock()
			title = "new"
			mu.Unlock()
			return
		}
		mu.Lock()
		v := title
		mu.Unlock()
		once.Do(func() { close(read); <-release }) // the warming run blocks after reading
		fmt.Fprint(w, v)
	}), postOpts)
	done := make(chan error)
	go func() { done <- n.mw.Warm(context.Background(), "post", []string{"7"}, httpcache.WarmOptions{}) }()
	<-read
	n.do("PUT", "/posts/7", nil)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w := n.do("GET", "/posts/7", nil); w.Body.String() != "new" {
		t.Fatalf("GET after a write during warming = %s %q; want new", w.Header().Get("X-Cache"), w.Body)
	}
}
