package httpcache_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// TestRefusedPatternRegistersNothing: a route that the ServeMux refuses
// (its pattern conflicts with one registered before) leaves its prefix
// free, so a corrected route can cache under it, and leaves the routes
// registered before as they were.
func TestRefusedPatternRegistersNothing(t *testing.T) {
	n := newNode(t, tiered.Options{})
	body := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	n.handle(t, "GET /posts/{id}", body, httpcache.Options{Prefix: "post", ID: "id", Query: []string{"page"}})
	n.handle(t, "PUT /posts/{id}", body, httpcache.Options{Prefix: "post", ID: "id"})

	if err := n.mw.Handle(n.mux, "GET /posts/{pid}", body, httpcache.Options{Prefix: "article", ID: "pid"}); err == nil {
		t.Fatal("Handle of a conflicting pattern succeeded")
	}
	if err := n.mw.Handle(n.mux, "GET /articles/{aid}", body, httpcache.Options{Prefix: "article", ID: "aid", TTL: 1}); err == nil {
		t.Fatal("Handle took over a refused route's prefix with another TTL")
	}
	n.handle(t, "GET /articles/{pid}", body, httpcache.Options{Prefix: "article", ID: "pid"})
	n.do("GET", "/articles/1", nil)
	if got := n.do("GET", "/articles/1", nil).Header().Get("X-Cache"); got != "HIT-L1" {
		t.Errorf("second GET /articles/1: X-Cache %q; want HIT-L1", got)
	}

	// A refused write route with the prefix of a caching route leaves
	// that route as it was: a write still invalidates its variants.
	if err := n.mw.Handle(n.mux, "PUT /posts/{pid}", body, httpcache.Options{Prefix: "post", ID: "pid"}); err == nil {
		t.Fatal("Handle of a conflicting write pattern succeeded")
	}
	n.do("GET", "/posts/1?page=2", nil)
	n.do("PUT", "/posts/1", nil)
	if got := n.do("GET", "/posts/1?page=2", nil).Header().Get("X-Cache"); got != "MISS" {
		t.Errorf("GET /posts/1?page=2 after PUT /posts/1: X-Cache %q; want MISS (every variant invalidated)", got)
	}
}
