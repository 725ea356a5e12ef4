package httpcache_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/tiered"
)

// TestRequestContextEnds: a request whose deadline (set by an outer
// middleware) passes while the handler fills the cache gets a 504; one
// whose client left gets nothing written. The handler run goes on for
// the others either way, and its response is stored.
func TestRequestContextEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(context.Context) (context.Context, context.CancelFunc)
		status int    // what the recorder holds: 200 when nothing was written
		xcache string // "" when nothing was written
	}{
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, time.Millisecond)
		}, http.StatusGatewayTimeout, "MISS"},
		{"client left", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx, cancel
		}, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, _ := newMiniClient(t)
			n := newNode(t, tiered.Options{Redis: rdb})
			release := make(chan struct{})
			n.handle(t, "GET /p/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-release // past the request's end: the run does not share its cancellation
				_, _ = w.Write([]byte("body"))
			}), httpcache.Options{Prefix: "p", ID: "id"})
			ctx, cancel := tc.end(context.Background())
			defer cancel()
			w := httptest.NewRecorder()
			n.mux.ServeHTTP(w, httptest.NewRequest("GET", "/p/1", nil).WithContext(ctx))
			close(release)
			if w.Code != tc.status || w.Header().Get("X-Cache") != tc.xcache || tc.xcache == "" && w.Body.Len() > 0 {
				t.Fatalf("GET = %d %q %q; want %d X-Cache %q", w.Code, w.Header().Get("X-Cache"), w.Body, tc.status, tc.xcache)
			}
			waitFor(t, func() bool { return n.do("GET", "/p/1", nil).Header().Get("X-Cache") == "HIT-L1" })
		})
	}
}
