package tiered_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

func init() {
	failSafeCases["SoftTimeoutFromRead"] = failSafeSoftTimeoutFromRead
}

// failSafeSoftTimeoutFromRead: LoadSoftTimeout counts from the start of the
// Fetch's read of Redis, not from the reload lock: when the read alone
// took the whole soft timeout (the manual clock moves by it while Redis
// answers), the soft timer is started with nothing left and the caller
// gets the fallback while the load is still blocked; the load then fills
// in the background. Counted from the lock (SetSoftFromLock), the timer
// is started with the whole soft timeout again.
func failSafeSoftTimeoutFromRead(t *testing.T, rdb redis.UniversalClient) {
	const soft = time.Minute
	for _, fromLock := range []bool{false, true} {
		t.Run(fmt.Sprintf("fromLock=%v", fromLock), func(t *testing.T) {
			r := newFSRig(t, rdb, 1, tiered.GroupOptions{LoadSoftTimeout: soft})
			c := r.caches[0]
			tiered.SetSoftFromLock(c, fromLock)
			asked := make(chan time.Duration, 4)
			tiered.SetSoftTimer(c, func(d time.Duration) *time.Timer {
				asked <- d
				return time.NewTimer(d) // the real timer: 0 fires at once, a minute never in this test
			})
			id := fmt.Sprintf("from-%v", fromLock)
			r.cached(id)
			filled := make(chan struct{}, 1)
			tiered.SetHook(c, func(p string) {
				switch p {
				case "read-done":
					r.clk.Add(soft) // the read took the whole soft timeout
				case "filled":
					filled <- struct{}{}
				}
			})
			release := make(chan struct{})
			slow := func(context.Context, string) (string, error) { <-release; return "v2", nil }
			got := make(chan string, 1)
			go func() {
				v, fb, err := r.fetch(0, id, slow)
				if err != nil {
					t.Errorf("fetch: %v", err)
				}
				if fb != (v == "v1") {
					t.Errorf("fetch = %q, fallback %v; a fallback is v1 and only v1", v, fb)
				}
				got <- v
			}()
			d := <-asked
			if fromLock {
				if d != soft {
					t.Fatalf("counted from the lock, the soft timer was started with %v; want the whole %v", d, soft)
				}
				close(release)
				if v := <-got; v != "v2" {
					t.Fatalf("counted from the lock: %q; want v2 from the load (its soft timer had not fired)", v)
				}
				return
			}
			if d != 0 {
				t.Fatalf("the soft timer was started with %v after a read that took the soft timeout; want 0", d)
			}
			if v := <-got; v != "v1" {
				t.Fatalf("the caller got %q; want the fallback v1 while the load is blocked", v)
			}
			close(release)
			<-filled
		})
	}
}
