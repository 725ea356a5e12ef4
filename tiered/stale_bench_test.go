package tiered_test

import (
	"context"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// BenchmarkInvalidateFetch: an invalidation of a key followed by a Fetch
// of it, on a group without MaxStale (the strict path: UNLINK, then a
// miss that takes the lease, loads and fills). It runs unchanged on
// releases before MaxStale, so the two can be compared (benchstat).
func BenchmarkInvalidateFetch(b *testing.B) {
	benchInvalidateFetch(b, tiered.GroupOptions{})
}

// BenchmarkInvalidateFetchStale is BenchmarkInvalidateFetch on a group
// with MaxStale: the invalidation marks the value stale, and the Fetch
// takes the lease over it and returns the previous value while the load
// fills in the background.
func BenchmarkInvalidateFetchStale(b *testing.B) {
	benchInvalidateFetch(b, tiered.GroupOptions{MaxStale: time.Minute})
}

func benchInvalidateFetch(b *testing.B, gopts tiered.GroupOptions) {
	b.Run("load=0", func(b *testing.B) { benchInvalidateFetchLoad(b, gopts, 0) })
	b.Run("load=1ms", func(b *testing.B) { benchInvalidateFetchLoad(b, gopts, time.Millisecond) })
}

// benchInvalidateFetchLoad runs it with a loader that takes d (a database
// round trip).
func benchInvalidateFetchLoad(b *testing.B, gopts tiered.GroupOptions, d time.Duration) {
	rdb := newReal(b)
	ctx := context.Background()
	c := newCache(b, tiered.Options{Redis: rdb, Namespace: "invf", DisableBus: true})
	g := newGroup[Profile](b, c, "user_profile", gopts)
	load := func(ctx context.Context, id string) (Profile, error) {
		if d > 0 {
			time.Sleep(d)
		}
		p, err := benchLoad(ctx, id)
		return *p, err
	}
	ids := benchIDs()
	for _, id := range ids {
		if _, err := g.Fetch(ctx, id, load); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := ids[i%len(ids)]
		if err := g.Invalidate(ctx, id); err != nil {
			b.Fatal(err)
		}
		if _, err := g.Fetch(ctx, id, load); err != nil {
			b.Fatal(err)
		}
	}
}
