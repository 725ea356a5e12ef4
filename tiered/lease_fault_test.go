package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

// hookedClient returns a client on srv whose pipelines fail when the test
// asks.
func hookedClient(t *testing.T, srv *redistest.Server) (*redis.Client, *redistest.FailHook) {
	rdb := srv.Client(t)
	h := &redistest.FailHook{}
	rdb.AddHook(h)
	return rdb, h
}

// holdLeases takes the leases of ids of g for a minute, as another node
// that loads them would in a fleet whose LeaseTTL is a minute (the tests'
// caches set that LeaseTTL, or the leases would be foreign), and returns
// them.
func holdLeases[V any](t *testing.T, srv *redistest.Server, ns string, g *tiered.Group[V], ids ...string) []remote.Lease {
	st, err := remote.New(srv.Client(t), remote.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	ls := make([]remote.Lease, len(ids))
	for i, id := range ids {
		l, won, _, err := st.Acquire(context.Background(), g.Key(id), time.Minute)
		if err != nil || !won {
			t.Fatalf("holding the lease of %s: won %v, %v", id, won, err)
		}
		ls[i] = l
	}
	t.Cleanup(func() { _ = st.ReleaseMany(context.Background(), ls) })
	return ls
}

// TestLeaseWaitRedisFailure: a FetchMany waits for two leases another node
// holds; one disappears (its holder failed), then Redis fails on the next
// poll. Every id still gets an answer: fail-open loads both, FailClosed
// returns the Redis error and loads nothing. The id whose lease vanished
// before the failure is the one that is easy to lose: the batch would end
// without answering it.
func TestLeaseWaitRedisFailure(t *testing.T) {
	for _, closed := range []bool{false, true} {
		t.Run(fmt.Sprintf("FailClosed=%v", closed), func(t *testing.T) {
			srv := startRedis(t)
			rdb, h := hookedClient(t, srv)
			var vanished atomic.Bool
			rec := tiered.RecorderFunc(func(e tiered.Event) {
				// On the run's goroutine, between two polls: the next fails.
				if e.Kind == tiered.EventLeaseWaited && e.Err != nil && !vanished.Swap(true) {
					h.FailPipelines(1, false)
				}
			})
			c := newCache(t, tiered.Options{Redis: rdb, Namespace: "lw", DisableBus: true, FailClosed: closed, LeaseTTL: time.Minute, LeaseWait: time.Minute, Recorder: rec})
			g := newGroup[string](t, c, "g", tiered.GroupOptions{})
			ls := holdLeases(t, srv, "lw", g, "a", "b")
			var calls atomic.Int64
			type result struct {
				got map[string]string
				err error
			}
			ch := make(chan result, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang's guard only
			defer cancel()
			go func() {
				got, err := g.FetchMany(ctx, []string{"a", "b"}, func(_ context.Context, ids []string) (map[string]string, error) {
					calls.Add(1)
					out := make(map[string]string)
					for _, id := range ids {
						out[id] = strings.ToUpper(id)
					}
					return out, nil
				})
				ch <- result{got, err}
			}()
			waitUntil(t, "both leases are found busy", func() bool { return c.Stats().LeasesBusy == 2 })
			if err := srv.Client(t).Del(context.Background(), "lw:g:a").Err(); err != nil {
				t.Fatal(err)
			}
			res := <-ch
			if !vanished.Load() || h.Pending() != 0 {
				t.Fatalf("the failure was not injected between two polls (vanished %v, pending %d)", vanished.Load(), h.Pending())
			}
			if closed {
				if res.err == nil || !strings.Contains(res.err.Error(), "wait for lease") || calls.Load() != 0 {
					t.Fatalf("FetchMany = %v, %v with %d loads; want the Redis error and no load", res.got, res.err, calls.Load())
				}
				return
			}
			if res.err != nil || res.got["a"] != "A" || res.got["b"] != "B" || calls.Load() != 1 {
				t.Fatalf("FetchMany = %v, %v with %d loads; want both values from one load", res.got, res.err, calls.Load())
			}
			_ = ls
		})
	}
}

// TestFailedFillReleasesLease: when the compare-and-set that fills a
// loaded value fails (a pipeline of the fills and their hand-offs; one
// script call for Fetch, its hand-off included), the value is returned and the
// lease released, so that the
// next reader on any node loads at once instead of waiting LeaseWait for a
// lease nobody will fill. With the release switched off the lease stays:
// the check can fail.
func TestFailedFillReleasesLease(t *testing.T) {
	for _, many := range []bool{false, true} {
		for _, off := range []bool{false, true} {
			for _, handOff := range []bool{true, false} {
				t.Run(fmt.Sprintf("FetchMany=%v/release off=%v/hand-off=%v", many, off, handOff), func(t *testing.T) {
					srv := startRedis(t)
					rdb, h := hookedClient(t, srv)
					c := newCache(t, tiered.Options{Redis: rdb, Namespace: "ff", DisableBus: true})
					tiered.SetNoRelease(c, off)
					tiered.SetNoHandOff(c, !handOff)
					g := newGroup[string](t, c, "g", tiered.GroupOptions{})
					ids := []string{"1"}
					if many {
						ids = []string{"1", "2"}
					}
					var v string
					var err error
					if many {
						var got map[string]string
						got, err = g.FetchMany(context.Background(), ids, func(context.Context, []string) (map[string]string, error) {
							h.FailPipelines(1, false) // the fills
							return map[string]string{"1": "v", "2": "v"}, nil
						})
						v = got["1"] + got["2"]
					} else {
						v, err = g.Fetch(context.Background(), "1", func(context.Context, string) (string, error) {
							h.FailCommands(1, false) // the fill (and its hand-off): one script call
							return "v", nil
						})
					}
					if want := strings.Repeat("v", len(ids)); err != nil || v != want {
						t.Fatalf("read = %q, %v; want %q, the loaded values", v, err, want)
					}
					if h.Pending() != 0 {
						t.Fatal("the fill was not the call failed")
					}
					st, err := remote.New(srv.Client(t), remote.Options{Namespace: "ff"})
					if err != nil {
						t.Fatal(err)
					}
					for _, id := range ids {
						rec, err := st.Get(context.Background(), g.Key(id))
						if err != nil {
							t.Fatal(err)
						}
						if left := rec.Kind == remote.KindLease; left != off {
							t.Fatalf("Redis holds a %v under %s after the failed fill (release off: %v)", rec.Kind, id, off)
						}
					}
				})
			}
		}
	}
}

// TestCloseDuringLeaseWait: Close ends a miss waiting for another node's
// lease with ErrClosed; it neither calls the loader nor counts a Redis
// failure.
func TestCloseDuringLeaseWait(t *testing.T) {
	srv := startRedis(t)
	var redisErrs atomic.Int64
	rec := tiered.RecorderFunc(func(e tiered.Event) {
		if e.Kind == tiered.EventRedisError {
			redisErrs.Add(1)
		}
	})
	c, err := tiered.New(tiered.Options{Redis: srv.Client(t), Namespace: "cw", DisableBus: true, LeaseTTL: time.Minute, LeaseWait: time.Minute, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g := newGroup[string](t, c, "g", tiered.GroupOptions{})
	holdLeases(t, srv, "cw", g, "1")
	var calls atomic.Int64
	errc := make(chan error, 1)
	go func() {
		_, err := g.Fetch(context.Background(), "1", func(context.Context, string) (string, error) {
			calls.Add(1)
			return "v", nil
		})
		errc <- err
	}()
	waitUntil(t, "the lease is found busy", func() bool { return c.Stats().LeasesBusy == 1 })
	c.Close()
	if err := <-errc; !errors.Is(err, tiered.ErrClosed) {
		t.Fatalf("Fetch = %v; want ErrClosed", err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("loader called %d times after Close", n)
	}
	if n := redisErrs.Load(); n != 0 {
		t.Fatalf("Close counted %d Redis failures", n)
	}
}

// TestServerWithoutSetNXGet: on a server that rejects SET NX GET (Redis
// before 7.0, played by a hook), each client finds out once (Fetch takes
// its lease with a script on every server: the first FetchMany's pipeline
// finds out, one rejection per key), then reads with GETs and takes leases
// with the script: a miss on two nodes loads once and the other node reads
// the value from Redis, for Fetch and FetchMany alike.
func TestServerWithoutSetNXGet(t *testing.T) {
	srv := startRedis(t)
	var caches []*tiered.Cache
	var groups []*tiered.Group[string]
	var hooks []*redistest.OldServerHook
	for range 2 {
		rdb := srv.Client(t)
		h := &redistest.OldServerHook{}
		rdb.AddHook(h)
		c := newCache(t, tiered.Options{Redis: rdb, Namespace: "old", DisableBus: true})
		caches, hooks = append(caches, c), append(hooks, h)
		groups = append(groups, newGroup[string](t, c, "g", tiered.GroupOptions{}))
	}
	var calls atomic.Int64
	load := func(_ context.Context, id string) (string, error) { calls.Add(1); return "v" + id, nil }
	many := func(_ context.Context, ids []string) (map[string]string, error) {
		calls.Add(1)
		out := make(map[string]string)
		for _, id := range ids {
			out[id] = "v" + id
		}
		return out, nil
	}
	ctx := context.Background()
	for i, g := range groups {
		if v, err := g.Fetch(ctx, "1", load); err != nil || v != "v1" {
			t.Fatalf("node %d: Fetch = %q, %v", i, v, err)
		}
		for _, ids := range [][]string{{"2", "3"}, {"4", "5"}} {
			got, err := g.FetchMany(ctx, ids, many)
			if err != nil || got[ids[0]] != "v"+ids[0] || got[ids[1]] != "v"+ids[1] {
				t.Fatalf("node %d: FetchMany = %v, %v", i, got, err)
			}
		}
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("loader calls = %d; want 3 (node 0's Fetch and FetchManys; node 1 reads Redis)", n)
	}
	if s := caches[1].Stats(); s.L2Hits != 5 || s.LeasesWon != 0 {
		t.Fatalf("node 1: %d L2 hits, %d leases; want 5 and 0", s.L2Hits, s.LeasesWon)
	}
	if s := caches[0].Stats(); s.LeasesWon != 5 || s.L2Misses != 5 {
		t.Fatalf("node 0: %d leases won, %d L2 misses; want 5 and 5", s.LeasesWon, s.L2Misses)
	}
	for i, h := range hooks {
		if n := h.Rejected(); n != 2 {
			t.Fatalf("node %d sent %d SET NX GETs to the old server; want 2 (its first pipeline's, then it knows)", i, n)
		}
	}
}
