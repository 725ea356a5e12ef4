package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/minitime"
	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	goleak.VerifyTestMain(m)
}

// instance is one running copy of the service, over real HTTP.
type instance struct {
	app      *app
	srv      *httptest.Server
	received atomic.Uint64 // invalidations from other instances applied here
}

func startInstance(t *testing.T, srv *redistest.Server, db *store, forgetPostKey bool) *instance {
	t.Helper()
	in := &instance{}
	rdb := srv.Client(t)
	a, err := newApp(db, appOptions{Redis: rdb, Namespace: "blog", forgetPostKey: forgetPostKey, redisTimeout: 10 * time.Second, Recorder: tiered.RecorderFunc(func(e tiered.Event) {
		if e.Kind == tiered.EventInvalidationReceived {
			in.received.Add(1) // after the invalidation was applied to this instance's L1
		}
	})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.cache.WaitBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.warm(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	in.app, in.srv = a, httptest.NewServer(a.handler)
	t.Cleanup(in.srv.Close)
	return in
}

func getPost(t *testing.T, c *http.Client, base, id string) (Post, string) {
	t.Helper()
	resp, err := c.Get(base + "/posts/" + id)
	if err != nil {
		t.Error(err)
		return Post{}, ""
	}
	defer resp.Body.Close()
	var p Post
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /posts/%s = %d, %v", id, resp.StatusCode, err)
	}
	return p, resp.Header.Get("X-Cache")
}

// TestTwoInstances runs two instances of the service on one real Redis and
// a shared database. A PUT on A is seen by a GET on B at the latest once B
// has applied its invalidations (the lag is reported), and no GET on B that
// began after B applied the invalidation returns the old post.
func TestTwoInstances(t *testing.T) {
	r := twoInstances(t, false)
	if !r.aSeesNew || r.lag < 0 || len(r.violations) > 0 {
		t.Fatalf("A sees its write: %v; lag on B %v (-1: not even after B applied the invalidations); %d GETs on B began after B applied the invalidation and returned the old post: %v",
			r.aSeesNew, r.lag, len(r.violations), r.violations[:min(5, len(r.violations))])
	}
	t.Logf("PUT on A seen by a GET on B after %v; %d reads on B after it applied the invalidation, all new", r.lag, r.afterApplied)
}

// TestTwoInstancesCatchesAMissedKey: with the post's data key left out of
// the PUT's invalidation, the same run finds the old post served after the
// invalidation was applied, so the checks above can fail.
func TestTwoInstancesCatchesAMissedKey(t *testing.T) {
	r := twoInstances(t, true)
	if r.aSeesNew || r.lag >= 0 || len(r.violations) == 0 {
		t.Fatalf("with a missed key: A sees its write %v, lag %v, %d stale reads; want the old post everywhere", r.aSeesNew, r.lag, len(r.violations))
	}
}

type twoResult struct {
	aSeesNew     bool
	lag          time.Duration // -1: B did not serve the update, even after it applied the invalidations
	violations   []string
	afterApplied int64
}

func twoInstances(t *testing.T, forgetPostKey bool) (r twoResult) {
	srv := redistest.Start(t)
	db := newStore(200, 20, 5)
	a, b := startInstance(t, srv, db, forgetPostKey), startInstance(t, srv, db, forgetPostKey)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)

	old := db.Popular(1)[0] // warmed on both
	before, _ := db.Post(old)
	newCat := "5"
	if before.CategoryID == newCat {
		newCat = "4"
	}
	untouched := "1"
	for untouched == before.CategoryID || untouched == newCat {
		untouched = fmt.Sprint(untouched[0] - '0' + 1)
	}
	lists := map[string]string{ // path -> X-Cache on B after the PUT
		"/categories/" + before.CategoryID + "/posts": "MISS",
		"/categories/" + newCat + "/posts":            "MISS",
		"/categories/" + untouched + "/posts":         "HIT-L1",
		"/users/" + before.UserID + "/posts?page=2":   "MISS",
		"/recent": "MISS",
	}
	for path := range lists {
		xcache(t, client, b.srv.URL+path)
		b.app.cache.WaitL1()
		if xc := xcache(t, client, b.srv.URL+path); xc != "HIT-L1" {
			t.Fatalf("GET %s on B: X-Cache %s; want it cached", path, xc)
		}
	}
	for i, in := range []*instance{a, b} { // warmed at start-up on both
		if p, xc := getPost(t, client, in.srv.URL, old); p.Title != "post "+old || xc != "HIT-L1" {
			t.Fatalf("first GET on instance %d = %q, X-Cache %s; want the seeded post, warmed: HIT-L1", i, p.Title, xc)
		}
	}

	// Readers on B: each notes, before it sends a GET, whether B had
	// applied the PUT's invalidation by then.
	var target atomic.Uint64 // B's received count once the PUT is applied there; 0 until known
	var afterApplied atomic.Int64
	var violations []string
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ { // bounded
				select {
				case <-stop:
					return
				default:
				}
				tg := target.Load()
				applied := tg != 0 && b.received.Load() >= tg
				p, xc := getPost(t, client, b.srv.URL, old)
				if applied {
					afterApplied.Add(1)
					if p.Title != "updated" {
						mu.Lock()
						violations = append(violations, fmt.Sprintf("%q (X-Cache %s)", p.Title, xc))
						mu.Unlock()
					}
				}
			}
		}()
	}

	sentBefore, receivedBefore := a.app.cache.Stats().InvalidationsSent, b.received.Load()
	req, _ := http.NewRequest("PUT", a.srv.URL+"/posts/"+old, strings.NewReader(`{"title":"updated","category_id":"`+newCat+`"}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	putDone := time.Now()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT = %d", resp.StatusCode)
	}
	messages := a.app.cache.Stats().InvalidationsSent - sentBefore
	target.Store(receivedBefore + messages)

	// On A the write is visible at once: it invalidated before answering.
	p, _ := getPost(t, client, a.srv.URL, old)
	r.aSeesNew = p.Title == "updated"

	// On B: poll until the update shows, or until a GET that began after B
	// applied the PUT's invalidations still shows the old post (whatever
	// the time that takes on a loaded machine).
	r.lag = -1
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); { // a hang guard
		applied := b.received.Load() >= target.Load()
		if p, _ := getPost(t, client, b.srv.URL, old); p.Title == "updated" {
			r.lag = time.Since(putDone)
			break
		}
		if applied {
			break
		}
	}
	waitUntil(t, func() bool { return b.received.Load() >= target.Load() })
	waitUntil(t, func() bool { return afterApplied.Load() >= 300 }) // reads that began after B applied it
	close(stop)
	wg.Wait()
	r.violations, r.afterApplied = violations, afterApplied.Load()

	// The lists the PUT touched miss on B; one it did not touch still hits.
	for path, want := range lists {
		if xc := xcache(t, client, b.srv.URL+path); xc != want {
			t.Errorf("GET %s on B: X-Cache %s; want %s", path, xc, want)
		}
	}
	return r
}

func xcache(t *testing.T, c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Cache")
}

// waitUntil waits for cond, failing after 10s (a hang guard).
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestEmbeddedClock: the embedded Redis's clock follows the wall clock, so
// TTLs expire as they would on a real server.
func TestEmbeddedClock(t *testing.T) {
	mr := miniredis.RunT(t)
	if err := mr.Set("k", "v"); err != nil {
		t.Fatal(err)
	}
	mr.SetTTL("k", 50*time.Millisecond)
	stop := minitime.Follow(mr, 100*time.Millisecond)
	defer stop()
	waitUntil(t, func() bool { return !mr.Exists("k") })
}
