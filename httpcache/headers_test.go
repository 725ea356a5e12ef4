package httpcache_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/httpcache"
	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// clock is a settable time for the middleware's stored times and Age.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) shifted(d time.Duration) func() time.Time {
	return func() time.Time { return c.now().Add(d) }
}

// backendClient returns a client of a fresh miniredis, or of a real
// redis-server started for the test (skipped when there is none).
func backendClient(t *testing.T, backend string) *redis.Client {
	t.Helper()
	if backend == "miniredis" {
		rdb, _ := newMiniClient(t)
		return rdb
	}
	return redistest.Start(t).Client(t)
}

// expectHeaders fails the test unless w has the X-Cache ("HIT" for
// either tier: an L1 fill is advisory, and may be dropped) and the headers
// given ("" for absent).
func expectHeaders(t *testing.T, what string, w *httptest.ResponseRecorder, xcache string, hdr ...string) {
	t.Helper()
	if got := w.Header().Get("X-Cache"); got != xcache && (xcache != "HIT" || !strings.HasPrefix(got, "HIT-")) {
		t.Fatalf("%s: X-Cache %q; want %q", what, got, xcache)
	}
	for i := 0; i < len(hdr); i += 2 {
		if got := w.Header().Get(hdr[i]); got != hdr[i+1] {
			t.Fatalf("%s: %s %q; want %q", what, hdr[i], got, hdr[i+1])
		}
	}
}

// TestAge: a response served from either tier, by the process that stored
// it or another, carries the seconds since the handler ran, counting the
// Age the handler's own response declared. With the stored time switched
// off (as entries of format version 1 have none) there is no Age: the
// test sees where it comes from.
func TestAge(t *testing.T) {
	for _, backend := range []string{"miniredis", "redis-server"} {
		for _, stored := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/stored=%v", backend, stored), func(t *testing.T) {
				rdb := backendClient(t, backend)
				clk := newClock()
				a, b := newNode(t, tiered.Options{Redis: rdb}), newNode(t, tiered.Options{Redis: rdb})
				for _, n := range []*node{a, b} {
					httpcache.SetClock(n.mw, clk.now)
					httpcache.SetNoStoredTime(n.mw, !stored)
					n.handle(t, "GET /posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						fmt.Fprint(w, "post")
					}), postOpts)
					n.handle(t, "GET /relayed/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						w.Header().Set("Age", "30") // a response this handler relays from a cache of its own
						fmt.Fprint(w, "relayed")
					}), httpcache.Options{Prefix: "relayed", ID: "id"})
				}
				age := func(s string) string {
					if stored {
						return s
					}
					return ""
				}
				expectHeaders(t, "first GET", a.do("GET", "/posts/1", nil), "MISS", "Age", "")
				clk.add(90*time.Second + 999*time.Millisecond)
				expectHeaders(t, "GET after 90.999s", a.do("GET", "/posts/1", nil), "HIT", "Age", age("90"))
				expectHeaders(t, "GET on the other node", b.do("GET", "/posts/1", nil), "HIT-L2", "Age", age("90"))
				expectHeaders(t, "again on the other node", b.do("GET", "/posts/1", nil), "HIT", "Age", age("90"))
				clk.add(time.Millisecond)
				expectHeaders(t, "GET after 91s", a.do("GET", "/posts/1", nil), "HIT", "Age", age("91"))
				expectHeaders(t, "HEAD after 91s", a.do("HEAD", "/posts/1", nil), "HIT", "Age", age("91"))

				expectHeaders(t, "relayed GET", a.do("GET", "/relayed/1", nil), "MISS", "Age", "30")
				clk.add(10 * time.Second)
				expectHeaders(t, "relayed GET 10s later", b.do("GET", "/relayed/1", nil), "HIT-L2", "Age", age("40"))
			})
		}
	}
}

