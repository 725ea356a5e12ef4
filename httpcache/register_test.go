package httpcache_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

func TestRegistrationErrors(t *testing.T) {
	ok := http.NotFoundHandler()
	idf := func(*http.Request) (string, bool) { return "x", true }
	for _, tc := range []struct {
		name, pattern string
		opts          httpcache.Options
		want          string // a substring of the error
	}{
		{"extra key placeholder not in route", "PUT /posts/{post_id}", httpcache.Options{ExtraKeys: map[string]string{"user_posts": "{user_id}"}}, "{user_id}"},
		{"pattern placeholder not in route", "PUT /posts/{post_id}", httpcache.Options{ExtraPatterns: []string{"user_{user_id}_*"}}, "{user_id}"},
		{"malformed template", "PUT /posts/{id}", httpcache.Options{ExtraKeys: map[string]string{"a": "{id"}}, "unclosed"},
		{"empty extra prefix", "PUT /posts/{id}", httpcache.Options{ExtraKeys: map[string]string{"": "{id}"}}, "empty prefix"},
		{"ID not a wildcard", "GET /posts/{post_id}", httpcache.Options{Prefix: "p", ID: "id"}, `ID "id"`},
		{"GET without prefix", "GET /posts/{id}", httpcache.Options{ID: "id"}, "Prefix"},
		{"GET without id", "GET /posts/{id}", httpcache.Options{Prefix: "p"}, "ID"},
		{"ID and IDFunc", "GET /posts/{id}", httpcache.Options{Prefix: "p", ID: "id", IDFunc: idf}, "not both"},
		{"extras on a read-only route", "GET /posts/{id}", httpcache.Options{Prefix: "p", ID: "id", ExtraKeys: map[string]string{"a": "b"}}, "write method"},
		{"unsupported method", "OPTIONS /posts/{id}", httpcache.Options{}, "OPTIONS"},
		{"bad pattern", "GET /posts/{id", httpcache.Options{Prefix: "p", ID: "id"}, "wildcard"},
		{"partial wildcard", "GET /posts/x{id}", httpcache.Options{Prefix: "p", ID: "id"}, "whole segment"},
		{"no path", "GET posts", httpcache.Options{Prefix: "p", ID: "id"}, "no path"},
		{"uncacheable status", "GET /posts/{id}", httpcache.Options{Prefix: "p", ID: "id", Statuses: []int{206}}, "206"},
		{"supplied name shadows a wildcard", "PUT /posts/{id}", httpcache.Options{Supplied: []string{"id"}}, "wildcard"},
		{"star with other query names", "GET /posts/{id}", httpcache.Options{Prefix: "p", ID: "id", Query: []string{"*", "a"}}, "Query"},
		{"Set-Cookie stored", "GET /posts/{id}", httpcache.Options{Prefix: "p", ID: "id", StoreHeaders: []string{"set-cookie"}}, "cannot be stored"},
		{"hop-by-hop header stored", "GET /posts/{id}", httpcache.Options{Prefix: "p", ID: "id", StoreHeaders: []string{"transfer-encoding"}}, "cannot be stored"},
		{"Date stored", "GET /posts/{id}", httpcache.Options{Prefix: "p", ID: "id", StoreHeaders: []string{"Date"}}, "cannot be stored"},
		{"negative TTL", "GET /posts/{id}", httpcache.Options{Prefix: "p", ID: "id", TTL: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, tiered.Options{})
			err := n.mw.Handle(n.mux, tc.pattern, ok, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "httpcache: ") {
				t.Fatalf("Handle(%q) = %v; want an httpcache error containing %q", tc.pattern, err, tc.want)
			}
		})
	}

	t.Run("valid routes, and a prefix cached twice", func(t *testing.T) {
		n := newNode(t, tiered.Options{})
		for _, r := range []struct {
			pattern string
			opts    httpcache.Options
		}{
			{"GET /posts/{post_id}", httpcache.Options{Prefix: "post", ID: "post_id"}},
			{"PUT /posts/{post_id}", httpcache.Options{Prefix: "post", ID: "post_id", Supplied: []string{"user_id"},
				ExtraKeys:     map[string]string{"user_posts": "{user_id}", "recent_posts": "global"},
				ExtraPatterns: []string{"user_{user_id}_*", "post:{post_id}_{user_id}"}}},
			{"POST /posts", httpcache.Options{ExtraKeys: map[string]string{"recent_posts": "global"}}},
			{"GET example.com/files/{path...}", httpcache.Options{Prefix: "file", ID: "path"}},
		} {
			n.handle(t, r.pattern, ok, r.opts)
		}
		if err := n.mw.Handle(n.mux, "GET /p2/{id}", ok, httpcache.Options{Prefix: "post", ID: "id"}); err == nil {
			t.Fatal("a second route caching prefix post was accepted")
		}
		if err := n.mw.Handle(n.mux, "PUT /posts/{post_id}", ok, httpcache.Options{}); err == nil {
			t.Fatal("a conflicting ServeMux pattern was accepted")
		}
	})
}

func TestHelpersOutsideAWrite(t *testing.T) {
	r, _ := http.NewRequest("GET", "/", nil)
	for name, err := range map[string]error{
		"SetValues":          httpcache.SetValues(r, "a", "1"),
		"Invalidate":         httpcache.Invalidate(r, "k"),
		"InvalidatePattern":  httpcache.InvalidatePattern(r, "k*"),
		"InvalidateResource": httpcache.InvalidateResource(r, "p", "1"),
	} {
		if err != httpcache.ErrNotWrite {
			t.Errorf("%s outside a write = %v; want ErrNotWrite", name, err)
		}
	}
	if got := httpcache.Key("a:b", "x|y%"); got != "a%3Ab:x%7Cy%25" {
		t.Errorf("Key = %q", got)
	}
}
