package remote_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tiercache/tiercache/remote"
)

// TestBreakerWritePerClusterMaster: a write over keys of two masters, one
// of which cannot serve, charges that master alone; the healthy master's
// breaker stays closed and it keeps serving. The writes go both through
// the cluster client's pipeline and, with WaitReplicas, through each
// master's own pipeline followed by WAIT (the fake cluster's servers
// answer WAIT with 0 replicas: an ErrNotReplicated, which is a master
// that answered).
func TestBreakerWritePerClusterMaster(t *testing.T) {
	ctx := context.Background()
	writes := []struct {
		name string
		// write writes keys; mixed[0] and mixed[2] are a's, mixed[1] b's.
		write func(s *remote.Store, mixed []string) error
	}{
		// One key has one master: Set charges that master alone. It is
		// here so that the table covers every write behind guardedWrite.
		{"Set", func(s *remote.Store, mixed []string) error {
			return s.Set(ctx, mixed[1], value("v", time.Minute), time.Minute)
		}},
		{"Unlink", func(s *remote.Store, mixed []string) error {
			return s.Unlink(ctx, mixed...)
		}},
		{"MarkStale", func(s *remote.Store, mixed []string) error {
			now := time.Now().UnixMilli()
			return s.MarkStale(ctx, mixed, now+time.Minute.Milliseconds(), now)
		}},
		{"MarkStale over", func(s *remote.Store, mixed []string) error { // an Unlink
			now := time.Now().UnixMilli()
			return s.MarkStale(ctx, mixed, now, now)
		}},
	}
	for _, w := range writes {
		for _, wait := range []int{0, 1} {
			for _, down := range []bool{false, true} {
				name := w.name
				if wait > 0 {
					name += "/WaitReplicas"
				}
				if down {
					name += "/b down"
				} else {
					name += "/b loading"
				}
				t.Run(name, func(t *testing.T) {
					fc := newFakeCluster(t, "ns")
					bs := newBreakerStore(t, fc.rdb, remote.Options{
						Namespace: "ns", BreakerFailures: 2, BreakerCooldown: time.Second,
						WaitReplicas: wait, WaitTimeout: 10 * time.Millisecond,
					})
					mixed := []string{fc.aKey[0], fc.bKey[0], fc.aKey[1]}
					if _, err := bs.GetMany(ctx, mixed); err != nil { // both masters known
						t.Fatal(err)
					}
					if down {
						fc.b.Close()
					} else {
						fc.b.SetError(loading)
					}
					aSent := fc.a.CommandCount()
					for i := range 2 {
						err := w.write(bs.Store, mixed)
						if err == nil || errors.Is(err, remote.ErrBreakerOpen) {
							t.Fatalf("write #%d with b failing = %v; want b's error", i, err)
						}
					}
					bs.expect(t, fc.epB, true)
					bs.expectNone(t) // a answered every time: not charged with b's failures
					if remote.BreakerOpen(bs.Store, fc.epA) {
						t.Fatal("a's breaker opened on b's failures")
					}
					if w.name != "Set" && fc.a.CommandCount() == aSent {
						t.Fatal("the writes never reached a")
					}
					// With b's server gone, go-redis may stall the first
					// call on a while it reloads the layout: a timeout is
					// a's own failure; a refusal is b's charged to a.
					for try := 1; ; try++ {
						_, err := bs.Get(ctx, fc.aKey[2])
						if err == nil {
							break
						}
						if errors.Is(err, remote.ErrBreakerOpen) || try == 2 {
							t.Fatalf("Get on a after b's failures = %v; want a served", err)
						}
						t.Logf("Get on a = %v; again", err)
					}
					if _, err := bs.Get(ctx, fc.bKey[1]); !errors.Is(err, remote.ErrBreakerOpen) {
						t.Fatalf("Get on b after its failures = %v; want ErrBreakerOpen", err)
					}
				})
			}
		}
	}
}
