package local_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/local"
)

// TestIndexExactAfterEvictions fills far past capacity, replacing and
// deleting some keys on the way and reading the resident ones (so that
// Ristretto rejects some newcomers): afterwards the index holds exactly the
// live entries Ristretto holds (no evicted or rejected entry lingers in
// it), and every one of them is served.
func TestIndexExactAfterEvictions(t *testing.T) {
	var mu sync.Mutex
	evicted, rejected := 0, 0
	c, _ := newCache(t, local.Options{
		MaxCost: 1000, NumCounters: 1000,
		OnEvict:  func(string) { mu.Lock(); evicted++; mu.Unlock() },
		OnReject: func(string) { mu.Lock(); rejected++; mu.Unlock() },
	})
	for i := range 5000 {
		k := fmt.Sprint("k", i%2000)
		switch i % 7 {
		case 0:
			c.Delete(fmt.Sprint("k", i%1000))
		case 1:
			c.SetIf(k, c.Begin(), item("0123456789", time.Minute))
		case 2:
			if i%5 == 0 { // costlier than the whole cache: always rejected
				c.Set(k, local.Item[string]{Value: "big", Cost: 1001, Expire: t0.Add(time.Minute).UnixNano()})
			}
		default:
			c.Set(k, item("0123456789", time.Minute))
		}
		if i%100 == 99 {
			c.Wait()
			for k := range c.All() { // hot keys make Ristretto reject cold ones
				for range 5 {
					c.Get(k)
				}
			}
		}
	}
	checkExact(t, c)
	if n := c.Len(); n == 0 || n > 100 {
		t.Errorf("Len = %d; want 1..100 entries of cost 10 in 1000", n)
	}
	for k := range c.All() {
		if _, ok := get(c, k); !ok {
			t.Errorf("the index holds %q, which is not served", k)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if evicted == 0 || rejected == 0 {
		t.Errorf("%d evictions, %d rejections: the test did not exercise both", evicted, rejected)
	}
}

// TestTwoQueuedSetsOfOneNewKey: with both Sets pending together, Ristretto
// stores the first and rejects the second although the key is live. The
// first is dead (replaced), so the key misses; it is never served the
// older value, and the rejection takes the second out of the index.
func TestTwoQueuedSetsOfOneNewKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(c *local.Cache[string], v string)
	}{
		{"Set", func(c *local.Cache[string], v string) { c.Set("k", item(v, time.Minute)) }},
		{"SetIf", func(c *local.Cache[string], v string) { c.SetIf("k", c.Begin(), item(v, time.Minute)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBlocker()
			c, _ := newCache(t, local.Options{MaxCost: 1000, OnReject: b.onReject})
			b.hold(t, c, 1000)
			tc.set(c, "v1")
			tc.set(c, "v2")
			b.free()
			c.Wait()
			if v, ok := get(c, "k"); ok {
				t.Fatalf("Get(k) = %q; want a miss (v1 is dead, v2 rejected)", v)
			}
			if got := b.rejects(); !slices.Equal(got, []string{"k"}) {
				t.Errorf("rejected %q; want [k] (Ristretto's behaviour changed?)", got)
			}
			checkExact(t, c)
			// The next install replaces the dead entry Ristretto holds, at once.
			tc.set(c, "v3")
			if v, ok := get(c, "k"); !ok || v != "v3" {
				t.Fatalf("Get(k) after a third install = %q, %v; want v3", v, ok)
			}
			checkExact(t, c)
		})
	}
}

// TestDeleteOfPendingSet: a Delete while the key's Set is still queued
// kills the entry; Ristretto stores it late, dead, then applies the
// delete.
func TestDeleteOfPendingSet(t *testing.T) {
	b := newBlocker()
	c, _ := newCache(t, local.Options{MaxCost: 1000, OnReject: b.onReject})
	b.hold(t, c, 1000)
	c.Set("k", item("v1", time.Minute))
	if n := c.Delete("k"); n != 1 {
		t.Errorf("Delete of a pending key removed %d; want 1", n)
	}
	b.free()
	c.Wait()
	if v, ok := get(c, "k"); ok {
		t.Fatalf("Get(k) = %q; want a miss", v)
	}
	checkExact(t, c)
}

// TestSetAfterDeleteWhileDeletePending: Ristretto applies a Del at once and
// queues it too; a Set of the key queued behind that Del is stored.
func TestSetAfterDeleteWhileDeletePending(t *testing.T) {
	b := newBlocker()
	c, _ := newCache(t, local.Options{MaxCost: 1000, OnReject: b.onReject})
	c.Set("k", item("v1", time.Minute))
	c.Wait()
	b.hold(t, c, 1000)
	c.Delete("k")
	c.Set("k", item("v2", time.Minute))
	b.free()
	c.Wait()
	if v, ok := get(c, "k"); !ok || v != "v2" {
		t.Fatalf("Get(k) = %q, %v; want v2", v, ok)
	}
	checkExact(t, c)
}

func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var evicted, rejected []string
	c, _ := newCache(t, local.Options{
		MaxCost:  100,
		OnEvict:  func(k string) { mu.Lock(); evicted = append(evicted, k); mu.Unlock() },
		OnReject: func(k string) { mu.Lock(); rejected = append(rejected, k); mu.Unlock() },
	})
	c.Set("huge", local.Item[string]{Value: "x", Cost: 101, Expire: t0.Add(time.Hour).UnixNano()})
	for i := range 30 {
		c.Set(fmt.Sprint("k", i), local.Item[string]{Value: "x", Cost: 10, Expire: t0.Add(time.Hour).UnixNano()})
		c.Wait()
	}
	checkExact(t, c)
	mu.Lock()
	if !slices.Contains(rejected, "huge") {
		t.Errorf("rejected %q; want huge among them", rejected)
	}
	if len(evicted) == 0 {
		t.Error("no eviction reported")
	}
	for _, k := range evicted {
		if _, ok := c.Get(k); ok {
			t.Errorf("evicted %q is still served", k)
		}
	}
	calls := len(evicted) + len(rejected)
	mu.Unlock()
	c.Close() // drops every entry, reporting none
	mu.Lock()
	defer mu.Unlock()
	if n := len(evicted) + len(rejected); n != calls {
		t.Errorf("Close called the hooks %d times; want 0", n-calls)
	}
}

