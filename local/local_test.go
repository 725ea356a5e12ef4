package local_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newCache(t testing.TB, o local.Options) (*local.Cache[string], *local.ManualClock) {
	t.Helper()
	clk := local.NewManualClock(t0)
	if o.MaxCost == 0 {
		o.MaxCost = 1 << 20 // small: a test makes many caches
	}
	if o.Clock == nil {
		o.Clock = clk
	}
	c, err := local.New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, clk
}

func item(v string, ttl time.Duration) local.Item[string] {
	return local.Item[string]{Value: v, Cost: int64(len(v)), Expire: t0.Add(ttl).UnixNano()}
}

func get(c *local.Cache[string], key string) (string, bool) {
	e, ok := c.Get(key)
	if !ok {
		return "", false
	}
	return e.Value, true
}

func TestNewValidates(t *testing.T) {
	for _, o := range []local.Options{{MaxCost: -1}, {NumCounters: -1}, {BufferItems: -1}} {
		if c, err := local.New[string](o); err == nil {
			c.Close()
			t.Errorf("New(%+v) succeeded", o)
		} else if !strings.HasPrefix(err.Error(), "local: ") {
			t.Errorf("error %q lacks the prefix", err)
		}
	}
}

func TestValidity(t *testing.T) {
	for _, tc := range []struct {
		name  string
		act   func(c *local.Cache[string], clk *local.ManualClock)
		found bool
	}{
		{"fresh", func(*local.Cache[string], *local.ManualClock) {}, true},
		{"just before expiry", func(_ *local.Cache[string], clk *local.ManualClock) { clk.Add(time.Minute - 1) }, true},
		{"at expiry", func(_ *local.Cache[string], clk *local.ManualClock) { clk.Add(time.Minute) }, false},
		{"flushed", func(c *local.Cache[string], _ *local.ManualClock) { c.Flush() }, false},
		{"deleted", func(c *local.Cache[string], _ *local.ManualClock) { c.Delete("k") }, false},
		{"pattern", func(c *local.Cache[string], _ *local.ManualClock) {
			c.DeleteMatching("", func(k string) bool { return k == "k" })
		}, false},
		{"other pattern", func(c *local.Cache[string], _ *local.ManualClock) {
			c.DeleteMatching("", func(k string) bool { return k == "x" })
		}, true},
		{"degraded, young", func(c *local.Cache[string], clk *local.ManualClock) {
			clk.Add(time.Second - 1)
			c.SetDegraded(time.Second)
		}, true},
		{"degraded, old", func(c *local.Cache[string], clk *local.ManualClock) {
			clk.Add(time.Second)
			c.SetDegraded(time.Second)
		}, false},
		{"degraded to zero", func(c *local.Cache[string], _ *local.ManualClock) { c.SetDegraded(0) }, false},
		{"degraded then cleared", func(c *local.Cache[string], clk *local.ManualClock) {
			clk.Add(2 * time.Second)
			c.SetDegraded(time.Second)
			c.ClearDegraded()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, clk := newCache(t, local.Options{})
			c.Set("k", item("v", time.Minute))
			c.Wait()
			tc.act(c, clk)
			if _, ok := get(c, "k"); ok != tc.found {
				t.Fatalf("Get found = %v; want %v", ok, tc.found)
			}
		})
	}
}

func TestLookupInTwoParts(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	c.Set("user:42", item("v", time.Minute))
	c.Wait()
	for _, tc := range []struct {
		prefix, suffix string
		found          bool
	}{
		{"user:", "42", true}, {"user:42", "", true}, {"", "user:42", true}, {"user", ":42", true},
		{"user:", "4", false}, {"user:", "420", false}, {"usr:", "42", false},
	} {
		if _, ok := c.Lookup(tc.prefix, tc.suffix); ok != tc.found {
			t.Errorf("Lookup(%q, %q) found = %v; want %v", tc.prefix, tc.suffix, ok, tc.found)
		}
	}
}

