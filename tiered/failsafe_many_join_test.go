package tiered_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

func init() {
	failSafeCases["FetchManySoftJoined"] = failSafeFetchManySoftJoined
	failSafeCases["FetchManySoftLoaderOwnsIds"] = failSafeFetchManySoftLoaderOwnsIds
	failSafeCases["FetchManySoftPanicStack"] = failSafeFetchManySoftPanicStack
}

// failSafeFetchManySoftJoined: while a FetchMany's load goes on past its
// soft timeout (blocked), a second read of the same id on the same node, a
// FetchMany or a Fetch, serves the expired value without calling its
// loader: one load of the id runs in the process. Once that load filled,
// reads get its value. With the join off (SetNoSoftJoin) the second read
// loads.
func failSafeFetchManySoftJoined(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		for _, second := range []string{"FetchMany", "Fetch"} {
			t.Run(fmt.Sprintf("%s/joinOff=%v", second, off), func(t *testing.T) {
				r := newSoftRig(t, rdb, tiered.GroupOptions{})
				tiered.SetNoSoftJoin(r.caches[1], off)
				id := fmt.Sprintf("join-%s-%v", second, off)
				r.cached(id)
				first := newBlocked()
				got := r.fetchMany(1, []string{id}, first.load(r.fsRig, "v2", nil))
				<-first.entered
				r.fire <- time.Now()
				if res := within(t, got, "first FetchMany"); res.err != nil || res.m[id] != "v1" {
					t.Fatalf("first FetchMany at its soft timeout: %v, %v; want the fallback v1", res.m, res.err)
				}
				again := 0
				var v string
				var err error
				if second == "FetchMany" {
					var m map[string]string
					m, err = r.groups[1].FetchMany(context.Background(), []string{id}, func(_ context.Context, ids []string) (map[string]string, error) {
						again++
						return map[string]string{ids[0]: "v3"}, nil
					})
					v = m[id]
				} else {
					v, _, err = r.fetch(1, id, func(context.Context, string) (string, error) { again++; return "v3", nil })
				}
				if err != nil {
					t.Fatal(err)
				}
				want, wantLoads := "v1", 0
				if off {
					want, wantLoads = "v3", 1
				}
				if v != want || again != wantLoads {
					t.Fatalf("%s during the first load: %q, %d loader calls; want %q, %d", second, v, again, want, wantLoads)
				}
				close(first.release)
				<-r.ended
				if off {
					return
				}
				if v, fb, err := r.fetch(1, id, r.dead); err != nil || v != "v2" || fb {
					t.Fatalf("after the first load: %q, fallback %v, %v; want its v2", v, fb, err)
				}
			})
		}
	}
}

// failSafeFetchManySoftLoaderOwnsIds: a batch loader that reorders its ids
// in place while it runs (its right: they are its argument) does not race
// with the soft timeout's reading of the batch (go test -race).
func failSafeFetchManySoftLoaderOwnsIds(t *testing.T, rdb redis.UniversalClient) {
	r := newSoftRig(t, rdb, tiered.GroupOptions{})
	r.cached("oa")
	r.cached("ob")
	entered, release := make(chan struct{}), make(chan struct{})
	load := func(ctx context.Context, ids []string) (map[string]string, error) {
		close(entered)
		for {
			select {
			case <-release:
				m := map[string]string{}
				for _, id := range ids {
					m[id] = "v2"
				}
				return m, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			default:
			}
			slices.Reverse(ids)
			runtime.Gosched()
		}
	}
	got := r.fetchMany(1, []string{"oa", "ob"}, load)
	<-entered
	r.fire <- time.Now()
	if res := within(t, got, "FetchMany"); res.err != nil || res.m["oa"] != "v1" || res.m["ob"] != "v1" {
		t.Fatalf("soft timeout: %v, %v; want both fallbacks", res.m, res.err)
	}
	close(release)
	<-r.ended
}

func softPanickingLoader(context.Context, []string) (map[string]string, error) {
	panic("boom")
}

// failSafeFetchManySoftPanicStack: a batch loader that panics on the soft
// timeout's goroutine reaches the caller as a *PanicError whose stack is
// the loader's, as on the plain path.
func failSafeFetchManySoftPanicStack(t *testing.T, rdb redis.UniversalClient) {
	r := newSoftRig(t, rdb, tiered.GroupOptions{})
	r.cached("ps")
	for _, ids := range [][]string{{"ps"}, {"never-cached"}} {
		caught := make(chan any, 1)
		go func() {
			defer func() { caught <- recover() }()
			_, _ = r.groups[1].FetchMany(context.Background(), ids, softPanickingLoader)
		}()
		pe, ok := (<-caught).(*tiered.PanicError)
		if !ok {
			t.Fatalf("FetchMany(%v): no *PanicError", ids)
		}
		if !bytes.Contains(pe.Stack, []byte("softPanickingLoader")) {
			t.Fatalf("FetchMany(%v): the PanicError's stack does not name the loader:\n%s", ids, pe.Stack)
		}
	}
}
