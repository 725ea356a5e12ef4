package tiered_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

const receivers = 4

// reportLatencies reports the p50 and p99 of lat as benchmark metrics
// named prefix+"p50-µs" and prefix+"p99-µs".
func reportLatencies(b *testing.B, prefix string, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), prefix+"p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), prefix+"p99-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPropagation measures how long an invalidation takes to reach 4
// other nodes on a real local Redis: from the Invalidate call until every
// receiver has applied it (tiered, which also UNLINKs the key first), next
// to raw go-redis pub/sub, from PUBLISH until every subscriber has the
// message (goredis), in the same run.
func BenchmarkPropagation(b *testing.B) {
	srv := startRedis(b)
	b.Run("tiered", func(b *testing.B) {
		applied := make(chan time.Duration, receivers*b.N+16)
		rec := tiered.RecorderFunc(func(e tiered.Event) {
			if e.Kind == tiered.EventInvalidationReceived {
				applied <- e.Duration // from PUBLISH to applied
			}
		})
		sender := newGroup[string](b, newPropNode(b, srv.Addr(), nil), "post", tiered.GroupOptions{})
		for i := 0; i < receivers; i++ {
			newPropNode(b, srv.Addr(), rec)
		}
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		bus := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if err := sender.Invalidate(ctx, "1"); err != nil {
				b.Fatal(err)
			}
			var slowest time.Duration
			for j := 0; j < receivers; j++ {
				slowest = max(slowest, <-applied)
			}
			lat = append(lat, time.Since(start))
			bus = append(bus, slowest)
		}
		reportLatencies(b, "", lat)
		reportLatencies(b, "bus-", bus)
	})
	b.Run("goredis", func(b *testing.B) {
		ctx := context.Background()
		got := make(chan struct{}, receivers*b.N+16)
		for i := 0; i < receivers; i++ {
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			ps := rdb.Subscribe(ctx, "raw")
			if _, err := ps.Receive(ctx); err != nil {
				b.Fatal(err)
			}
			ch := ps.Channel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range ch {
					got <- struct{}{}
				}
			}()
			b.Cleanup(func() { ps.Close(); <-done; rdb.Close() })
		}
		pub := srv.Client(b)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if err := pub.Publish(ctx, "raw", "k").Err(); err != nil {
				b.Fatal(err)
			}
			for j := 0; j < receivers; j++ {
				<-got
			}
			lat = append(lat, time.Since(start))
		}
		reportLatencies(b, "", lat)
	})
}

func newPropNode(b *testing.B, addr string, rec tiered.Recorder) *tiered.Cache {
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	b.Cleanup(func() { rdb.Close() })
	c := newCache(b, tiered.Options{Redis: rdb, Namespace: "prop", Recorder: rec})
	if rec != nil {
		newGroup[string](b, c, "post", tiered.GroupOptions{})
	}
	return c
}
