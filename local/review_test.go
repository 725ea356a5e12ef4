package local_test

import (
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/memsize"
	"github.com/tiercache/tiercache/local"
)

// TestTagsCharged: with ChargeMemory an entry's tags are charged (the
// slice's array and each tag's bytes), so that values with many tags do
// not hold many times the budget. Before, 32 tags of 128 bytes per entry
// took about ten times MaxCost of heap for the same Cost.
func TestTagsCharged(t *testing.T) {
	const maxCost = 64 << 20
	c, _ := newCache(t, local.Options{MaxCost: maxCost, ChargeMemory: true})
	tags := make([]string, 32)
	for i := range tags {
		tags[i] = strings.Repeat(string(rune('a'+i%26)), 128)
	}
	before := c.Cost()
	c.Set("k", local.Item[string]{Value: "v", Cost: 10, Expire: t0.Add(time.Hour).UnixNano(), Tags: tags})
	c.Wait()
	want := 10 + c.EntryBytes("k") + local.TagBytes(tags)
	if got := c.Cost() - before; got != want {
		t.Fatalf("charged %d; want %d (value, EntryBytes, TagBytes)", got, want)
	}
	if least := int64(32*16 + 32*128); local.TagBytes(tags) < least {
		t.Fatalf("TagBytes = %d; want at least %d (32 string headers and 32x128 bytes)", local.TagBytes(tags), least)
	}
	if got := local.TagBytes(nil); got != 0 {
		t.Fatalf("TagBytes(nil) = %d; want 0", got)
	}
	if got, want := local.TagBytes([]string{"x"}), memsize.Alloc(16)+memsize.Alloc(1); got != want {
		t.Fatalf("TagBytes of one 1-byte tag = %d; want %d", got, want)
	}
}

// TestReplaceOverBudgetRefused: an entry that costs more than the whole
// budget is refused whether its key is new (Ristretto refuses it) or
// already stored (Ristretto would replace the value in place, evicting
// nothing); the entry it replaces goes too, and OnReject is told.
func TestReplaceOverBudgetRefused(t *testing.T) {
	var rejected []string
	c, _ := newCache(t, local.Options{MaxCost: 1000, OnReject: func(k string) { rejected = append(rejected, k) }})
	c.Set("k", item("small", time.Hour))
	c.Wait()
	if _, ok := get(c, "k"); !ok {
		t.Fatal("the small entry was not stored")
	}
	c.Set("k", local.Item[string]{Value: "huge", Cost: 1_000_000, Expire: t0.Add(time.Hour).UnixNano()})
	c.Wait()
	if v, ok := get(c, "k"); ok {
		t.Fatalf("an entry of 1,000,000 in a budget of 1,000 is served (%q)", v)
	}
	if got := c.Cost(); got > 1000 {
		t.Fatalf("Cost %d after the refused replacement; want at most 1000", got)
	}
	if len(rejected) != 1 || rejected[0] != "k" {
		t.Fatalf("OnReject saw %q; want [k]", rejected)
	}
}

// TestUnpairedReleaseKeepsHold: a Release without its Hold must not leave
// the key's bucket counting below zero, where a later Hold would bring it
// back to zero and let a fill in during that Hold.
func TestUnpairedReleaseKeepsHold(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	c.Release("a")
	c.Hold("a")
	tok := c.Begin()
	if c.SetIf("a", tok, item("old", time.Hour)) {
		t.Fatal("a fill was installed during a Hold that followed an unpaired Release")
	}
	c.Release("a")
	if !c.SetIf("a", c.Begin(), item("new", time.Hour)) {
		t.Fatal("a fill after the Release was refused")
	}
}

// TestGetExpiredNegativeGrace: a negative grace counts as none; it used to
// wrap around and serve an entry expired a century ago.
func TestGetExpiredNegativeGrace(t *testing.T) {
	c, clk := newCache(t, local.Options{})
	c.Set("k", item("v", time.Second))
	c.Wait()
	clk.Add(100 * 365 * 24 * time.Hour)
	for _, grace := range []int64{math.MinInt64, -1, 0} {
		if _, ok := c.GetExpired("k", grace); ok {
			t.Fatalf("GetExpired(k, %d) served an entry expired a century ago", grace)
		}
	}
}

// TestLookupAllocatesNothingOfItsOwn: a hit allocates nothing itself.
// Ristretto replaces its 512-byte access buffer once 64 hits have filled
// it (amortized, 8 bytes a hit at most), which testing.AllocsPerRun rounds
// down to 0; counted over many hits, a hit makes far fewer than one
// allocation (one per hit would show as 100,000).
func TestLookupAllocatesNothingOfItsOwn(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates on its own; run without -race")
	}
	c, _ := newCache(t, local.Options{Split: splitColon})
	c.Set("user:42", item("v", time.Minute))
	c.Wait()
	p := c.Prefix("user:")
	const hits = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range hits {
		if _, ok := c.LookupPrefix(p, "42"); !ok {
			t.Fatal("miss")
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n > hits/32 {
		t.Fatalf("%d allocations in %d hits; want at most %d (Ristretto's buffers only)", n, hits, hits/32)
	}
	if b := after.TotalAlloc - before.TotalAlloc; b > 16*hits {
		t.Fatalf("%d bytes allocated in %d hits; want at most 16 a hit", b, hits)
	}
}
