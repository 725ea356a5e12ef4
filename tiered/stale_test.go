package tiered_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// staleFill runs the classic cache-aside race on one node, forced step by
// step: a load reads version 1 from the database and blocks; the database is
// updated to version 2 and the key invalidated; then the load finishes. It
// reports whether version 1 ended up in L2 and in L1.
func staleFill(t *testing.T, rdb redis.UniversalClient, invalidate func(*tiered.Group[string]) error, noCAS bool) (inL2, inL1 bool) {
	t.Helper()
	ctx := context.Background()
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "stale"})
	tiered.SetNoCAS(c, noCAS)
	g := newGroup[string](t, c, "post", tiered.GroupOptions{})
	var db atomic.Value
	db.Store("v1")
	read, release := make(chan struct{}), make(chan struct{})
	done := make(chan string)
	go func() {
		v, _ := g.Fetch(ctx, "1", func(context.Context, string) (string, error) {
			v := db.Load().(string)
			close(read)
			<-release
			return v, nil
		})
		done <- v
	}()
	<-read
	db.Store("v2")
	if err := invalidate(g); err != nil {
		t.Fatal(err)
	}
	// A Set puts v2 in L1: let it land first, or Ristretto may refuse the
	// unprotected v1 fill as a second queued Set of a new key.
	c.WaitL1()
	close(release)
	if v := <-done; v != "v1" {
		t.Fatalf("the racing Fetch returned %q; want v1 (its own load)", v)
	}
	c.WaitL1()
	raw, err := rdb.Get(ctx, "stale:post:1").Bytes()
	inL2 = err == nil && len(raw) > 0 && string(raw[len(raw)-4:]) == `"v1"`
	// L1 alone: with Redis emptied, a Get can only find v1 in L1.
	rdb.Del(ctx, "stale:post:1")
	v, err := g.Get(ctx, "1")
	inL1 = err == nil && v == "v1"
	if err != nil && !errors.Is(err, tiered.ErrNotCached) {
		t.Fatal(err)
	}
	return inL2, inL1
}

func TestNoStaleFill(t *testing.T) {
	backends := map[string]func(t *testing.T) redis.UniversalClient{
		"miniredis": func(t *testing.T) redis.UniversalClient { r, _ := newMini(t); return r },
		"redis":     func(t *testing.T) redis.UniversalClient { return newReal(t) },
	}
	invalidations := map[string]func(*tiered.Group[string]) error{
		"Invalidate": func(g *tiered.Group[string]) error { return g.Invalidate(context.Background(), "1") },
		"Set":        func(g *tiered.Group[string]) error { return g.Set(context.Background(), "1", "v2") },
	}
	for bname, backend := range backends {
		for iname, inv := range invalidations {
			t.Run(bname+"/"+iname, func(t *testing.T) {
				if inL2, inL1 := staleFill(t, backend(t), inv, false); inL2 || inL1 {
					t.Fatalf("stale v1 installed: in L2 %v, in L1 %v", inL2, inL1)
				}
			})
			// The same race with the compare-and-set switched off must leave
			// v1 behind: the test catches the bug it guards against.
			t.Run(bname+"/"+iname+"/unprotected", func(t *testing.T) {
				if inL2, inL1 := staleFill(t, backend(t), inv, true); !inL2 || !inL1 {
					t.Fatalf("without compare-and-set v1 should be installed: in L2 %v, in L1 %v", inL2, inL1)
				}
			})
		}
	}
}
