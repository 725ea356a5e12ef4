package local_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/local"
)

// otherKeys returns two keys other than key: one whose invalidations veto
// key's fills (they share a bucket), and one whose invalidations do not.
func otherKeys(c *local.Cache[string], key string) (same, other string) {
	for i := 0; same == "" || other == ""; i++ {
		k := fmt.Sprint("o", i)
		if local.InvBucket(c, k) == local.InvBucket(c, key) {
			same = k
		} else if other == "" {
			other = k
		}
	}
	return same, other
}

// TestSetIfVetoedByLaterInvalidation: a load that began before an
// invalidation of its key does not fill; one that began after does.
func TestSetIfVetoedByLaterInvalidation(t *testing.T) {
	type cache = local.Cache[string]
	for _, tc := range []struct {
		name   string
		inv    func(c *cache)
		vetoed bool
	}{
		{"nothing", func(*cache) {}, false},
		{"Delete", func(c *cache) { c.Delete("k") }, true},
		{"Delete of several", func(c *cache) { c.Delete("a", "k", "b") }, true},
		{"Set", func(c *cache) { c.Set("k", item("newer", time.Minute)) }, true},
		{"Flush", func(c *cache) { c.Flush() }, true},
		{"matching pattern", func(c *cache) {
			c.DeleteMatching("", func(k string) bool { return strings.HasPrefix(k, "k") })
		}, true},
		{"matching pattern, by prefix", func(c *cache) {
			c.DeleteMatching("k", func(k string) bool { return strings.HasPrefix(k, "k") })
		}, true},
		{"other pattern", func(c *cache) { c.DeleteMatching("", func(k string) bool { return k == "z" }) }, false},
		{"other key, other bucket", func(c *cache) { _, o := otherKeys(c, "k"); c.Delete(o) }, false},
		// A documented false positive: it only skips an L1 fill.
		{"other key, same bucket", func(c *cache) { s, _ := otherKeys(c, "k"); c.Delete(s) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newCache(t, local.Options{})
			tok := c.Begin()
			tc.inv(c)
			if ok := c.SetIf("k", tok, item("stale", time.Minute)); ok == tc.vetoed {
				t.Fatalf("SetIf with a token from before = %v; want %v", ok, !tc.vetoed)
			}
			c.Wait()
			if v, _ := get(c, "k"); v == "stale" && tc.vetoed {
				t.Fatal("the vetoed value is served")
			}
			checkExact(t, c)
			if !c.SetIf("k", c.Begin(), item("fresh", time.Minute)) {
				t.Fatal("SetIf with a token from after the invalidation failed")
			}
			c.Wait()
			if v, ok := get(c, "k"); !ok || v != "fresh" {
				t.Fatalf("Get(k) = %q, %v; want fresh", v, ok)
			}
		})
	}
}

// TestInvalidationBetweenInstallAndRistrettoSet: SetIf installs in the
// index, then hands the entry to Ristretto. A Delete in between kills the
// entry, so that the Ristretto Set landing after it stores a dead entry:
// a miss, never the invalidated value.
func TestInvalidationBetweenInstallAndRistrettoSet(t *testing.T) {
	for _, inv := range []struct {
		name string
		do   func(c *local.Cache[string])
	}{
		{"Delete", func(c *local.Cache[string]) { c.Delete("k") }},
		{"DeleteMatching", func(c *local.Cache[string]) {
			c.DeleteMatching("k", func(k string) bool { return k == "k" })
		}},
	} {
		t.Run(inv.name, func(t *testing.T) {
			c, _ := newCache(t, local.Options{})
			e := local.InstallIf(c, "k", c.Begin(), item("old", time.Minute))
			if e == nil {
				t.Fatal("InstallIf with a fresh token failed")
			}
			inv.do(c)
			local.Store(c, e, 3) // lands late
			c.Wait()
			if v, ok := get(c, "k"); ok {
				t.Fatalf("Get(k) = %q; a deleted entry was resurrected by a late Set", v)
			}
			if !local.Dead(e) {
				t.Fatal("the deleted entry is not marked dead")
			}
			checkExact(t, c)
		})
	}
}

