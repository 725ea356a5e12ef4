package local_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tiercache/tiercache/internal/glob"
	"github.com/tiercache/tiercache/local"
)

// BenchmarkLookup is an L1 hit next to a raw Ristretto Get (no TTL on its
// items) of the same keys in the same run.
func BenchmarkLookup(b *testing.B) {
	const n = 1024
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	b.Run("local", func(b *testing.B) {
		c, err := local.New[*string](local.Options{MaxCost: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		exp := time.Now().Add(time.Hour).UnixNano()
		for _, id := range ids {
			v := id
			c.Set("user:"+id, local.Item[*string]{Value: &v, Cost: 1, Expire: exp})
		}
		c.Wait()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, ok := c.Lookup("user:", ids[i%n]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
	b.Run("ristretto", func(b *testing.B) {
		rc, err := ristretto.NewCache(&ristretto.Config[string, *string]{NumCounters: 1e5, MaxCost: 1 << 20, BufferItems: 64, IgnoreInternalCost: true})
		if err != nil {
			b.Fatal(err)
		}
		defer rc.Close()
		keys := make([]string, n)
		for i, id := range ids {
			v := id
			keys[i] = "user:" + id
			rc.Set(keys[i], &v, 1)
		}
		rc.Wait()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, ok := rc.Get(keys[i%n]); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
}

// BenchmarkInvalidatePatternL1 invalidates a pattern that matches 100 keys of
// an L1 that holds 1,000,000: through the ordered index from the pattern's
// literal prefix, and by scanning the whole index. The 100 keys are put
// back with the timer stopped.
func BenchmarkInvalidatePatternL1(b *testing.B) {
	const total, matching = 1_000_000, 100
	c, err := local.New[int](local.Options{MaxCost: 4 * total, NumCounters: 10 * total})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	exp := time.Now().Add(time.Hour).UnixNano()
	it := local.Item[int]{Cost: 1, Expire: exp}
	for i := 0; i < total-matching; i++ {
		c.Set(fmt.Sprintf("user_%d_post:%d", i%50000+100, i), it)
	}
	hot := make([]string, matching)
	for i := range hot {
		hot[i] = fmt.Sprintf("user_42_post:%d", i)
		c.Set(hot[i], it)
	}
	c.Wait()
	if n := c.Len(); n < total*99/100 {
		b.Fatalf("L1 holds %d keys; want about %d", n, total)
	}
	const pattern = "user_42_*"
	m := glob.Compile(pattern)
	prefix, _ := glob.LiteralPrefix(pattern)
	for _, bc := range []struct{ name, prefix string }{{"prefix", prefix}, {"scan", ""}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if n := c.DeleteMatching(bc.prefix, m.Match); n != matching {
					b.Fatalf("removed %d; want %d", n, matching)
				}
				b.StopTimer()
				for _, k := range hot {
					c.Set(k, it)
				}
				c.Wait()
				b.StartTimer()
			}
		})
	}
}
