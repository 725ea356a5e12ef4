package local_test

import (
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/local"
)

// TestStoredAndCost: Stored counts the entries handed to Ristretto (not a
// vetoed SetIf), so that Stored minus the rejections counts admissions; Cost
// follows what Ristretto holds through replacement and deletion.
func TestStoredAndCost(t *testing.T) {
	var mu sync.Mutex
	rejected := 0
	c, _ := newCache(t, local.Options{MaxCost: 1000, OnReject: func(string) { mu.Lock(); rejected++; mu.Unlock() }})
	if got := c.MaxCost(); got != 1000 {
		t.Fatalf("MaxCost = %d; want 1000", got)
	}
	stale := c.Begin()
	c.Set("a", item("0123456789", time.Minute)) // cost 10
	c.SetIf("b", c.Begin(), item("01234567890123456789", time.Minute))
	c.Delete("c")
	c.SetIf("c", stale, item("x", time.Minute)) // vetoed by the Delete: not stored
	c.Set("big", local.Item[string]{Value: "big", Cost: 1001, Expire: t0.Add(time.Minute).UnixNano()})
	c.Wait()
	mu.Lock()
	rej := rejected
	mu.Unlock()
	if got := c.Stored(); got != 3 {
		t.Errorf("Stored = %d; want 3 (a, b, big)", got)
	}
	if rej != 1 {
		t.Errorf("rejected = %d; want 1 (big)", rej)
	}
	if got := c.Cost(); got != 30 {
		t.Errorf("Cost = %d; want 30 (a and b)", got)
	}
	c.Set("a", item("012345678901234", time.Minute)) // replaced: cost 15
	c.Delete("b")
	c.Wait()
	if got := c.Cost(); got != 15 {
		t.Errorf("Cost after replace and delete = %d; want 15", got)
	}
	if got := c.Stored(); got != 4 {
		t.Errorf("Stored after replace = %d; want 4", got)
	}
	c.Close()
	if got := c.Cost(); got != 0 {
		t.Errorf("Cost after Close = %d; want 0", got)
	}
}
