package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

func init() {
	maxStaleCases["AtRead"] = maxStaleAtRead
	maxStaleCases["WarmLoads"] = maxStaleWarmLoads
}

// maxStaleWarmLoads: Warm of ids inside a MaxStale window waits for its
// loader, as it exists to load: it returns the load's outcome (here id wa
// failed, id wb loaded), not the stale values, and never while its loader
// still runs (reading the loader's per-id failures as it wrote them).
func maxStaleWarmLoads(t *testing.T, rdb redis.UniversalClient) {
	r := newMSRig(t, rdb, 2, tiered.GroupOptions{})
	for _, id := range []string{"wa", "wb"} {
		r.cached(id)
		r.invalidate(id)
	}
	entered, release, done, errA := gatedWarm(r.groups[1])
	<-entered
	// Served stale, Warm would have returned by now, without wa's failure.
	close(release)
	if err := <-done; !errors.Is(err, errA) {
		t.Fatalf("Warm = %v; want wa's failure from its loader", err)
	}
	r.caches[1].WaitL1()
	if v, s := r.fetch(0, "wb", r.noLoad); v != "v2" || s.Stale {
		t.Fatalf("wb after Warm: %q, stale %v; want the loaded v2", v, s.Stale)
	}
}

// maxStaleAtRead: node 1 took the lease over the stale value and loads;
// a Fetch on node 2 then finds that lease carrying the stale value, and
// serves it from its read of Redis, to itself and to a caller that joined
// it, with no load and nothing left running (no background run ends on
// node 2). With the read's shortcut off the same value is served through a
// run that ends in the background, which shows the test tells the two
// apart.
func maxStaleAtRead(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("atReadOff=%v", off), func(t *testing.T) {
			r := newMSRig(t, rdb, 3, tiered.GroupOptions{})
			tiered.SetNoStaleAtRead(r.caches[2], off)
			id := fmt.Sprintf("read-%v", off)
			r.cached(id)
			r.invalidate(id)
			started, release := make(chan struct{}, 8), make(chan struct{})
			if v, s := r.fetch(1, id, r.gated("v1", started, release)); v != "v0" || !s.Stale {
				t.Fatalf("node 1: %q, stale %v; want v0 while it loads", v, s.Stale)
			}
			<-started
			var ended atomic.Int64
			gate := make(chan struct{})
			r.hook(2, func(p string) bool {
				switch p {
				case "read-done":
					<-gate // the leader waits here until the second caller joined
				case "stale-loaded":
					ended.Add(1)
				}
				return true
			})
			base := r.groups[2].Stats().Collapsed
			type result struct {
				v   string
				s   tiered.Served
				err error
			}
			// Two callers: one leads the load and waits at read-done until
			// the other joined it.
			results := make(chan result, 2)
			for range 2 {
				go func() {
					v, s, err := r.groups[2].FetchInfo(context.Background(), id, r.noLoad)
					results <- result{v, s, err}
				}()
			}
			for r.groups[2].Stats().Collapsed == base {
				runtime.Gosched()
			}
			close(gate)
			for range 2 {
				if got := <-results; got.err != nil || got.v != "v0" || !got.s.Stale {
					t.Fatalf("node 2: %q, %+v, %v; want v0, stale", got.v, got.s, got.err)
				}
			}
			close(release)
			<-r.loaded[1]
			if err := r.caches[2].Close(); err != nil { // waits for every run of node 2
				t.Fatal(err)
			}
			if n := ended.Load(); off != (n == 1) || n > 1 {
				t.Fatalf("%d background runs ended on node 2; want %d", n, map[bool]int{false: 0, true: 1}[off])
			}
		})
	}
}
