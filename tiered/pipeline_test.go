package tiered_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// tripHook records, for each round trip of a client, the names of its
// commands.
type tripHook struct {
	mu    sync.Mutex
	trips [][]string
}

func (h *tripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.add([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (h *tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.add(cmds)
		return next(ctx, cmds)
	}
}

func (h *tripHook) add(cmds []redis.Cmder) {
	var names []string
	for _, c := range cmds {
		names = append(names, strings.ToLower(c.Name()))
	}
	h.mu.Lock()
	h.trips = append(h.trips, names)
	h.mu.Unlock()
}

// with returns the round trips that carried one of names.
func (h *tripHook) with(names ...string) [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out [][]string
	for _, tr := range h.trips {
		if slices.ContainsFunc(tr, func(n string) bool { return slices.Contains(names, n) }) {
			out = append(out, tr)
		}
	}
	return out
}

// TestInvalidationOneRoundTrip: on a single server, an invalidation of a
// key sends its UNLINK and its message in one pipeline, UNLINK first; the
// other node drops the key from L1 and Redis no longer has it. With the
// pipeline off (SetNoPipe) the same invalidation takes two round trips.
func TestInvalidationOneRoundTrip(t *testing.T) {
	addr := startServer(t)
	for _, piped := range []bool{true, false} {
		t.Run(fmt.Sprintf("piped=%v", piped), func(t *testing.T) {
			ns := fmt.Sprintf("trip%v", piped)
			h := &tripHook{}
			rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
			rdb.AddHook(h)
			a := newFleetNodeOn(t, rdb, tiered.Options{Namespace: ns, Heartbeat: time.Hour})
			b := newFleetNode(t, addr, tiered.Options{Namespace: ns})
			if !tiered.PipesInvalidations(a.cache) {
				t.Fatal("a single server's cache does not pipeline its invalidations")
			}
			tiered.SetNoPipe(a.cache, !piped)
			ctx := context.Background()
			for _, n := range []*fleetNode{a, b} {
				if _, err := n.group.Fetch(ctx, "k", constLoader("v1")); err != nil {
					t.Fatal(err)
				}
				n.cache.WaitL1()
			}
			before := len(h.with("unlink", "publish"))
			if err := a.group.Invalidate(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			b.expect(t, tiered.EventInvalidationReceived)
			if b.inL1(t, "k") {
				t.Fatal("the other node still serves the key from L1")
			}
			if n := rdb.Exists(ctx, ns+":post:k").Val(); n != 0 {
				t.Fatal("the key is still in Redis")
			}
			trips := h.with("unlink", "publish")[before:]
			want := [][]string{{"unlink", "publish"}}
			if !piped {
				want = [][]string{{"unlink"}, {"publish"}}
			}
			if !slices.EqualFunc(trips, want, slices.Equal) {
				t.Fatalf("the invalidation's round trips = %v; want %v", trips, want)
			}
		})
	}
}

// TestStaleInvalidationOneRoundTrip: on a single server, an invalidation of
// a key of a MaxStale group and one of a strict group sends the stale mark
// (a script), the UNLINK and the message in one pipeline, in that order;
// the other node then serves the previous value of the first within the
// window, and Redis no longer has the second. With the pipeline off
// (SetNoPipe) the same invalidation takes three round trips.
func TestStaleInvalidationOneRoundTrip(t *testing.T) {
	addr := startServer(t)
	for _, piped := range []bool{true, false} {
		t.Run(fmt.Sprintf("piped=%v", piped), func(t *testing.T) {
			ns := fmt.Sprintf("stalet%v", piped)
			h := &tripHook{}
			rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
			rdb.AddHook(h)
			a := newFleetNodeOn(t, rdb, tiered.Options{Namespace: ns, Heartbeat: time.Hour})
			b := newFleetNode(t, addr, tiered.Options{Namespace: ns})
			ms := map[*fleetNode]*tiered.Group[string]{}
			for _, n := range []*fleetNode{a, b} {
				ms[n] = newGroup[string](t, n.cache, "ms", tiered.GroupOptions{MaxStale: time.Minute})
			}
			tiered.SetNoPipe(a.cache, !piped)
			ctx := context.Background()
			for _, n := range []*fleetNode{a, b} {
				if _, err := n.group.Fetch(ctx, "k", constLoader("v1")); err != nil {
					t.Fatal(err)
				}
				if _, err := ms[n].Fetch(ctx, "k", constLoader("v1")); err != nil {
					t.Fatal(err)
				}
				n.cache.WaitL1()
			}
			before := len(h.with("eval", "unlink", "publish"))
			if err := a.cache.Invalidate(ctx, ms[a].Key("k"), a.group.Key("k")); err != nil {
				t.Fatal(err)
			}
			b.expect(t, tiered.EventInvalidationReceived)
			if n := rdb.Exists(ctx, ns+":"+a.group.Key("k")).Val(); n != 0 {
				t.Fatal("the strict group's key is still in Redis")
			}
			release := make(chan struct{})
			v, s, err := ms[b].FetchInfo(ctx, "k", func(context.Context, string) (string, error) { <-release; return "v2", nil })
			close(release)
			if err != nil || v != "v1" || !s.Stale {
				t.Fatalf("the other node inside the window: %q, stale %v, %v; want v1, true", v, s.Stale, err)
			}
			trips := h.with("eval", "unlink", "publish")[before:]
			want := [][]string{{"eval", "unlink", "publish"}}
			if !piped {
				want = [][]string{{"eval"}, {"unlink"}, {"publish"}}
			}
			if !slices.EqualFunc(trips, want, slices.Equal) {
				t.Fatalf("the invalidation's round trips = %v; want %v", trips, want)
			}
		})
	}
}
