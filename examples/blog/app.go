package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// appOptions configure one instance of the service.
type appOptions struct {
	Redis     redis.UniversalClient
	Namespace string
	Logger    *slog.Logger
	Recorder  tiered.Recorder // cache events, for tests and metrics
	Progress  io.Writer       // warming progress; nil: none

	// forgetPostKey leaves the post's own key out of what a PUT
	// invalidates, so that a test can show it catches the stale reads
	// that follow.
	forgetPostKey bool
	// redisTimeout, if not 0, replaces the cache's RedisTimeout: tests
	// that run on a loaded machine give Redis longer.
	redisTimeout time.Duration
}

// app is one instance of the blog service: its cache, its data groups and
// its routes.
type app struct {
	db      *store
	cache   *tiered.Cache
	mw      *httpcache.Middleware
	handler http.Handler
}

const pageSize = 10

func newApp(db *store, o appOptions) (*app, error) {
	c, err := tiered.New(tiered.Options{Redis: o.Redis, Namespace: o.Namespace, Logger: o.Logger, Recorder: o.Recorder, RedisTimeout: o.redisTimeout})
	if err != nil {
		return nil, err
	}
	a := &app{db: db, cache: c}
	if err := a.routes(o); err != nil {
		c.Close()
		return nil, err
	}
	return a, nil
}

func (a *app) Close() error { return a.cache.Close() }

// routes registers the endpoints behind the cache.
func (a *app) routes(o appOptions) error {
	var err error
	if a.mw, err = httpcache.New(a.cache, httpcache.Config{Logger: o.Logger}); err != nil {
		return err
	}
	put := httpcache.Options{
		Prefix: "post_cache", ID: "post_id", // the post's own response
		Supplied: []string{"user_id", "category_id"}, // from the database, by the handler
		ExtraKeys: map[string]string{
			"category_posts": "{category_id}", // the old category's list and the new one's
			"recent_posts":   "global",        // a literal key
			// The owner's lists: the list route is keyed by page, so
			// this is the key "user_posts:7" and the pattern
			// "user_posts:7|*" ("user_posts:7|q=page%3D2", ...).
			"user_posts": "{user_id}",
		},
	}
	if o.forgetPostKey {
		put.Prefix, put.ID = "", ""
	}
	mux := http.NewServeMux()
	for _, r := range []struct {
		pattern string
		h       http.HandlerFunc
		opts    httpcache.Options
	}{
		{"GET /posts/{post_id}", a.getPost, httpcache.Options{Prefix: "post_cache", ID: "post_id", TTL: 30 * time.Minute}},
		{"GET /categories/{category_id}", a.getCategory, httpcache.Options{Prefix: "category", ID: "category_id", TTL: 24 * time.Hour}},
		{"GET /users/{user_id}/posts", a.getUserPosts, httpcache.Options{Prefix: "user_posts", ID: "user_id", Query: []string{"page"}, TTL: 10 * time.Minute}},
		{"GET /categories/{category_id}/posts", a.getCategoryPosts, httpcache.Options{Prefix: "category_posts", ID: "category_id", TTL: 10 * time.Minute}},
		{"GET /recent", a.getRecent, httpcache.Options{Prefix: "recent_posts", IDFunc: global, TTL: 10 * time.Minute}},
		{"PUT /posts/{post_id}", a.putPost, put},
	} {
		if err := a.mw.Handle(mux, r.pattern, r.h, r.opts); err != nil {
			return err
		}
	}
	a.handler = mux
	return nil
}

func global(*http.Request) (string, bool) { return "global", true }

func (a *app) getPost(w http.ResponseWriter, r *http.Request) {
	p, ok := a.db.Post(r.PathValue("post_id"))
	if !ok {
		http.Error(w, "no such post", http.StatusNotFound)
		return
	}
	writeJSON(w, p)
}

func (a *app) getCategory(w http.ResponseWriter, r *http.Request) {
	c, ok := a.db.Categories([]string{r.PathValue("category_id")})[r.PathValue("category_id")]
	if !ok {
		http.Error(w, "no such category", http.StatusNotFound)
		return
	}
	writeJSON(w, c)
}

func (a *app) getUserPosts(w http.ResponseWriter, r *http.Request) {
	page := 1
	if s := r.URL.Query().Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			http.Error(w, "bad page", http.StatusBadRequest)
			return
		}
		page = n
	}
	writeJSON(w, a.db.UserPosts(r.PathValue("user_id"), page, pageSize))
}

func (a *app) getCategoryPosts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, a.db.CategoryPosts(r.PathValue("category_id")))
}

func (a *app) getRecent(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, a.db.Recent(pageSize))
}

// putPost updates a post and tells the cache which owner and categories
// the change touched.
func (a *app) putPost(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title      *string `json:"title"`
		Body       *string `json:"body"`
		CategoryID *string `json:"category_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	before, after, ok := a.db.Update(r.PathValue("post_id"), func(p *Post) {
		if in.Title != nil {
			p.Title = *in.Title
		}
		if in.Body != nil {
			p.Body = *in.Body
		}
		if in.CategoryID != nil {
			p.CategoryID = *in.CategoryID
		}
	})
	if !ok {
		http.Error(w, "no such post", http.StatusNotFound)
		return
	}
	_ = httpcache.SetValues(r, "user_id", after.UserID)
	_ = httpcache.SetValues(r, "category_id", before.CategoryID, after.CategoryID)
	writeJSON(w, after)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// warm runs the three start-up warmers through the cached routes: reference
// data (every category), popular content (the 100 most viewed posts) and
// recently active users (the first page of their posts, requested without
// ?page). Each fills the route's cache as a request would, with leases and
// compare-and-set fills.
func (a *app) warm(ctx context.Context, out io.Writer) error {
	progress := func(what string) func(tiered.WarmProgress) {
		if out == nil {
			return nil
		}
		return func(p tiered.WarmProgress) {
			fmt.Fprintf(out, "warming %-14s %3d/%d done, %d failed\n", what, p.Done, p.Total, p.Failed)
		}
	}
	return errors.Join(
		a.mw.Warm(ctx, "category", a.db.CategoryIDs(), httpcache.WarmOptions{Progress: progress("categories")}),
		a.mw.Warm(ctx, "post_cache", a.db.Popular(100), httpcache.WarmOptions{BatchSize: 25, Progress: progress("popular posts")}),
		a.mw.Warm(ctx, "user_posts", a.db.RecentlyActive(50), httpcache.WarmOptions{Progress: progress("active users")}),
	)
}
