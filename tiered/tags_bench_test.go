package tiered_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tiercache/tiercache/tiered"
)

// profileTags gives a profile two tags, as a real group would: its user
// and one shared by every profile.
func profileTags(id string, _ *Profile) []string { return []string{"user:" + id, "profiles"} }

// BenchmarkL1HitTags compares, in one run, an L1 hit through Group.Fetch
// of an untagged entry and of an entry with 2 tags (after a tag
// invalidation elsewhere, so that every entry was rechecked once against
// the node's table of tag stamps) with a raw Ristretto v2 Get.
//
//	go test -run '^$' -bench L1HitTags -count 10 ./tiered/ | tee l1.txt; benchstat -col /impl l1.txt
func BenchmarkL1HitTags(b *testing.B) {
	ids := benchIDs()
	b.Run("impl=untagged", func(b *testing.B) { benchL1HitGroup(b, ids, tiered.GroupOptions{}) })
	b.Run("impl=tags2", func(b *testing.B) { benchL1HitGroup(b, ids, tiered.GroupOptions{Tags: profileTags}) })
	b.Run("impl=ristretto", func(b *testing.B) { benchRistrettoHit(b, ids) })
}

func benchRistrettoHit(b *testing.B, ids []string) {
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
	runtime.GC() // the setup's garbage is not the timed loop's to collect
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
}

// benchL1HitGroup is benchL1Hit for a group made with go, in an L1-only
// cache; an unrelated tag is invalidated before the timing starts.
func benchL1HitGroup(b *testing.B, ids []string, gopts tiered.GroupOptions) {
	c := newCache(b, tiered.Options{})
	g := newGroup[*Profile](b, c, "user_profile", gopts)
	ctx := context.Background()
	for _, id := range ids {
		if _, err := g.Fetch(ctx, id, benchLoad); err != nil {
			b.Fatal(err)
		}
	}
	c.WaitL1()
	if err := c.InvalidateTags(ctx, "unrelated"); err != nil {
		b.Fatal(err)
	}
	runtime.GC() // as in benchRistrettoHit
	b.ReportAllocs()
	b.ResetTimer()
	var start atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(start.Add(397))
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

// BenchmarkL2HitTags compares, in one run, an L2 hit (L1 disabled) of an
// untagged value and of a value with 2 tags, on a real server: the tags
// are checked against the node's table of stamps, kept by the bus, so the
// hit stays one round trip.
//
//	go test -run '^$' -bench L2HitTags -count 10 ./tiered/ | tee l2.txt; benchstat -col /impl l2.txt
func BenchmarkL2HitTags(b *testing.B) {
	rdb := newReal(b)
	ids := benchIDs()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts tiered.GroupOptions
	}{{"impl=untagged", tiered.GroupOptions{}}, {"impl=tags2", tiered.GroupOptions{Tags: profileTags}}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newCache(b, tiered.Options{Redis: rdb, Namespace: "bench" + tc.name[5:], DisableL1: true, RedisTimeout: 2 * time.Second})
			g := newGroup[*Profile](b, c, "user_profile", tc.opts)
			for _, id := range ids {
				if _, err := g.Fetch(ctx, id, benchLoad); err != nil {
					b.Fatal(err)
				}
			}
			loads := g.Stats().Loads
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := g.Fetch(ctx, ids[i%benchKeys], benchLoad); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if s := g.Stats(); s.Loads != loads {
				b.Fatalf("the benchmark loaded: %+v", s)
			}
		})
	}
}

// BenchmarkL1EntryBytes reports the heap one L1 entry takes (its value
// included: a *Profile), untagged and with 2 tags, as bytes/entry: the
// heap growth of filling an L1-only cache with 20,000 entries, after GC.
//
//	go test -run '^$' -bench L1EntryBytes -benchtime 3x ./tiered/
func BenchmarkL1EntryBytes(b *testing.B) {
	const n = 20000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	for _, tc := range []struct {
		name string
		opts tiered.GroupOptions
	}{{"impl=untagged", tiered.GroupOptions{}}, {"impl=tags2", tiered.GroupOptions{Tags: profileTags}}} {
		b.Run(tc.name, func(b *testing.B) {
			var total float64
			for range b.N {
				c := newCache(b, tiered.Options{})
				g := newGroup[*Profile](b, c, "user_profile", tc.opts)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for _, id := range ids {
					if _, err := g.Fetch(context.Background(), id, benchLoad); err != nil {
						b.Fatal(err)
					}
				}
				c.WaitL1()
				runtime.GC()
				runtime.ReadMemStats(&after)
				total += float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(g)
				c.Close()
			}
			b.ReportMetric(total/float64(b.N), "bytes/entry")
		})
	}
}