// TestDroppedSetsLeaveTheIndex: with Ristretto's goroutine held, Sets of
// new keys fill its Set buffer and the rest are dropped at once (Set
// returns false, no callback): they must leave the index too.
func TestDroppedSetsLeaveTheIndex(t *testing.T) {
	b := newBlocker()
	c, _ := newCache(t, local.Options{MaxCost: 1 << 20, OnReject: b.onReject})
	b.hold(t, c, 1<<20)
	const n = 40_000 // Ristretto's Set buffer holds 32Ki
	for i := range n {
		c.Set(fmt.Sprint("k", i), item("v", time.Minute))
	}
	if l := c.Len(); l >= n {
		t.Errorf("Len with the Set buffer full = %d; want fewer than %d (some Sets dropped)", l, n)
	}
	b.free()
	checkExact(t, c)
}

// TestDeleteFreesRistretto: Delete and DeleteMatching remove the entries
// from Ristretto, not only from the index, so that they stop taking room.
func TestDeleteFreesRistretto(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	for _, k := range []string{"a", "b", "c"} {
		c.Set(k, item("v", time.Minute))
	}
	c.Wait()
	c.Delete("a")
	c.DeleteMatching("b", func(k string) bool { return k == "b" })
	c.Wait()
	for _, e := range local.Stored(c) {
		if e.Key != "c" {
			t.Errorf("Ristretto still holds %q after its deletion", e.Key)
		}
	}
	checkExact(t, c)
}
