package httpcache_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// The decorator's posts example: GET /posts/{post_id} is cached; PUT
// invalidates the post, the owner's post lists (a value the route does not
// carry, supplied by the handler) and the global recent posts.
func ExampleMiddleware_Handle() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "blog"})
	defer c.Close()
	_ = c.WaitBus(context.Background())
	mw, _ := httpcache.New(c, httpcache.Config{})
	mux := http.NewServeMux()

	title := map[string]string{"1": "Hello"}
	owner := map[string]string{"1": "7"}
	err := mw.Handle(mux, "GET /posts/{post_id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"title":%q}`, title[r.PathValue("post_id")])
	}), httpcache.Options{Prefix: "post_cache", ID: "post_id"})
	fmt.Println("GET route:", err)

	err = mw.Handle(mux, "PUT /posts/{post_id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("post_id")
		title[id] = "Hello, world" // the database update
		_ = httpcache.SetValues(r, "user_id", owner[id])
		w.WriteHeader(http.StatusNoContent)
	}), httpcache.Options{
		Prefix:        "post_cache",
		ID:            "post_id",
		Supplied:      []string{"user_id"},
		ExtraKeys:     map[string]string{"recent_posts": "global"},
		ExtraPatterns: []string{"user_posts:{user_id}|*"},
	})
	fmt.Println("PUT route:", err)

	// A template naming a value nobody supplies is refused at start-up.
	err = mw.Handle(mux, "DELETE /posts/{post_id}", http.NotFoundHandler(), httpcache.Options{
		ExtraKeys: map[string]string{"user_posts": "{user_id}"},
	})
	fmt.Println("DELETE route:", strings.Contains(err.Error(), "needs {user_id}"))

	send := func(method string) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(method, "/posts/1", nil))
		c.WaitL1()
		fmt.Println(strings.TrimSpace(fmt.Sprint(method, " ", w.Code, " ", w.Header().Get("X-Cache"), " ", w.Body)))
	}
	send("GET")
	send("GET")
	send("PUT")
	send("GET")
	// Output:
	// GET route: <nil>
	// PUT route: <nil>
	// DELETE route: true
	// GET 200 MISS {"title":"Hello"}
	// GET 200 HIT-L1 {"title":"Hello"}
	// PUT 204
	// GET 200 MISS {"title":"Hello, world"}
}

// Wrap serves routers other than ServeMux that set path values.
func ExampleMiddleware_Wrap() {
	c, _ := tiered.New(tiered.Options{}) // L1 only: one process
	defer c.Close()
	mw, _ := httpcache.New(c, httpcache.Config{})
	calls := 0
	h, err := mw.Wrap("GET /users/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		fmt.Fprintf(w, "user %s", r.PathValue("id"))
	}), httpcache.Options{Prefix: "user", ID: "id"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		r := httptest.NewRequest("GET", "/users/42", nil)
		r.SetPathValue("id", "42") // what the router does
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		c.WaitL1()
		fmt.Println(w.Header().Get("X-Cache"), w.Body.String())
	}
	fmt.Println("handler calls:", calls)
	// Output:
	// MISS user 42
	// HIT-L1 user 42
	// handler calls: 1
}

// Start-up warming through a cached route: the handler runs once per id,
// and the first requests are hits.
func ExampleMiddleware_Warm() {
	c, _ := tiered.New(tiered.Options{})
	defer c.Close()
	mw, _ := httpcache.New(c, httpcache.Config{})
	mux := http.NewServeMux()
	_ = mw.Handle(mux, "GET /posts/{post_id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "post %s", r.PathValue("post_id"))
	}), httpcache.Options{Prefix: "post_cache", ID: "post_id"})

	popular := []string{"1", "2", "3"}
	err := mw.Warm(context.Background(), "post_cache", popular, httpcache.WarmOptions{
		Progress: func(p tiered.WarmProgress) { fmt.Printf("warmed %d/%d, %d failed\n", p.Done, p.Total, p.Failed) },
	})
	fmt.Println(err)
	c.WaitL1()
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/posts/2", nil))
	fmt.Println(w.Header().Get("X-Cache"), w.Body)
	// Output:
	// warmed 3/3, 0 failed
	// <nil>
	// HIT-L1 post 2
}
