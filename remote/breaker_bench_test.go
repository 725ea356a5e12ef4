package remote_test

import (
	"context"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// BenchmarkGetBreaker measures what the breaker adds to a successful Get on
// a real redis-server: compare the two sub-benchmarks of one run.
func BenchmarkGetBreaker(b *testing.B) {
	rdb := redistest.Start(b).Client(b)
	for _, tc := range []struct {
		name string
		off  bool
	}{{"breaker", false}, {"nobreaker", true}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := remote.New(rdb, remote.Options{DisableBreaker: tc.off})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(ctx, "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGetRefused measures a Get refused by an open breaker (no network).
func BenchmarkGetRefused(b *testing.B) {
	m := miniredis.RunT(b)
	addr := m.Addr()
	m.Close() // a port of ours that now refuses connections
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	s, err := remote.New(rdb, remote.Options{BreakerFailures: 1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	_, _ = s.Get(ctx, "k") // connection refused: opens the breaker
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, "k"); err == nil {
			b.Fatal("Get succeeded")
		}
	}
}
