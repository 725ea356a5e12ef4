package tiered_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// BenchmarkWarm compares Group.Warm of 10,000 ids (leases, compare-and-set
// fills, jittered TTLs) with the simplest warmer one would write by hand,
// in the same run: batches of pipelined plain SET ... PX, which can
// resurrect an invalidated value. Both use batches of 100, 4 at a time for
// Warm and one at a time for the plain SETs (such a warmer awaits each).
// The figures are in docs/performance.md ("Warming and the middleware").
func BenchmarkWarm(b *testing.B) {
	rdb := newReal(b)
	ctx := context.Background()
	const n = 10_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	load := func(_ context.Context, ids []string) (map[string]Profile, error) {
		m := make(map[string]Profile, len(ids))
		for _, id := range ids {
			m[id] = Profile{ID: id, Name: "user " + id}
		}
		return m, nil
	}
	b.Run("warm", func(b *testing.B) {
		c := newCache(b, tiered.Options{Redis: rdb, Namespace: "bw", RedisTimeout: 5 * time.Second})
		g := newGroup[Profile](b, c, "p", tiered.GroupOptions{})
		for b.Loop() {
			b.StopTimer()
			rdb.FlushAll(ctx)
			b.StartTimer()
			if err := g.Warm(ctx, ids, tiered.WarmOptions[Profile]{LoadMany: load}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/id")
	})
	b.Run("plain-set", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			rdb.FlushAll(ctx)
			b.StartTimer()
			for start := 0; start < n; start += 100 {
				vals, _ := load(ctx, ids[start:start+100])
				_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					for id, v := range vals {
						raw, _ := json.Marshal(v)
						p.Set(ctx, "bw:plain:"+id, raw, 10*time.Minute)
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/id")
	})
}
