package local_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/tiercache/tiercache/internal/glob"
	"github.com/tiercache/tiercache/local"
)

// The hit benchmarks read benchKeys keys "user:<id>" from a cache that
// holds them all; each goroutine starts at its own offset, as real traffic
// does. BenchmarkLookup and BenchmarkRistrettoGet run the same keys through
// the same Ristretto configuration (no TTL on its items): compare them.
const benchKeys = 1024

func benchIDs() []string {
	ids := make([]string, benchKeys)
	for i := range ids {
		ids[i] = fmt.Sprint(i * 7919)
	}
	return ids
}

type benchValue struct{ s string }

func benchCache(b *testing.B, ids []string) *local.Cache[*benchValue] {
	c, err := local.New[*benchValue](local.Options{MaxCost: 1 << 20, Split: splitColon})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	exp := time.Now().Add(time.Hour).UnixNano()
	for _, id := range ids {
		c.Set("user:"+id, local.Item[*benchValue]{Value: &benchValue{id}, Cost: 1, Expire: exp})
	}
	c.Wait()
	return c
}

// parallel runs hit(i) for i walking the keys, on b.RunParallel.
func parallel(b *testing.B, hit func(i int) bool) {
	b.ReportAllocs()
	b.ResetTimer()
	var start atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(start.Add(397))
		for pb.Next() {
			if !hit(i % benchKeys) {
				b.Fatal("miss")
			}
			i++
		}
	})
}

// BenchmarkLookup is an L1 hit: LookupPrefix with a Prefix made once.
func BenchmarkLookup(b *testing.B) {
	ids := benchIDs()
	c := benchCache(b, ids)
	p := c.Prefix("user:")
	parallel(b, func(i int) bool {
		_, ok := c.LookupPrefix(p, ids[i])
		return ok
	})
}

// BenchmarkGet is an L1 hit with the key in one part (split and both parts
// hashed on every call).
func BenchmarkGet(b *testing.B) {
	ids := benchIDs()
	c := benchCache(b, ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = "user:" + id
	}
	parallel(b, func(i int) bool {
		_, ok := c.Get(keys[i])
		return ok
	})
}

// BenchmarkRistrettoGet is the baseline: a raw Ristretto v2 Get of the
// same keys, configured as local configures it, with no TTL on its items.
func BenchmarkRistrettoGet(b *testing.B) {
	ids := benchIDs()
	rc, err := ristretto.NewCache(&ristretto.Config[string, *benchValue]{
		NumCounters: 1 << 20 / 256 * 10, MaxCost: 1 << 20, BufferItems: 64, IgnoreInternalCost: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = "user:" + id
		rc.Set(keys[i], &benchValue{id}, 1)
	}
	rc.Wait()
	parallel(b, func(i int) bool {
		_, ok := rc.Get(keys[i])
		return ok
	})
}

// BenchmarkSetIf is a fill of a key already cached (the common refill).
func BenchmarkSetIf(b *testing.B) {
	ids := benchIDs()
	c := benchCache(b, ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = "user:" + id
	}
	exp := time.Now().Add(time.Hour).UnixNano()
	v := &benchValue{"v"}
	parallel(b, func(i int) bool {
		return c.SetIf(keys[i], c.Begin(), local.Item[*benchValue]{Value: v, Cost: 1, Expire: exp})
	})
}

// BenchmarkInvalidatePatternL1 invalidates a pattern that matches 100 keys of an
// L1 that holds 1,000,000: through the ordered index from the pattern's
// literal prefix, and by scanning the whole index. The 100 keys are put
// back with the timer stopped.
func BenchmarkInvalidatePatternL1(b *testing.B) {
	const total, matching = 1_000_000, 100
	c, err := local.New[int](local.Options{MaxCost: 4 * total, NumCounters: 10 * total})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	it := local.Item[int]{Cost: 1, Expire: time.Now().Add(time.Hour).UnixNano()}
	for i := range total - matching {
		c.Set(fmt.Sprintf("user_%d_post:%d", i%50000+100, i), it)
		if i%1024 == 0 {
			c.Wait() // keep Ristretto's Set buffer from dropping Sets
		}
	}
	hot := make([]string, matching)
	for i := range hot {
		hot[i] = fmt.Sprintf("user_42_post:%d", i)
		c.Set(hot[i], it)
	}
	c.Wait()
	if n := c.Len(); n < total*99/100 {
		b.Fatalf("the L1 holds %d keys; want about %d", n, total)
	}
	const pattern = "user_42_*"
	m := glob.Compile(pattern)
	prefix, _ := glob.LiteralPrefix(pattern)
	for _, bc := range []struct{ name, prefix string }{{"prefix", prefix}, {"scan", ""}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
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