// TestPatternBetweenFillCheckAndInstall: a DeleteMatching that records
// its pattern after a fill passed its checks, but before the fill is
// installed, must still remove the fill: its scan must find the key, new
// or not.
func TestPatternBetweenFillCheckAndInstall(t *testing.T) {
	for _, indexed := range []bool{false, true} {
		t.Run(fmt.Sprint("indexed=", indexed), func(t *testing.T) {
			c, _ := newCache(t, local.Options{})
			if indexed {
				c.Set("k", item("older", time.Minute))
				c.Wait()
			}
			tok := c.Begin()
			finish := local.InterleavePattern(c, "k", func(k string) bool { return k == "k" })
			if !c.SetIf("k", tok, item("stale", time.Minute)) {
				t.Fatal("SetIf failed although its checks ran before the pattern")
			}
			if n := finish(); n != 1 {
				t.Errorf("the pattern removed %d entries; want 1 (the fill)", n)
			}
			c.Wait()
			if v, ok := get(c, "k"); ok {
				t.Fatalf("Get(k) = %q; the fill survived a pattern recorded before it was installed", v)
			}
			checkExact(t, c)
		})
	}
}

func TestSetIfAfterFlushInstallsInNewEpoch(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	c.Set("k", item("v1", time.Minute))
	c.Wait()
	c.Flush()
	if c.Len() != 1 {
		t.Fatalf("Len after Flush = %d; want 1 (the index keeps old-epoch entries)", c.Len())
	}
	if !c.SetIf("k", c.Begin(), item("v2", time.Minute)) {
		t.Fatal("SetIf with a token from after the Flush failed")
	}
	c.Wait()
	if v, ok := get(c, "k"); !ok || v != "v2" {
		t.Fatalf("Get(k) = %q, %v; want v2", v, ok)
	}
	checkExact(t, c)
}

func TestPatternRing(t *testing.T) {
	none := func(k string) bool { return k == "nothing" }
	for _, tc := range []struct {
		name          string
		before, after int  // non-matching patterns recorded before and after the token
		matchFirst    bool // the first pattern after the token matches
		installs      bool
	}{
		{"a full ring of other patterns", 0, local.PatternRingSize, false, true},
		{"one more than the ring holds", 0, local.PatternRingSize + 1, false, false},
		{"overflow of patterns older than the token", local.PatternRingSize, local.PatternRingSize, false, true},
		{"a match at the far end of a full ring", 0, local.PatternRingSize - 1, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newCache(t, local.Options{})
			for range tc.before {
				c.DeleteMatching("", none)
			}
			tok := c.Begin()
			if tc.matchFirst {
				c.DeleteMatching("", func(k string) bool { return k == "k" })
			}
			for range tc.after {
				c.DeleteMatching("", none)
			}
			if got := c.SetIf("k", tok, item("v", time.Minute)); got != tc.installs {
				t.Fatalf("SetIf = %v; want %v", got, tc.installs)
			}
		})
	}
}

// TestDeleteMatchingPrefixEqualsScan: the prefix path removes exactly what
// a full scan with the same match removes.
func TestDeleteMatchingPrefixEqualsScan(t *testing.T) {
	keys := []string{"user_4_a", "user_42_a", "user_42_b", "user_43_a", "user_42", "post_42_a", "user_42_\xff", "user_42_"}
	match := func(k string) bool { return strings.HasPrefix(k, "user_42_") }
	for _, prefix := range []string{"", "user_", "user_42_"} {
		t.Run(prefix, func(t *testing.T) {
			c, _ := newCache(t, local.Options{})
			for _, k := range keys {
				c.Set(k, item("v", time.Minute))
			}
			c.Wait()
			if n := c.DeleteMatching(prefix, match); n != 4 {
				t.Errorf("DeleteMatching(%q) removed %d; want 4", prefix, n)
			}
			for _, k := range keys {
				if _, ok := get(c, k); ok == match(k) {
					t.Errorf("Get(%q) found = %v; want %v", k, ok, !match(k))
				}
			}
			checkExact(t, c)
		})
	}
}

// TestFlushIsNotAnInvalidationOfTheKey: a Flush vetoes the L1 fills of
// loads that began before it, and Flushed says so, but Invalidated does
// not count it: the caller's other tier is guarded by other means (the
// lease), and a flush says nothing about any key. An invalidation of the
// key counts in Invalidated whether or not a Flush came too.
func TestFlushIsNotAnInvalidationOfTheKey(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	tok := c.Begin()
	c.Flush()
	if c.Invalidated("k", tok) {
		t.Error("Invalidated(k) after a Flush = true; want false")
	}
	if !c.Flushed(tok) {
		t.Error("Flushed after a Flush = false; want true")
	}
	if c.Flushed(c.Begin()) {
		t.Error("Flushed with a token taken after the Flush = true; want false")
	}
	if c.SetIf("k", tok, item("stale", time.Minute)) {
		t.Error("SetIf with a token from before the Flush installed")
	}
	c.Delete("k")
	if !c.Invalidated("k", tok) {
		t.Error("Invalidated(k) after a Flush and a Delete(k) = false; want true")
	}
}
