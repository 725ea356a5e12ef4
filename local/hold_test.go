package local_test

import (
	"testing"
	"time"

	"github.com/tiercache/tiercache/local"
)

// TestHold: while a key is held, no fill of it installs, whatever its
// token; Release vetoes the loads that began during the hold; ReleaseSet
// installs only when no other invalidation or hold of the key came in
// between.
func TestHold(t *testing.T) {
	c, _ := newCache(t, local.Options{})
	c.Set("k", item("old", time.Minute))
	c.Wait()
	if n := c.Hold("k"); n != 1 {
		t.Fatalf("Hold removed %d entries; want 1", n)
	}
	if _, ok := c.Get("k"); ok {
		t.Fatal("a held key is served")
	}
	during := c.Begin()
	if c.SetIf("k", during, item("read during the hold", time.Minute)) {
		t.Fatal("SetIf installed a held key")
	}
	c.Release("k")
	if c.SetIf("k", during, item("read during the hold", time.Minute)) {
		t.Fatal("SetIf with a token from during the hold installed after Release")
	}
	if !c.SetIf("k", c.Begin(), item("after", time.Minute)) {
		t.Fatal("SetIf after Release refused")
	}

	// ReleaseSet installs when nothing came in between...
	c.Hold("s")
	tok := c.Begin()
	if !c.ReleaseSet("s", tok, item("mine", time.Minute)) {
		t.Fatal("ReleaseSet refused with nothing in between")
	}
	c.Wait()
	if e, ok := c.Get("s"); !ok || e.Value != "mine" {
		t.Fatalf("Get after ReleaseSet = %v, %v", e, ok)
	}
	// ...not when a Delete came in between...
	c.Hold("s")
	tok = c.Begin()
	c.Delete("s")
	if c.ReleaseSet("s", tok, item("mine 2", time.Minute)) {
		t.Fatal("ReleaseSet installed over a later Delete")
	}
	// ...nor while another hold is in progress (nested).
	c.Hold("s")
	tok = c.Begin()
	c.Hold("s")
	if c.ReleaseSet("s", tok, item("mine 3", time.Minute)) {
		t.Fatal("ReleaseSet installed while another hold was in progress")
	}
	if c.SetIf("s", c.Begin(), item("fill", time.Minute)) {
		t.Fatal("SetIf installed while the second hold was in progress")
	}
	c.Release("s")
	if !c.SetIf("s", c.Begin(), item("fill", time.Minute)) {
		t.Fatal("SetIf refused after every hold ended")
	}
	if c.Invalidated("s", c.Begin()) {
		t.Fatal("Invalidated with a fresh token")
	}
}