func TestHashCollisionIsAMiss(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	local.InjectRaw(c, "asked", &local.Entry[string]{Value: "someone else's", Key: "other", Expire: t0.Add(time.Hour).UnixNano()})
	c.Wait()
	if v, ok := get(c, "asked"); ok {
		t.Fatalf("Get(asked) = %q; a colliding entry of another key was served", v)
	}
}

func TestSetIfVetoedByInvalidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inv    func(c *local.Cache[string])
		vetoed bool
	}{
		{"none", func(*local.Cache[string]) {}, false},
		{"delete", func(c *local.Cache[string]) { c.Delete("k") }, true},
		{"set", func(c *local.Cache[string]) { c.Set("k", item("newer", time.Minute)) }, true},
		{"flush", func(c *local.Cache[string]) { c.Flush() }, true},
		{"matching pattern", func(c *local.Cache[string]) {
			c.DeleteMatching("", func(k string) bool { return strings.HasPrefix(k, "k") })
		}, true},
		{"other pattern", func(c *local.Cache[string]) { c.DeleteMatching("", func(k string) bool { return k == "z" }) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCache(t, local.Options{})
			tok := c.Begin()
			tc.inv(c)
			if ok := c.SetIf("k", tok, item("stale", time.Minute)); ok == tc.vetoed {
				t.Fatalf("SetIf = %v; want %v", ok, !tc.vetoed)
			}
			c.Wait()
			if v, _ := get(c, "k"); v == "stale" && tc.vetoed {
				t.Fatal("the vetoed value is served")
			}
			// A load that begins after the invalidation fills.
			if !c.SetIf("k", c.Begin(), item("fresh", time.Minute)) {
				t.Fatal("SetIf with a fresh token failed")
			}
		})
	}
}

func TestPatternRingOverflowIsConservative(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	tok := c.Begin()
	for i := 0; i < 1000; i++ {
		c.DeleteMatching("", func(k string) bool { return k == "nothing" })
	}
	if !c.SetIf("k", tok, item("v", time.Minute)) {
		t.Fatal("SetIf vetoed by 1,000 non-matching patterns the ring still holds")
	}
	tok = c.Begin()
	for i := 0; i < 1025; i++ {
		c.DeleteMatching("", func(k string) bool { return k == "nothing" })
	}
	if c.SetIf("k2", tok, item("v", time.Minute)) {
		t.Fatal("SetIf allowed although patterns recorded after its token were dropped from the ring")
	}
}