// TestAgeClockBehind: a process whose clock is behind the one that stored
// the entry answers Age 0, never a negative or huge value.
func TestAgeClockBehind(t *testing.T) {
	rdb, _ := newMiniClient(t)
	clk := newClock()
	a, b := newNode(t, tiered.Options{Redis: rdb}), newNode(t, tiered.Options{Redis: rdb})
	httpcache.SetClock(a.mw, clk.now)
	httpcache.SetClock(b.mw, clk.shifted(-time.Hour))
	for _, n := range []*node{a, b} {
		n.handle(t, "GET /posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "post") }), postOpts)
	}
	a.do("GET", "/posts/1", nil)
	expectHeaders(t, "GET on a node an hour behind", b.do("GET", "/posts/1", nil), "HIT-L2", "Age", "0")
}

// rawCodec keeps bytes as they are: it writes entries in any format.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

// TestOldEntriesReadable: an entry of format version 1, written before
// entries kept their time, is served (status, headers, body) without Age,
// on real Redis and miniredis.
func TestOldEntriesReadable(t *testing.T) {
	for _, backend := range []string{"miniredis", "redis-server"} {
		t.Run(backend, func(t *testing.T) {
			rdb := backendClient(t, backend)
			old, n := newNode(t, tiered.Options{Redis: rdb}), newNode(t, tiered.Options{Redis: rdb})
			var calls atomic.Int64
			n.handle(t, "GET /posts/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				fmt.Fprint(w, "new")
			}), postOpts)
			g, err := tiered.NewGroup[[]byte](old.cache, "post", tiered.GroupOptions{Codec: rawCodec{}})
			if err != nil {
				t.Fatal(err)
			}
			v1 := httpcache.MarshalV1(203, http.Header{"Content-Type": {"text/x-old"}, "Cache-Control": {"public, max-age=60"}}, []byte("old"))
			if err := g.Set(context.Background(), "1", v1); err != nil {
				t.Fatal(err)
			}
			waitApplied(t, old, n)
			w := n.do("GET", "/posts/1", nil)
			expectHeaders(t, "GET of a version 1 entry", w, "HIT-L2", "Age", "", "Content-Type", "text/x-old", "Cache-Control", "private, no-cache")
			if w.Code != 203 || w.Body.String() != "old" || calls.Load() != 0 {
				t.Fatalf("GET of a version 1 entry = %d %q after %d handler calls; want 203 \"old\" from the cache", w.Code, w.Body, calls.Load())
			}
		})
	}
}

// The Cache-Control of responses the cache stores, by default and with
// KeepCacheControl, and of a response it does not store.
func ExampleOptions_cacheControl() {
	c, _ := tiered.New(tiered.Options{}) // L1 only: one process
	defer c.Close()
	mw, _ := httpcache.New(c, httpcache.Config{})
	mux := http.NewServeMux()
	public := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprint(w, "post")
	})
	_ = mw.Handle(mux, "GET /posts/{id}", public, httpcache.Options{Prefix: "post", ID: "id"})
	_ = mw.Handle(mux, "GET /feeds/{id}", public, httpcache.Options{Prefix: "feed", ID: "id", KeepCacheControl: true})
	_ = mw.Handle(mux, "GET /me/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=60")
		fmt.Fprint(w, "me")
	}), httpcache.Options{Prefix: "me", ID: "id"})

	for _, target := range []string{"/posts/1", "/posts/1", "/feeds/1", "/feeds/1", "/me/1", "/me/1"} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		c.WaitL1()
		fmt.Printf("%s %s, Cache-Control: %s\n", target, w.Header().Get("X-Cache"), w.Header().Get("Cache-Control"))
	}
	// Output:
	// /posts/1 MISS, Cache-Control: private, no-cache
	// /posts/1 HIT-L1, Cache-Control: private, no-cache
	// /feeds/1 MISS, Cache-Control: public, max-age=60
	// /feeds/1 HIT-L1, Cache-Control: public, max-age=60
	// /me/1 BYPASS, Cache-Control: private, max-age=60
	// /me/1 BYPASS, Cache-Control: private, max-age=60
}
