package httpcache_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// exampleSend serves one request on mux, waits for the L1 fills it made,
// and prints what came back.
func exampleSend(c *tiered.Cache, mux *http.ServeMux, method, target string) {
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	c.WaitL1()
	fmt.Println(strings.TrimSpace(fmt.Sprint(method, " ", target, " ", w.Code, " ", w.Header().Get("X-Cache"), " ", w.Body)))
}

// New puts a middleware in front of a cache; routes are then registered
// with Handle or Wrap.
func ExampleNew() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "web"})
	defer c.Close()
	_ = c.WaitBus(context.Background())

	mw, err := httpcache.New(c, httpcache.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	_ = mw.Handle(mux, "GET /users/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s", r.PathValue("id"))
	}), httpcache.Options{Prefix: "user", ID: "id"})
	exampleSend(c, mux, "GET", "/users/7")
	exampleSend(c, mux, "GET", "/users/7")
	fmt.Println("in redis:", mr.Exists("web:user:7"))

	_, err = httpcache.New(nil, httpcache.Config{})
	fmt.Println(err)
	// Output:
	// GET /users/7 200 MISS user 7
	// GET /users/7 200 HIT-L1 user 7
	// in redis: true
	// httpcache: nil cache
}

// Invalidate adds keys, as Key builds them, to what a write invalidates
// when its handler returns: here renaming a user invalidates the user's
// cached profile, which the write's own route does not name.
func ExampleInvalidate() {
	c, _ := tiered.New(tiered.Options{}) // L1 only: one process
	defer c.Close()
	mw, _ := httpcache.New(c, httpcache.Config{})
	mux := http.NewServeMux()
	names := map[string]string{"7": "Ann"}
	_ = mw.Handle(mux, "GET /profiles/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, names[r.PathValue("id")])
	}), httpcache.Options{Prefix: "profile", ID: "id"})
	_ = mw.Handle(mux, "POST /rename/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		names[id] = "Bea" // the database update
		if err := httpcache.Invalidate(r, httpcache.Key("profile", id)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), httpcache.Options{})

	exampleSend(c, mux, "GET", "/profiles/7")
	exampleSend(c, mux, "GET", "/profiles/7")
	exampleSend(c, mux, "POST", "/rename/7")
	exampleSend(c, mux, "GET", "/profiles/7")

	// Outside a write route's request there is nothing to add to.
	err := httpcache.Invalidate(httptest.NewRequest("GET", "/", nil), "profile:7")
	fmt.Println(errors.Is(err, httpcache.ErrNotWrite))
	// Output:
	// GET /profiles/7 200 MISS Ann
	// GET /profiles/7 200 HIT-L1 Ann
	// POST /rename/7 204
	// GET /profiles/7 200 MISS Bea
	// true
}

// InvalidatePattern adds Redis glob patterns over keys to what a write
// invalidates: here a new article invalidates every cached search, with
// each search's query-string variants.
func ExampleInvalidatePattern() {
	c, _ := tiered.New(tiered.Options{})
	defer c.Close()
	mw, _ := httpcache.New(c, httpcache.Config{})
	mux := http.NewServeMux()
	articles := 1
	_ = mw.Handle(mux, "GET /search/{term}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d results for %s", articles, r.PathValue("term"))
	}), httpcache.Options{Prefix: "search", ID: "term", Query: []string{"page"}})
	_ = mw.Handle(mux, "POST /articles", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		articles++
		_ = httpcache.InvalidatePattern(r, "search:*")
		w.WriteHeader(http.StatusCreated)
	}), httpcache.Options{})

	exampleSend(c, mux, "GET", "/search/go")
	exampleSend(c, mux, "GET", "/search/go?page=2")
	exampleSend(c, mux, "GET", "/search/go?page=2")
	exampleSend(c, mux, "POST", "/articles")
	exampleSend(c, mux, "GET", "/search/go")
	exampleSend(c, mux, "GET", "/search/go?page=2")
	// Output:
	// GET /search/go 200 MISS 1 results for go
	// GET /search/go?page=2 200 MISS 1 results for go
	// GET /search/go?page=2 200 HIT-L1 1 results for go
	// POST /articles 201
	// GET /search/go 200 MISS 2 results for go
	// GET /search/go?page=2 200 MISS 2 results for go
}

// InvalidateResource adds resources of another route to what a write
// invalidates, each with every variant that route keeps (its query
// strings): here a new comment invalidates its post, all pages of it.
func ExampleInvalidateResource() {
	c, _ := tiered.New(tiered.Options{})
	defer c.Close()
	mw, _ := httpcache.New(c, httpcache.Config{})
	mux := http.NewServeMux()
	comments := 0
	_ = mw.Handle(mux, "GET /posts/{post_id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "post %s, %d comments", r.PathValue("post_id"), comments)
	}), httpcache.Options{Prefix: "post", ID: "post_id", Query: []string{"page"}})
	_ = mw.Handle(mux, "POST /comments", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		comments++
		_ = httpcache.InvalidateResource(r, "post", r.FormValue("post_id"))
		w.WriteHeader(http.StatusCreated)
	}), httpcache.Options{})

	exampleSend(c, mux, "GET", "/posts/1?page=2")
	exampleSend(c, mux, "GET", "/posts/1?page=2")
	exampleSend(c, mux, "POST", "/comments?post_id=1")
	exampleSend(c, mux, "GET", "/posts/1?page=2")
	// Output:
	// GET /posts/1?page=2 200 MISS post 1, 0 comments
	// GET /posts/1?page=2 200 HIT-L1 post 1, 0 comments
	// POST /comments?post_id=1 201
	// GET /posts/1?page=2 200 MISS post 1, 1 comments
}

// SetValues supplies the values of a write's templates that its route does
// not carry: moving a post from one category to another invalidates both
// categories' lists. A name the route did not declare in Supplied is an
// error.
func ExampleSetValues() {
	c, _ := tiered.New(tiered.Options{})
	defer c.Close()
	mw, _ := httpcache.New(c, httpcache.Config{})
	mux := http.NewServeMux()
	category := map[string]string{"1": "go"}
	_ = mw.Handle(mux, "GET /categories/{cat}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var posts []string
		for post, cat := range category {
			if cat == r.PathValue("cat") {
				posts = append(posts, post)
			}
		}
		fmt.Fprint(w, posts)
	}), httpcache.Options{Prefix: "category", ID: "cat"})
	_ = mw.Handle(mux, "PUT /posts/{post_id}/category/{cat}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, old := r.PathValue("post_id"), category[r.PathValue("post_id")]
		category[id] = r.PathValue("cat")
		_ = httpcache.SetValues(r, "cat_id", old, category[id])
		err := httpcache.SetValues(r, "owner", "7")
		fmt.Println("undeclared:", err)
		w.WriteHeader(http.StatusNoContent)
	}), httpcache.Options{
		Supplied:  []string{"cat_id"},
		ExtraKeys: map[string]string{"category": "{cat_id}"},
	})

	exampleSend(c, mux, "GET", "/categories/go")
	exampleSend(c, mux, "GET", "/categories/rust")
	exampleSend(c, mux, "PUT", "/posts/1/category/rust")
	exampleSend(c, mux, "GET", "/categories/go")
	exampleSend(c, mux, "GET", "/categories/rust")
	// Output:
	// GET /categories/go 200 MISS [1]
	// GET /categories/rust 200 MISS []
	// undeclared: httpcache: value "owner" is not in the route's Options.Supplied [cat_id]
	// PUT /posts/1/category/rust 204
	// GET /categories/go 200 MISS []
	// GET /categories/rust 200 MISS [1]
}