// TestIndexExactAfterEvictions fills far past capacity: afterwards every key
// in the index is served, so the index holds no evicted or rejected entry.
func TestIndexExactAfterEvictions(t *testing.T) {
	var evicted, rejected int
	var mu sync.Mutex
	c, _ := newCache(t, local.Options{
		MaxCost: 1000, NumCounters: 1000,
		OnEvict:  func(string) { mu.Lock(); evicted++; mu.Unlock() },
		OnReject: func(string) { mu.Lock(); rejected++; mu.Unlock() },
	})
	for i := 0; i < 5000; i++ {
		c.Set(fmt.Sprint("k", i), item("0123456789", time.Minute))
		if i%100 == 99 {
			c.Wait()
		}
	}
	c.Wait()
	n := c.Len()
	if n == 0 || n > 100 {
		t.Fatalf("Len = %d; want 1..100 entries of cost 10 in 1000", n)
	}
	var keys []string
	c.Keys(func(k string) bool { keys = append(keys, k); return true })
	for _, k := range keys {
		if _, ok := get(c, k); !ok {
			t.Fatalf("index holds %q, which is not served", k)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if evicted+rejected == 0 {
		t.Fatal("no eviction or rejection happened: the test did not exercise them")
	}
}

// TestTwoQueuedSetsOfOneNewKey: Ristretto admits the first and rejects the
// second although the key is live; the older value must never be served.
func TestTwoQueuedSetsOfOneNewKey(t *testing.T) {
	for i := 0; i < 200; i++ {
		c, _ := newCache(t, local.Options{})
		c.Set("k", item("v1", time.Minute))
		c.Set("k", item("v2", time.Minute))
		c.Wait()
		if v, ok := get(c, "k"); ok && v != "v2" {
			t.Fatalf("Get = %q; the replaced value is served", v)
		}
		// Whatever Ristretto kept, a pattern must remove it.
		c.DeleteMatching("", func(k string) bool { return k == "k" })
		c.Wait()
		if v, ok := get(c, "k"); ok {
			t.Fatalf("Get after the pattern = %q; a live entry escaped the index", v)
		}
		c.Close()
	}
}

func TestConcurrentOperations(t *testing.T) {
	c, clk := newCache(t, local.Options{MaxCost: 10000})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := 0; i < 2000; i++ {
				k := fmt.Sprint("k", r.IntN(50))
				switch r.IntN(10) {
				case 0:
					c.Delete(k)
				case 1:
					c.Set(k, item("set", time.Minute))
				case 2:
					c.DeleteMatching("", func(key string) bool { return key == k })
				case 3:
					if i%200 == 0 {
						c.Flush()
					}
				case 4:
					clk.Add(time.Millisecond)
				default:
					tok := c.Begin()
					c.Get(k) // may race with an invalidation: only the end state is checked
					c.SetIf(k, tok, item("load", time.Minute))
				}
			}
		}()
	}
	wg.Wait()
	c.Wait()
	c.Keys(func(k string) bool {
		if e, ok := c.Get(k); ok && local.Dead(e) {
			t.Errorf("index entry %q is dead", k)
		}
		return true
	})
}

func TestCloseIsIdempotentAndSafe(t *testing.T) {
	c, err := local.New[string](local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Set("k", local.Item[string]{Value: "v", Cost: 1, Expire: time.Now().Add(time.Hour).UnixNano()})
	c.Wait()
	if _, ok := c.Get("k"); !ok {
		t.Fatal("Get before Close missed")
	}
	c.Close()
	c.Close()
	if _, ok := c.Get("k"); ok {
		t.Fatal("Get after Close hit")
	}
	c.Set("k", item("v", time.Minute))
	c.SetIf("k", c.Begin(), item("v", time.Minute))
	c.Delete("k")
	c.DeleteMatching("", func(string) bool { return true })
	c.Flush()
	c.Wait()
}

func TestTickingClock(t *testing.T) {
	clk := local.NewTickingClock(time.Millisecond)
	defer clk.Stop()
	if d := time.Now().UnixNano() - clk.Now(); d < 0 || d > int64(time.Second) {
		t.Fatalf("clock is %v off", time.Duration(d))
	}
	clk.Stop()
	clk.Stop()
}

// TestDeleteMatchingPrefixEqualsScan: the prefix path removes exactly what a
// full scan with the same match removes.
func TestDeleteMatchingPrefixEqualsScan(t *testing.T) {
	keys := []string{"user_4_a", "user_42_a", "user_42_b", "user_43_a", "user_42", "post_42_a", "user_42_\xff"}
	match := func(k string) bool { return strings.HasPrefix(k, "user_42_") }
	for _, prefix := range []string{"", "user_", "user_42_"} {
		c, _ := newCache(t, local.Options{})
		for _, k := range keys {
			c.Set(k, item("v", time.Minute))
		}
		c.Wait()
		if n := c.DeleteMatching(prefix, match); n != 3 {
			t.Errorf("DeleteMatching(%q) removed %d; want 3", prefix, n)
		}
		for _, k := range keys {
			if _, ok := get(c, k); ok == match(k) {
				t.Errorf("prefix %q: %s served = %v", prefix, k, ok)
			}
		}
	}
}
