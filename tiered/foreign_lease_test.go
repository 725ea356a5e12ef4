package tiered_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

// TestForeignLeaseWaitedOnce: a lease with more life left than this
// fleet's LeaseTTL (here an hour, taken by a writer with other rules) is
// waited for once, then the key is loaded without filling, and counted.
// Without the check, the miss waits for the whole LeaseWait (a minute
// here), so the caller's two-second deadline ends it first.
func TestForeignLeaseWaitedOnce(t *testing.T) {
	rdb := newReal(t)
	ctx := context.Background()
	for _, old := range []bool{false, true} {
		rdb.FlushAll(ctx)
		st, err := remote.New(rdb, remote.Options{Namespace: "fl"})
		if err != nil {
			t.Fatal(err)
		}
		if _, won, _, err := st.Acquire(ctx, "g:k", time.Hour); err != nil || !won {
			t.Fatalf("Acquire = %v, %v", won, err)
		}
		c := newCache(t, tiered.Options{Redis: rdb, Namespace: "fl", LeaseWait: time.Minute})
		tiered.SetNoForeignLease(c, old)
		g := newGroup[string](t, c, "g", tiered.GroupOptions{})
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second) // a hang guard for the old behaviour
		v, err := g.Fetch(fctx, "k", constLoader("loaded"))
		cancel()
		s := c.Stats()
		if old {
			if !errors.Is(err, context.DeadlineExceeded) || s.LeasesForeign != 0 {
				t.Errorf("without the check: Fetch = %q, %v, LeasesForeign = %d; want the deadline, 0", v, err, s.LeasesForeign)
			}
			c.Close()
			continue
		}
		if err != nil || v != "loaded" {
			t.Fatalf("Fetch = %q, %v; want loaded", v, err)
		}
		if s.LeasesForeign != 1 || s.LeasesWaited != 1 || s.Loads != 1 {
			t.Errorf("LeasesForeign, LeasesWaited, Loads = %d, %d, %d; want 1, 1, 1", s.LeasesForeign, s.LeasesWaited, s.Loads)
		}
		if rec, err := st.Get(ctx, "g:k"); err != nil || rec.Kind != remote.KindLease {
			t.Errorf("Redis holds %v, %v; want the foreign lease, unfilled", rec.Kind, err)
		}
	}
}
