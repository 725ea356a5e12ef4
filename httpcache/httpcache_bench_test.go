package httpcache_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/tiered"
)

// BenchmarkServe compares a GET answered from L1 through the middleware
// with the same route's handler called directly (it writes a 1 KiB JSON
// body), in the same run: the cost of a hit against the cheapest handler.
func BenchmarkServe(b *testing.B) {
	body := `{"post":"` + strings.Repeat("x", 1000) + `"}`
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
	serve := func(b *testing.B, mux http.Handler) {
		r := httptest.NewRequest("GET", "/posts/42", nil)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
		}
	}
	b.Run("handler", func(b *testing.B) {
		mux := http.NewServeMux()
		mux.Handle("GET /posts/{id}", h)
		serve(b, mux)
	})
	b.Run("hit-l1", func(b *testing.B) {
		n := newNode(b, tiered.Options{})
		n.handle(b, "GET /posts/{id}", h, postOpts)
		if w := n.do("GET", "/posts/42", nil); w.Header().Get("X-Cache") != "MISS" {
			b.Fatal("no miss")
		}
		if w := n.do("GET", "/posts/42", nil); w.Header().Get("X-Cache") != "HIT-L1" {
			b.Fatal("no hit")
		}
		serve(b, n.mux)
	})
}
