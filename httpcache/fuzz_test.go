package httpcache_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// echoKeyed answers with everything the route's key is made of, as the
// handler sees it.
func echoKeyed(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "id=%q query=%q v=%q caller=%q", r.PathValue("id"), r.URL.Query().Encode(), r.Header.Values("X-V"), r.Header.Get("X-Caller"))
}

func echoQuery(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "id=%q query=%q", r.PathValue("id"), r.URL.Query().Encode())
}

// FuzzNoResponseForAnotherKey sends pairs of requests with random ids,
// query strings and header values, each twice, and checks every response
// against the uncached handler's: a cached response served for another
// request would differ.
func FuzzNoResponseForAnotherKey(f *testing.F) {
	n := newNode(f, tiered.Options{})
	opts := httpcache.Options{
		Prefix: "item", ID: "id", Query: []string{"*"}, VaryHeaders: []string{"X-V"},
		Caller: func(r *http.Request) (string, bool) {
			c := r.Header.Get("X-Caller")
			return c, c != "deny"
		},
	}
	n.handle(f, "GET /items/{id}", http.HandlerFunc(echoKeyed), opts)
	// Keys of this route have a variant part only when there is a query.
	n.handle(f, "GET /q/{id}", http.HandlerFunc(echoQuery), httpcache.Options{Prefix: "q", ID: "id", Query: []string{"*"}})
	plain := http.NewServeMux()
	plain.HandleFunc("GET /items/{id}", echoKeyed)
	plain.HandleFunc("GET /q/{id}", echoQuery)

	f.Add("1", "", "", "a", "1", "", "", "b")
	f.Add("a|q=x%3D", "", "", "", "a", "x", "", "") // on /q/: the key of a variant of a, were | not escaped
	f.Add("a%7C", "p=1", "v", "c", "a|", "p=1", "v", "c")
	f.Add("*", "a=1&b=2", "", "", "*", "b=2&a=1", "", "")
	f.Add("a%25", "", "", "", "a%", "", "", "deny")
	f.Fuzz(func(t *testing.T, id1, q1, v1, c1, id2, q2, v2, c2 string) {
		reqs := []func() *http.Request{
			request("items", id1, q1, v1, c1), request("items", id2, q2, v2, c2),
			request("q", id1, q1, v1, c1), request("q", id2, q2, v2, c2),
		}
		for round := range 2 {
			for i, mk := range reqs {
				want := httptest.NewRecorder()
				plain.ServeHTTP(want, mk())
				got := httptest.NewRecorder()
				r := mk()
				n.mux.ServeHTTP(got, r)
				n.cache.WaitL1()
				if got.Code != want.Code || got.Body.String() != want.Body.String() {
					t.Fatalf("round %d, request %d (%s %v): got %d %q (X-Cache %s); the handler says %d %q",
						round, i, r.URL, r.Header, got.Code, got.Body, got.Header().Get("X-Cache"), want.Code, want.Body)
				}
			}
		}
	})
}

func request(route, id, query, v, caller string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL = &url.URL{Path: "/" + route + "/" + id, RawPath: "/" + route + "/" + url.PathEscape(id), RawQuery: query}
		r.RequestURI = r.URL.RequestURI()
		if v != "" {
			r.Header.Set("X-V", v)
		}
		if caller != "" {
			r.Header.Set("X-Caller", caller)
		}
		return r
	}
}
