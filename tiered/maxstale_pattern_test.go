package tiered_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// maxStalePattern: a pattern invalidation opens the MaxStale window of the
// keys it matches in such a group, as a key invalidation does: a reader on
// another node gets the previous value at once while its load fills in the
// background, and past the window it loads. A key of a strict group that
// the same pattern matches is unlinked. With the pattern's keys unlinked
// as in a strict group, the reader loads, which shows the test catches it.
func maxStalePattern(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("patternStaleOff=%v", off), func(t *testing.T) {
			r := newMSRig(t, rdb, 2, tiered.GroupOptions{})
			for _, c := range r.caches {
				tiered.SetNoPatternStale(c, off)
			}
			strict := newGroup[string](t, r.caches[0], "s", tiered.GroupOptions{TTL: time.Hour})
			id := fmt.Sprintf("pat-%v", off)
			r.cached(id)
			if v, err := strict.Fetch(context.Background(), id, r.ok("s0")); err != nil || v != "s0" {
				t.Fatalf("strict group: %q, %v", v, err)
			}
			pattern := "*:" + tiered.Escape(id)
			invalidate := func() {
				t.Helper()
				if err := r.caches[0].InvalidatePattern(context.Background(), pattern); err != nil {
					t.Fatal(err)
				}
				<-r.received[1]
			}
			invalidate()
			n, err := rdb.Exists(context.Background(), "ms:"+strict.Key(id)).Result()
			if err != nil || n != 0 {
				t.Fatalf("the strict group's key after the pattern: EXISTS = %d, %v; want 0", n, err)
			}
			v, s := r.fetch(1, id, r.ok("v1"))
			if off {
				if v != "v1" || s.Stale {
					t.Fatalf("pattern windows off: %q, stale %v; want v1 from a load", v, s.Stale)
				}
				return
			}
			if v != "v0" || !s.Stale {
				t.Fatalf("inside the window after a pattern: %q, stale %v; want v0, true", v, s.Stale)
			}
			<-r.loaded[1]
			if v, s := r.fetch(0, id, r.noLoad); v != "v1" || s.Stale {
				t.Fatalf("node 0 after the background load: %q, stale %v; want v1", v, s.Stale)
			}
			invalidate()
			r.clk.Add(msWindow)
			if v, s := r.fetch(1, id, r.ok("v2")); v != "v2" || s.Stale {
				t.Fatalf("past the window of a pattern: %q, stale %v; want v2 from the load", v, s.Stale)
			}
		})
	}
}
