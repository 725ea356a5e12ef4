package local_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/local"
)

func TestNewValidates(t *testing.T) {
	for _, o := range []local.Options{
		{MaxCost: -1}, {NumCounters: -1}, {BufferItems: -1},
		{NumCounters: 1 << 40}, {BufferItems: 1 << 30},
	} {
		c, err := local.New[string](o)
		if err == nil {
			c.Close()
			t.Errorf("New(%+v) succeeded; want an error", o)
		} else if !strings.HasPrefix(err.Error(), "local: ") {
			t.Errorf("New(%+v) error %q lacks the \"local: \" prefix", o, err)
		}
	}
	c, err := local.New[string](local.Options{})
	if err != nil {
		t.Fatalf("New with the defaults: %v", err)
	}
	c.Close()
}

func TestValidity(t *testing.T) {
	type cache = local.Cache[string]
	type clock = local.ManualClock
	for _, tc := range []struct {
		name  string
		act   func(*cache, *clock)
		found bool
	}{
		{"fresh", func(*cache, *clock) {}, true},
		{"just before expiry", func(_ *cache, clk *clock) { clk.Add(time.Minute - 1) }, true},
		{"at expiry", func(_ *cache, clk *clock) { clk.Add(time.Minute) }, false},
		{"after expiry", func(_ *cache, clk *clock) { clk.Add(time.Hour) }, false},
		{"flushed", func(c *cache, _ *clock) { c.Flush() }, false},
		{"deleted", func(c *cache, _ *clock) { c.Delete("k") }, false},
		{"other key deleted", func(c *cache, _ *clock) { c.Delete("x") }, true},
		{"matching pattern", func(c *cache, _ *clock) {
			c.DeleteMatching("", func(k string) bool { return k == "k" })
		}, false},
		{"other pattern", func(c *cache, _ *clock) {
			c.DeleteMatching("", func(k string) bool { return k == "x" })
		}, true},
		{"degraded, young", func(c *cache, clk *clock) {
			clk.Add(time.Second - 1)
			c.SetDegraded(time.Second)
		}, true},
		{"degraded, at max age", func(c *cache, clk *clock) {
			clk.Add(time.Second)
			c.SetDegraded(time.Second)
		}, false},
		{"degraded to 0", func(c *cache, _ *clock) { c.SetDegraded(0) }, false},
		{"degraded to 0, clock stepped back", func(c *cache, clk *clock) {
			clk.Add(-time.Second)
			c.SetDegraded(0)
		}, false},
		{"degraded, clock stepped back", func(c *cache, clk *clock) {
			clk.Add(-time.Second)
			c.SetDegraded(time.Minute)
		}, false},
		{"degraded then cleared", func(c *cache, clk *clock) {
			clk.Add(2 * time.Second)
			c.SetDegraded(time.Second)
			c.ClearDegraded()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, clk := newCache(t, local.Options{})
			c.Set("k", item("v", time.Minute))
			c.Wait()
			tc.act(c, clk)
			if _, ok := get(c, "k"); ok != tc.found {
				t.Fatalf("Get(k) found = %v; want %v", ok, tc.found)
			}
		})
	}
}

func TestReplacedEntryIsDead(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	c.Set("k", item("v1", time.Minute))
	c.Wait()
	old, _ := c.Get("k")
	c.Set("k", item("v2", time.Minute)) // a stored hash: applied at once
	if v, _ := get(c, "k"); v != "v2" {
		t.Fatalf("Get(k) = %q; want v2", v)
	}
	if !local.Dead(old) {
		t.Fatal("the replaced entry is not dead")
	}
	checkExact(t, c)
}

func TestLookupPrefix(t *testing.T) {
	c, _ := newCache(t, local.Options{Split: splitColon})
	c.Set("user:42", item("v", time.Minute))
	c.Set("plain", item("p", time.Minute))
	c.Wait()
	user := c.Prefix("user:")
	if user.String() != "user:" {
		t.Errorf("Prefix(user:).String() = %q", user.String())
	}
	for _, tc := range []struct {
		prefix, suffix string
		found          bool
	}{
		{"user:", "42", true},
		{"", "plain", true},
		{"user:", "4", false},
		{"user:", "420", false},
		{"usr:", "42", false},
		{"user", ":42", false}, // not where Split puts the boundary
		{"", "user:42", false},
	} {
		if _, ok := c.LookupPrefix(c.Prefix(tc.prefix), tc.suffix); ok != tc.found {
			t.Errorf("LookupPrefix(%q, %q) found = %v; want %v", tc.prefix, tc.suffix, ok, tc.found)
		}
	}
	for _, k := range []string{"user:42", "plain"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("Get(%q) missed", k)
		}
	}
	if local.KeyHash(c, "user:42") != local.PairHash(c.Prefix("user:"), "42") {
		t.Errorf("the key's hash differs from its prefix's and suffix's")
	}
}

func TestPrefixEdges(t *testing.T) {
	c, _ := newCache(t, local.Options{}) // no Split: every key is all suffix
	c.Set("plain", item("p", time.Minute))
	c.Wait()
	if _, ok := c.LookupPrefix(local.Prefix{}, "plain"); !ok {
		t.Error("LookupPrefix with the zero Prefix missed; it is the empty prefix")
	}
	if _, ok := c.LookupPrefix(c.Prefix("pl"), "ain"); ok {
		t.Error("LookupPrefix(pl, ain) hit without a Split that puts the boundary there")
	}

	for _, split := range []int{-5, 1000} { // clamped to the key
		c, _ := newCache(t, local.Options{Split: func(string) int { return split }})
		c.Set("user:1", item("v", time.Minute))
		c.Wait()
		prefix, suffix := "", "user:1"
		if split > 0 {
			prefix, suffix = "user:1", ""
		}
		if _, ok := c.LookupPrefix(c.Prefix(prefix), suffix); !ok {
			t.Errorf("Split = %d: LookupPrefix(%q, %q) missed", split, prefix, suffix)
		}
		if _, ok := c.Get("user:1"); !ok {
			t.Errorf("Split = %d: Get missed", split)
		}
	}
}

// TestHashCollisionIsAMiss stores an entry of another key under the hash
// of user:a, as a 64-bit collision would: a lookup of user:a must miss,
// not serve the other key's value, and user:a (whose entry Ristretto
// replaced) must leave the index.
func TestHashCollisionIsAMiss(t *testing.T) {
	for _, other := range []string{
		"user:b", // same prefix
		"post:a", // same suffix, same length
		"user:",  // a prefix of the key
		"user:aa",
	} {
		t.Run(other, func(t *testing.T) {
			c, _ := newCache(t, local.Options{Split: splitColon})
			c.Set("user:a", item("a's", time.Minute))
			c.Wait()
			local.SetWithHash(c, other, local.KeyHash(c, "user:a"), item("other's", time.Minute))
			c.Wait()
			if v, ok := get(c, "user:a"); ok {
				t.Errorf("Get(user:a) = %q; want a miss", v)
			}
			if e, ok := c.LookupPrefix(c.Prefix("user:"), "a"); ok {
				t.Errorf("LookupPrefix(user:, a) = %q; want a miss", e.Value)
			}
			for k := range c.All() {
				if k != other {
					t.Errorf("the index holds %q, whose entry Ristretto replaced", k)
				}
			}
			checkExact(t, c)
		})
	}
}
