package httpcache_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// TestRouteTags: the profile and the posts of a user, cached by two routes
// that both tag their responses "user:{user_id}", are invalidated on both
// nodes by one write to the user (InvalidateTags), and only that user's;
// a value with the escape character cannot reach another user's tag.
func TestRouteTags(t *testing.T) {
	if changed := routeTags(t, true); len(changed) != 0 {
		t.Fatalf("%q", changed)
	}
	// The switch: a write without InvalidateTags leaves user 7's responses,
	// which the check must see.
	if changed := routeTags(t, false); len(changed) == 0 {
		t.Fatal("without InvalidateTags the old responses should stay; the test cannot see it")
	}
}

// routeTags runs the scenario and returns what is not as a working
// InvalidateTags leaves it.
func routeTags(t *testing.T, invalidate bool) (wrong []string) {
	rdb, _ := newMiniClient(t)
	nodes := []*node{newNode(t, tiered.Options{Redis: rdb}), newNode(t, tiered.Options{Redis: rdb})}
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { echo(w, r, calls.Add(1)) })
	for _, n := range nodes {
		n.handle(t, "GET /users/{user_id}/profile", h, httpcache.Options{Prefix: "profile", ID: "user_id", Tags: []string{"user:{user_id}"}})
		n.handle(t, "GET /users/{user_id}/posts", h, httpcache.Options{Prefix: "posts", ID: "user_id", Tags: []string{"user:{user_id}", "feed"}})
		w := httpcache.Options{InvalidateTags: []string{"user:{user_id}"}}
		if !invalidate {
			w = httpcache.Options{Prefix: "user", ID: "user_id"}
		}
		n.handle(t, "PUT /users/{user_id}", h, w)
	}
	body := func(n *node, target string) string { return n.do("GET", target, nil).Body.String() }
	targets := []string{"/users/7/profile", "/users/7/posts", "/users/8/profile", "/users/7%7C8/profile"}
	before := map[string]string{}
	for _, n := range nodes {
		for _, tg := range targets {
			before[tg] = body(n, tg)
		}
	}
	if calls.Load() != int64(len(targets)) {
		t.Fatalf("%d handler calls for %d targets on two nodes; want one each", calls.Load(), len(targets))
	}
	if w := nodes[0].do("PUT", "/users/7", nil); w.Code != http.StatusOK {
		t.Fatalf("PUT = %d", w.Code)
	}
	waitApplied(t, nodes[0], nodes[1])
	for i, n := range nodes {
		for _, tg := range targets {
			changed := body(n, tg) != before[tg]
			if want := strings.HasPrefix(tg, "/users/7/"); changed != want {
				wrong = append(wrong, fmt.Sprintf("node %d: %s after PUT /users/7: new response %v; want %v", i, tg, changed, want))
			}
		}
	}
	return wrong
}

// TestRouteTagsRefused: tag templates are checked at registration.
func TestRouteTagsRefused(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	h := http.NotFoundHandler()
	for _, tc := range []struct {
		pattern string
		opts    httpcache.Options
	}{
		{"GET /a/{id}", httpcache.Options{Prefix: "a", ID: "id", Tags: []string{"x:{nope}"}}},
		{"GET /b/{id}", httpcache.Options{Prefix: "b", ID: "id", Tags: []string{""}}},
		{"GET /c/{id}", httpcache.Options{Prefix: "c", ID: "id", InvalidateTags: []string{"x"}}},
		{"PUT /d/{id}", httpcache.Options{Tags: []string{"x"}}},
		{"PUT /e/{id}", httpcache.Options{InvalidateTags: []string{"x:{nope}"}}},
	} {
		if err := n.mw.Handle(n.mux, tc.pattern, h, tc.opts); err == nil {
			t.Errorf("Handle(%q, %+v) accepted", tc.pattern, tc.opts)
		}
	}
}

// TestWarmedResponsesAreTagged: a response stored by Middleware.Warm
// carries its route's tags, so a write's InvalidateTags removes it.
func TestWarmedResponsesAreTagged(t *testing.T) {
	rdb, _ := newMiniClient(t)
	n := newNode(t, tiered.Options{Redis: rdb})
	var version atomic.Int64
	n.handle(t, "GET /users/{user_id}/profile", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "v%d", version.Load())
	}), httpcache.Options{Prefix: "profile", ID: "user_id", Tags: []string{"user:{user_id}"}})
	n.handle(t, "PUT /users/{user_id}", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { version.Add(1) }),
		httpcache.Options{InvalidateTags: []string{"user:{user_id}"}})
	if err := n.mw.Warm(context.Background(), "profile", []string{"7"}, httpcache.WarmOptions{}); err != nil {
		t.Fatal(err)
	}
	n.cache.WaitL1()
	if w := n.do("GET", "/users/7/profile", nil); w.Header().Get("X-Cache") != "HIT-L1" || w.Body.String() != "v0" {
		t.Fatalf("GET after Warm = %s %q; want HIT-L1 v0", w.Header().Get("X-Cache"), w.Body)
	}
	n.do("PUT", "/users/7", nil)
	if w := n.do("GET", "/users/7/profile", nil); w.Header().Get("X-Cache") != "MISS" || w.Body.String() != "v1" {
		t.Fatalf("GET after the PUT = %s %q; want MISS v1", w.Header().Get("X-Cache"), w.Body)
	}
}
