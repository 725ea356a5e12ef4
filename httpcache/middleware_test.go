package httpcache_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// step is one request of a table case and what must come back.
type step struct {
	node      int // which of the two nodes serves it
	method    string
	target    string
	header    http.Header
	status    int    // default 200
	xcache    string // "" for no X-Cache header
	calls     int64  // handler calls so far, all nodes
	bodyHas   string // a substring the body must contain
	emptyBody bool
	respHdr   map[string]string // response headers that must have these values ("": absent)
}

// routeSpec is a route registered on both nodes.
type routeSpec struct {
	pattern string
	opts    httpcache.Options
	respond func(w http.ResponseWriter, r *http.Request) // before the echo body; may write the status
}

// echo writes what identifies the request, so a response served for
// another request shows.
func echo(w http.ResponseWriter, r *http.Request, call int64) {
	fmt.Fprintf(w, "%s path=%s q=%s auth=%s ae=%s call=%d",
		r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Accept-Encoding"), call)
}

func withHeader(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func setHeader(kv ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i < len(kv); i += 2 {
			w.Header().Add(kv[i], kv[i+1])
		}
	}
}

func status(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

var postOpts = httpcache.Options{Prefix: "post", ID: "id"}

func get(target string, xcache string, calls int64) step {
	return step{method: "GET", target: target, xcache: xcache, calls: calls}
}

func TestMiddlewareTable(t *testing.T) {
	caller := func(r *http.Request) (string, bool) { return r.Header.Get("Authorization"), true }
	for _, tc := range []struct {
		name   string
		routes []routeSpec
		steps  []step
	}{
		{"GET is cached in both tiers", []routeSpec{{"GET /posts/{id}", postOpts, nil}}, []step{
			get("/posts/1", "MISS", 1), get("/posts/1", "HIT-L1", 1),
			{node: 1, method: "GET", target: "/posts/1", xcache: "HIT-L2", calls: 1},
			{node: 1, method: "GET", target: "/posts/1", xcache: "HIT-L1", calls: 1},
			get("/posts/2", "MISS", 2),
		}},
		{"content headers are kept, others only when named", []routeSpec{
			{"GET /posts/{id}", postOpts, setHeader("Content-Type", "text/csv", "X-Total-Count", "5", "X-Trace", "t")},
			{"GET /lists/{id}", httpcache.Options{Prefix: "list", ID: "id", StoreHeaders: []string{"x-total-count"}}, setHeader("X-Total-Count", "5", "X-Trace", "t")}}, []step{
			{method: "GET", target: "/posts/1", xcache: "MISS", calls: 1, respHdr: map[string]string{"Content-Type": "text/csv", "X-Total-Count": "5", "X-Trace": "t"}},
			{method: "GET", target: "/posts/1", xcache: "HIT-L1", calls: 1, respHdr: map[string]string{"Content-Type": "text/csv", "X-Total-Count": "", "X-Trace": ""}},
			{method: "GET", target: "/lists/1", xcache: "MISS", calls: 2, respHdr: map[string]string{"X-Total-Count": "5", "X-Trace": "t"}},
			{method: "GET", target: "/lists/1", xcache: "HIT-L1", calls: 2, respHdr: map[string]string{"X-Total-Count": "5", "X-Trace": "", "Content-Type": "text/plain; charset=utf-8"}},
		}},
		{"404 is not cached by default", []routeSpec{{"GET /posts/{id}", postOpts, status(404)}}, []step{
			{method: "GET", target: "/posts/1", status: 404, xcache: "BYPASS", calls: 1},
			{method: "GET", target: "/posts/1", status: 404, xcache: "BYPASS", calls: 2},
		}},
		{"404 is cached when opted in", []routeSpec{{"GET /posts/{id}", httpcache.Options{Prefix: "post", ID: "id", Statuses: []int{200, 404}}, status(404)}}, []step{
			{method: "GET", target: "/posts/1", status: 404, xcache: "MISS", calls: 1},
			{method: "GET", target: "/posts/1", status: 404, xcache: "HIT-L1", calls: 1, bodyHas: "call=1"},
			{method: "HEAD", target: "/posts/1", status: 404, xcache: "HIT-L1", calls: 1, emptyBody: true},
		}},
		{"Set-Cookie is never cached", []routeSpec{{"GET /posts/{id}", postOpts, setHeader("Set-Cookie", "s=1")}}, []step{
			get("/posts/1", "BYPASS", 1), get("/posts/1", "BYPASS", 2),
		}},
		{"no-store", []routeSpec{{"GET /posts/{id}", postOpts, setHeader("Cache-Control", "max-age=0, no-store")}}, []step{
			{method: "GET", target: "/posts/1", xcache: "BYPASS", calls: 1, respHdr: map[string]string{"Cache-Control": "max-age=0, no-store", "Age": ""}},
			get("/posts/1", "BYPASS", 2),
		}},
		{"private", []routeSpec{{"GET /posts/{id}", postOpts, setHeader("Cache-Control", "Private")}}, []step{
			get("/posts/1", "BYPASS", 1), get("/posts/1", "BYPASS", 2),
		}},
		{"no-cache", []routeSpec{{"GET /posts/{id}", postOpts, setHeader("Cache-Control", "no-cache")}}, []step{
			get("/posts/1", "BYPASS", 1), get("/posts/1", "BYPASS", 2),
		}},
		{"too large", []routeSpec{{"GET /posts/{id}", httpcache.Options{Prefix: "post", ID: "id", MaxBodyBytes: 10}, nil}}, []step{
			get("/posts/1", "BYPASS", 1), get("/posts/1", "BYPASS", 2),
		}},
		{"public is cached, and sent as private, no-cache", []routeSpec{{"GET /posts/{id}", postOpts, setHeader("Cache-Control", "public, max-age=60")}}, []step{
			{method: "GET", target: "/posts/1", xcache: "MISS", calls: 1, respHdr: map[string]string{"Cache-Control": "private, no-cache", "Age": ""}},
			{method: "GET", target: "/posts/1", xcache: "HIT-L1", calls: 1, respHdr: map[string]string{"Cache-Control": "private, no-cache", "Age": "0"}},
			{node: 1, method: "GET", target: "/posts/1", xcache: "HIT-L2", calls: 1, respHdr: map[string]string{"Cache-Control": "private, no-cache", "Age": "0"}},
			{method: "HEAD", target: "/posts/1", xcache: "HIT-L1", calls: 1, emptyBody: true, respHdr: map[string]string{"Cache-Control": "private, no-cache", "Age": "0"}},
		}},
		{"no Cache-Control is cached, and sent as private, no-cache", []routeSpec{{"GET /posts/{id}", postOpts, nil}}, []step{
			{method: "GET", target: "/posts/1", xcache: "MISS", calls: 1, respHdr: map[string]string{"Cache-Control": "private, no-cache"}},
			{method: "GET", target: "/posts/1", xcache: "HIT-L1", calls: 1, respHdr: map[string]string{"Cache-Control": "private, no-cache"}},
		}},
		{"KeepCacheControl sends the handler's header", []routeSpec{{"GET /posts/{id}", httpcache.Options{Prefix: "post", ID: "id", KeepCacheControl: true},
			setHeader("Cache-Control", "public, max-age=60")}}, []step{
			{method: "GET", target: "/posts/1", xcache: "MISS", calls: 1, respHdr: map[string]string{"Cache-Control": "public, max-age=60"}},
			{method: "GET", target: "/posts/1", xcache: "HIT-L1", calls: 1, respHdr: map[string]string{"Cache-Control": "public, max-age=60", "Age": "0"}},
			{node: 1, method: "GET", target: "/posts/1", xcache: "HIT-L2", calls: 1, respHdr: map[string]string{"Cache-Control": "public, max-age=60"}},
		}},
		{"KeepCacheControl without a header sends none", []routeSpec{{"GET /posts/{id}", httpcache.Options{Prefix: "post", ID: "id", KeepCacheControl: true}, nil}}, []step{
			{method: "GET", target: "/posts/1", xcache: "MISS", calls: 1, respHdr: map[string]string{"Cache-Control": ""}},
			{method: "GET", target: "/posts/1", xcache: "HIT-L1", calls: 1, respHdr: map[string]string{"Cache-Control": ""}},
		}},
		{"Vary on a header the key lacks", []routeSpec{{"GET /posts/{id}", postOpts, setHeader("Vary", "Accept-Encoding", "Cache-Control", "public, max-age=60")}}, []step{
			{method: "GET", target: "/posts/1", xcache: "BYPASS", calls: 1, respHdr: map[string]string{"Vary": "Accept-Encoding", "Cache-Control": "public, max-age=60"}},
			get("/posts/1", "BYPASS", 2),
		}},
		{"Vary *", []routeSpec{{"GET /posts/{id}", httpcache.Options{Prefix: "post", ID: "id", VaryHeaders: []string{"accept-encoding"}}, setHeader("Vary", "*")}}, []step{
			get("/posts/1", "BYPASS", 1), get("/posts/1", "BYPASS", 2),
		}},
		{"Vary on a keyed header", []routeSpec{{"GET /posts/{id}", httpcache.Options{Prefix: "post", ID: "id", VaryHeaders: []string{"accept-encoding"}}, setHeader("Vary", "Accept-Encoding")}}, []step{
			{method: "GET", target: "/posts/1", header: withHeader("Accept-Encoding", "gzip"), xcache: "MISS", calls: 1, bodyHas: "ae=gzip"},
			{method: "GET", target: "/posts/1", header: withHeader("Accept-Encoding", "gzip"), xcache: "HIT-L1", calls: 1, bodyHas: "ae=gzip"},
			{method: "GET", target: "/posts/1", xcache: "MISS", calls: 2, bodyHas: "ae= "},
			{method: "GET", target: "/posts/1", header: withHeader("Accept-Encoding", "br"), xcache: "MISS", calls: 3, bodyHas: "ae=br"},
		}},
		{"Authorization and Cookie bypass", []routeSpec{{"GET /posts/{id}", postOpts, nil}}, []step{
			{method: "GET", target: "/posts/1", header: withHeader("Authorization", "Bearer a"), xcache: "BYPASS", calls: 1, respHdr: map[string]string{"Cache-Control": "", "Age": ""}},
			{method: "GET", target: "/posts/1", header: withHeader("Authorization", "Bearer a"), xcache: "BYPASS", calls: 2},
			{method: "GET", target: "/posts/1", header: withHeader("Cookie", "s=1"), xcache: "BYPASS", calls: 3},
			// the credentials on a second line, after an empty one, count too
			{method: "GET", target: "/posts/1", header: http.Header{"Cookie": {"", "s=1"}}, xcache: "BYPASS", calls: 4},
			{method: "GET", target: "/posts/1", header: http.Header{"Authorization": {"", "Bearer a"}}, xcache: "BYPASS", calls: 5},
			get("/posts/1", "MISS", 6),
		}},
		{"keyed by caller", []routeSpec{{"GET /me/{id}", httpcache.Options{Prefix: "me", ID: "id", Caller: caller}, setHeader("Vary", "Authorization")}}, []step{
			{method: "GET", target: "/me/1", header: withHeader("Authorization", "alice"), xcache: "MISS", calls: 1, bodyHas: "auth=alice"},
			{method: "GET", target: "/me/1", header: withHeader("Authorization", "alice"), xcache: "HIT-L1", calls: 1, bodyHas: "auth=alice"},
			{method: "GET", target: "/me/1", header: withHeader("Authorization", "bob"), xcache: "MISS", calls: 2, bodyHas: "auth=bob"},
			{method: "GET", target: "/me/1", header: withHeader("Authorization", "alice"), xcache: "HIT-L1", calls: 2, bodyHas: "auth=alice"},
		}},
		{"a query string bypasses an unkeyed route", []routeSpec{{"GET /posts/{id}", postOpts, nil}}, []step{
			get("/posts/1?page=2", "BYPASS", 1), get("/posts/1?page=2", "BYPASS", 2),
		}},
		{"keyed by named query parameters", []routeSpec{{"GET /users/{uid}/posts", httpcache.Options{Prefix: "user_posts", ID: "uid", Query: []string{"page"}}, nil}}, []step{
			get("/users/5/posts?page=1", "MISS", 1), get("/users/5/posts?page=1", "HIT-L1", 1),
			{method: "GET", target: "/users/5/posts?page=2", xcache: "MISS", calls: 2, bodyHas: "q=page=2"},
			get("/users/5/posts?page=1&utm=x", "BYPASS", 3), get("/users/5/posts", "MISS", 4),
		}},
		{"keyed by the whole query, canonically", []routeSpec{{"GET /search/{id}", httpcache.Options{Prefix: "s", ID: "id", Query: []string{"*"}}, nil}}, []step{
			get("/search/x?b=2&a=1", "MISS", 1), get("/search/x?a=1&b=2", "HIT-L1", 1), get("/search/x?a=1&b=3", "MISS", 2),
		}},
		{"HEAD never stores and is answered from a cached GET", []routeSpec{{"GET /posts/{id}", postOpts, setHeader("Content-Type", "text/plain", "Etag", `"v1"`)}}, []step{
			{method: "HEAD", target: "/posts/1", xcache: "MISS", calls: 1}, // the server drops the handler's body
			{method: "HEAD", target: "/posts/1", xcache: "MISS", calls: 2},
			get("/posts/1", "MISS", 3),
			{method: "HEAD", target: "/posts/1", xcache: "HIT-L1", calls: 3, emptyBody: true},
			{method: "GET", target: "/posts/1", header: withHeader("If-None-Match", `"v1"`), status: 304, xcache: "HIT-L1", calls: 3, emptyBody: true,
				respHdr: map[string]string{"Age": "0", "Cache-Control": "private, no-cache", "Etag": `"v1"`}},
		}},
		{"OPTIONS passes through", []routeSpec{{"/posts/{id}", postOpts, nil}}, []step{
			{method: "OPTIONS", target: "/posts/1", calls: 1}, {method: "OPTIONS", target: "/posts/1", calls: 2},
			get("/posts/1", "MISS", 3), {method: "OPTIONS", target: "/posts/1", calls: 4}, get("/posts/1", "HIT-L1", 4),
		}},
		{"writes invalidate on 2xx and 3xx", []routeSpec{{"/posts/{id}", postOpts, nil}}, []step{
			get("/posts/1", "MISS", 1), get("/posts/1", "HIT-L1", 1),
			{method: "PUT", target: "/posts/1", calls: 2}, get("/posts/1", "MISS", 3),
			{method: "PATCH", target: "/posts/1", calls: 4}, get("/posts/1", "MISS", 5),
			{method: "DELETE", target: "/posts/1", calls: 6}, get("/posts/1", "MISS", 7),
			{method: "POST", target: "/posts/1", calls: 8},
			{node: 1, method: "GET", target: "/posts/1", xcache: "MISS", calls: 9},
			get("/posts/1", "HIT-L2", 9), // filled by node 1, read from L2 and kept in L1 here
			get("/posts/1", "HIT-L1", 9),
		}},
		{"a 4xx write invalidates nothing", []routeSpec{{"GET /posts/{id}", postOpts, nil}, {"PUT /posts/{id}", postOpts, status(409)}}, []step{
			get("/posts/1", "MISS", 1), {method: "PUT", target: "/posts/1", status: 409, calls: 2}, get("/posts/1", "HIT-L1", 2),
		}},
		{"a 5xx write invalidates", []routeSpec{{"GET /posts/{id}", postOpts, nil}, {"PUT /posts/{id}", postOpts, status(503)}}, []step{
			get("/posts/1", "MISS", 1), {method: "PUT", target: "/posts/1", status: 503, calls: 2}, get("/posts/1", "MISS", 3),
		}},
		{"a 5xx write invalidates nothing when opted out", []routeSpec{{"GET /posts/{id}", postOpts, nil},
			{"PUT /posts/{id}", httpcache.Options{Prefix: "post", ID: "id", SkipInvalidateOn5xx: true}, status(500)}}, []step{
			get("/posts/1", "MISS", 1), {method: "PUT", target: "/posts/1", status: 500, calls: 2}, get("/posts/1", "HIT-L1", 2),
		}},
		{"ids never collide with variants", []routeSpec{{"GET /items/{id}", httpcache.Options{Prefix: "item", ID: "id", Query: []string{"*"}}, nil}}, []step{
			{method: "GET", target: "/items/a?q=1", xcache: "MISS", calls: 1, bodyHas: "path=/items/a q=q=1"},
			{method: "GET", target: "/items/a%7Cq=q%253D1", xcache: "MISS", calls: 2, bodyHas: "path=/items/a|q=q%3D1 q= "},
			{method: "GET", target: "/items/a%25", xcache: "MISS", calls: 3},
			{method: "GET", target: "/items/a%2525", xcache: "MISS", calls: 4},
			{method: "GET", target: "/items/a%7Cq=q%253D1", xcache: "HIT-L1", calls: 4, bodyHas: "path=/items/a|q=q%3D1 q= "},
		}},
		{"an id of * in a pattern touches one key", []routeSpec{
			{"GET /lists/{lid}", httpcache.Options{Prefix: "lists", ID: "lid"}, nil},
			{"PUT /users/{uid}", httpcache.Options{ExtraPatterns: []string{"lists:{uid}_*"}}, nil}}, []step{
			get("/lists/*_p1", "MISS", 1), get("/lists/5_p1", "MISS", 2), get("/lists/50_p1", "MISS", 3),
			{method: "PUT", target: "/users/*", calls: 4},
			get("/lists/*_p1", "MISS", 5), get("/lists/5_p1", "HIT-L1", 5), get("/lists/50_p1", "HIT-L1", 5),
			{method: "PUT", target: "/users/5", calls: 6},
			get("/lists/5_p1", "MISS", 7), get("/lists/50_p1", "HIT-L1", 7),
		}},
		{"literal extra keys and resource variants", []routeSpec{
			{"GET /recent", httpcache.Options{Prefix: "recent_posts", IDFunc: func(*http.Request) (string, bool) { return "global", true }}, nil},
			{"GET /users/{uid}/posts", httpcache.Options{Prefix: "user_posts", ID: "uid", Query: []string{"page"}}, nil},
			{"PUT /users/{uid}/posts/{pid}", httpcache.Options{ExtraKeys: map[string]string{"recent_posts": "global", "user_posts": "{uid}"}}, nil}}, []step{
			get("/recent", "MISS", 1), get("/users/5/posts?page=1", "MISS", 2), get("/users/5/posts?page=2", "MISS", 3),
			get("/users/5/posts", "MISS", 4), get("/users/50/posts?page=1", "MISS", 5),
			{method: "PUT", target: "/users/5/posts/9", calls: 6},
			get("/recent", "MISS", 7), get("/users/5/posts?page=1", "MISS", 8), get("/users/5/posts?page=2", "MISS", 9),
			get("/users/5/posts", "MISS", 10), get("/users/50/posts?page=1", "HIT-L1", 10),
		}},
		{"supplied values", []routeSpec{
			{"GET /cats/{cid}", httpcache.Options{Prefix: "cat", ID: "cid"}, nil},
			{"GET /users/{uid}/posts", httpcache.Options{Prefix: "user_posts", ID: "uid"}, nil},
			{"PUT /posts/{pid}", httpcache.Options{Supplied: []string{"owner", "category"},
				ExtraKeys: map[string]string{"cat": "{category}"}, ExtraPatterns: []string{"user_posts:{owner}"}},
				func(w http.ResponseWriter, r *http.Request) {
					if err := httpcache.SetValues(r, "owner", "7"); err != nil {
						panic(err)
					}
					if err := httpcache.SetValues(r, "category", "old", "new"); err != nil {
						panic(err)
					}
					if httpcache.SetValues(r, "undeclared", "x") == nil {
						panic("SetValues accepted an undeclared name")
					}
				}}}, []step{
			get("/cats/old", "MISS", 1), get("/cats/new", "MISS", 2), get("/cats/other", "MISS", 3),
			get("/users/7/posts", "MISS", 4), get("/users/8/posts", "MISS", 5),
			{method: "PUT", target: "/posts/1", calls: 6},
			get("/cats/old", "MISS", 7), get("/cats/new", "MISS", 8), get("/cats/other", "HIT-L1", 8),
			get("/users/7/posts", "MISS", 9), get("/users/8/posts", "HIT-L1", 9),
		}},
		{"keys added by the handler", []routeSpec{
			{"GET /posts/{id}", postOpts, nil},
			{"POST /posts", httpcache.Options{}, func(w http.ResponseWriter, r *http.Request) {
				_ = httpcache.Invalidate(r, httpcache.Key("post", "3"))
				_ = httpcache.InvalidateResource(r, "post", "4")
				w.WriteHeader(http.StatusCreated)
			}}}, []step{
			get("/posts/3", "MISS", 1), get("/posts/4", "MISS", 2), get("/posts/5", "MISS", 3),
			{method: "POST", target: "/posts", status: 201, calls: 4},
			get("/posts/3", "MISS", 5), get("/posts/4", "MISS", 6), get("/posts/5", "HIT-L1", 6),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, _ := newMiniClient(t)
			nodes := []*node{newNode(t, tiered.Options{Redis: rdb}), newNode(t, tiered.Options{Redis: rdb})}
			for _, n := range nodes { // Age is 0 throughout, however long the steps take
				httpcache.SetClock(n.mw, func() time.Time { return time.Unix(1_700_000_000, 0) })
			}
			var calls atomic.Int64
			for _, rs := range tc.routes {
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n := calls.Add(1)
					if rs.respond != nil {
						rs.respond(w, r)
					}
					echo(w, r, n)
				})
				for _, n := range nodes {
					n.handle(t, rs.pattern, h, rs.opts)
				}
			}
			for i, s := range tc.steps {
				n := nodes[s.node]
				if s.node == 1 && nodes[0] != nil {
					// node 1 applies node 0's invalidations from the bus; wait for them
					waitApplied(t, nodes[0], n)
				}
				w := n.do(s.method, s.target, s.header)
				want := s.status
				if want == 0 {
					want = 200
				}
				body := w.Body.String()
				switch {
				case w.Code != want:
					t.Fatalf("step %d: %s %s: status %d; want %d (body %q)", i, s.method, s.target, w.Code, want, body)
				case w.Header().Get("X-Cache") != s.xcache:
					t.Fatalf("step %d: %s %s: X-Cache %q; want %q", i, s.method, s.target, w.Header().Get("X-Cache"), s.xcache)
				case calls.Load() != s.calls:
					t.Fatalf("step %d: %s %s: %d handler calls; want %d", i, s.method, s.target, calls.Load(), s.calls)
				case s.bodyHas != "" && !strings.Contains(body+" ", s.bodyHas):
					t.Fatalf("step %d: %s %s: body %q; want it to contain %q", i, s.method, s.target, body, s.bodyHas)
				case s.emptyBody && body != "":
					t.Fatalf("step %d: %s %s: body %q; want none", i, s.method, s.target, body)
				}
				for k, v := range s.respHdr {
					if got := w.Header().Get(k); got != v {
						t.Fatalf("step %d: %s %s: header %s = %q; want %q", i, s.method, s.target, k, got, v)
					}
				}
			}
		})
	}
}

// waitApplied waits until to has applied every invalidation from has sent.
func waitApplied(t *testing.T, from, to *node) {
	t.Helper()
	waitFor(t, func() bool {
		return to.cache.Stats().InvalidationsReceived >= from.cache.Stats().InvalidationsSent
	})
}
