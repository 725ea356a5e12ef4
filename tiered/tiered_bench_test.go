package tiered_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

const benchKeys = 1024

func benchIDs() []string {
	ids := make([]string, benchKeys)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	return ids
}

func benchLoad(_ context.Context, id string) (*Profile, error) {
	return &Profile{ID: id, Name: "user " + id}, nil
}

// BenchmarkL1Hit compares an L1 hit through Group.Fetch, as a user calls it,
// with a raw Ristretto v2 Get (no TTL on its items) of the same value type
// and keys, in the same run. tiered-recorder is the same hit with a
// Recorder set (one that ignores hits, as the metric adapters do), to show
// what recording costs the hit path. Run it with -cpu 1,2.
func BenchmarkL1Hit(b *testing.B) {
	ids := benchIDs()
	b.Run("impl=tiered", func(b *testing.B) { benchL1Hit(b, ids, tiered.Options{}) })
	b.Run("impl=tiered-recorder", func(b *testing.B) {
		var other atomic.Int64
		benchL1Hit(b, ids, tiered.Options{Recorder: tiered.RecorderFunc(func(e tiered.Event) {
			if e.Kind != tiered.EventHit {
				other.Add(1)
			}
		})})
	})
	b.Run("impl=ristretto", func(b *testing.B) {
		rc, err := ristretto.NewCache(&ristretto.Config[string, *Profile]{
			NumCounters: 10 * benchKeys * 10, MaxCost: 64 << 20, BufferItems: 64, IgnoreInternalCost: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer rc.Close()
		keys := make([]string, benchKeys)
		for i, id := range ids {
			keys[i] = "user_profile:" + id
			v, _ := benchLoad(context.Background(), id)
			rc.Set(keys[i], v, 16)
		}
		rc.Wait()
		b.ReportAllocs()
		b.ResetTimer()
		var start atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(start.Add(397))
			for pb.Next() {
				if _, ok := rc.Get(keys[i%benchKeys]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
}

// benchL1Hit measures Group.Fetch hits of benchKeys values in an L1-only
// cache made with o.
func benchL1Hit(b *testing.B, ids []string, o tiered.Options) {
	c := newCache(b, o)
	g := newGroup[*Profile](b, c, "user_profile", tiered.GroupOptions{})
	ctx := context.Background()
	for _, id := range ids {
		if _, err := g.Fetch(ctx, id, benchLoad); err != nil {
			b.Fatal(err)
		}
	}
	c.WaitL1()
	if s := g.Stats(); s.Loads != benchKeys {
		b.Fatalf("loads = %d", s.Loads)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var start atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(start.Add(397)) // goroutines walk the keys apart, as real traffic does
		for pb.Next() {
			if _, err := g.Fetch(ctx, ids[i%benchKeys], benchLoad); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.StopTimer()
	if s := g.Stats(); s.Loads != benchKeys {
		b.Fatalf("the benchmark loaded: %+v", s)
	}
}

// BenchmarkL2Hit compares an L2 hit through Group.Fetch with L1 disabled
// with a raw go-redis GET plus JSON decode, against the same real server in
// the same run.
func BenchmarkL2Hit(b *testing.B) {
	rdb := newReal(b)
	ids := benchIDs()
	ctx := context.Background()
	b.Run("impl=tiered", func(b *testing.B) {
		c := newCache(b, tiered.Options{Redis: rdb, Namespace: "bench", DisableL1: true})
		g := newGroup[Profile](b, c, "user_profile", tiered.GroupOptions{})
		load := func(ctx context.Context, id string) (Profile, error) {
			p, err := benchLoad(ctx, id)
			return *p, err
		}
		for _, id := range ids {
			if _, err := g.Fetch(ctx, id, load); err != nil {
				b.Fatal(err)
			}
		}
		loads := g.Stats().Loads
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := g.Fetch(ctx, ids[i%benchKeys], load); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if s := g.Stats(); s.Loads != loads {
			b.Fatalf("the benchmark loaded: %+v", s)
		}
	})
	b.Run("impl=goredis", func(b *testing.B) {
		keys := make([]string, benchKeys)
		for i, id := range ids {
			keys[i] = "raw:user_profile:" + id
			p, _ := benchLoad(ctx, id)
			data, _ := json.Marshal(p)
			rdb.Set(ctx, keys[i], data, 0)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			data, err := rdb.Get(ctx, keys[i%benchKeys]).Bytes()
			if err != nil {
				b.Fatal(err)
			}
			var p Profile
			if err := json.Unmarshal(data, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMiss: a read of a key in neither tier, with a loader that
// answers at once: tiercache (one SET NX GET that takes the lease, the
// loader, one compare-and-set fill) against the cache-aside a user writes
// with go-redis (GET, the loader, SET). L1 is off, so every read is a miss
// of a key no one read before.
func BenchmarkMiss(b *testing.B) {
	rdb := newReal(b)
	ctx := context.Background()
	next := 0 // ids are never read twice, across the runs of b.N
	b.Run("impl=tiered", func(b *testing.B) {
		c := newCache(b, tiered.Options{Redis: rdb, Namespace: "miss", DisableL1: true, DisableBus: true})
		g := newGroup[Profile](b, c, "user_profile", tiered.GroupOptions{})
		load := func(ctx context.Context, id string) (Profile, error) {
			p, err := benchLoad(ctx, id)
			return *p, err
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			next++
			if _, err := g.Fetch(ctx, strconv.Itoa(next), load); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if s := g.Stats(); s.Loads != uint64(b.N) || s.LeasesWon != uint64(b.N) {
			b.Fatalf("%d reads made %d loads, %d leases", b.N, s.Loads, s.LeasesWon)
		}
	})
	b.Run("impl=goredis", func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			next++
			id := strconv.Itoa(next)
			key := "raw-miss:user_profile:" + id
			if _, err := rdb.Get(ctx, key).Bytes(); err != redis.Nil {
				b.Fatalf("GET of a new key: %v", err)
			}
			p, _ := benchLoad(ctx, id)
			data, err := json.Marshal(p)
			if err != nil {
				b.Fatal(err)
			}
			if err := rdb.Set(ctx, key, data, time.Minute).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
