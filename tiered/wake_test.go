package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// TestWakeEndsTheWait: node b waits for the lease of node a's load with its
// polls switched off (every pause an hour), so only a wake notice can make
// it look again. It marks a's lease; a's fill (or its failed load's
// release, or a fill that an invalidation beat) publishes the key on the
// wake channel, and b returns: with the value (one load in all; a's value
// from its hand-off when the invalidation beat its fill), or, after a
// failed load, with its own. With b's marking and listening switched off,
// a's fill publishes nothing (a sentinel published after a's load ended
// arrives first) and b is still waiting once the sentinel arrived.
func TestWakeEndsTheWait(t *testing.T) {
	t.Run("Server", func(t *testing.T) {
		addr := startServer(t)
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rdb.Close() })
		wakeEndsTheWait(t, rdb, rdb, func(t *testing.T, o tiered.Options) *fleetNode { return newFleetNode(t, addr, o) })
	})
	t.Run("Cluster", func(t *testing.T) {
		cl := redistest.StartCluster(t)
		cc := cl.Client(t)
		key := "wake:" + "post:k"
		master, err := cc.MasterForKey(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		// The sentinel goes through the key's master: its messages reach a
		// subscriber in the order that master sent them.
		wakeEndsTheWait(t, cc, master, clusterNodes(cl, nil))
	})
}

func wakeEndsTheWait(t *testing.T, rdb redis.UniversalClient, keyNode redis.Cmdable, newNode nodeFactory) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		fail       bool // a's load fails
		invalidate bool // c invalidates the key during a's load
	}{{name: "Fill"}, {name: "FailedLoad", fail: true}, {name: "Invalidated", invalidate: true}} {
		for _, off := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/wake off=%v", tc.name, off), func(t *testing.T) {
				ns := fmt.Sprintf("wake%d", time.Now().UnixNano())
				o := tiered.Options{Namespace: ns, LeaseWait: time.Hour}
				a, b := newNode(t, o), newNode(t, o)
				tiered.SetPollPause(b.cache, time.Hour)
				tiered.SetNoWakeWait(b.cache, off)
				tiered.SetHandOffWatch(b.cache, time.Hour)
				rkey := ns + ":" + b.group.Key("k")
				sub := rdb.Subscribe(ctx, tiered.WakeChannel(ns))
				t.Cleanup(func() { sub.Close() })
				if _, err := sub.Receive(ctx); err != nil { // the confirmation
					t.Fatal(err)
				}
				var loads atomic.Int64
				started, release := make(chan struct{}), make(chan struct{})
				slow := func(ctx context.Context, id string) (string, error) {
					loads.Add(1)
					close(started)
					<-release
					if tc.fail {
						return "", errors.New("the database is down")
					}
					return "a", nil
				}
				fast := func(ctx context.Context, id string) (string, error) {
					loads.Add(1)
					return "b", nil
				}
				guard, cancel := context.WithTimeout(ctx, 30*time.Second) // a hang guard only
				defer cancel()
				aDone := make(chan error, 1)
				go func() {
					_, err := a.group.Fetch(guard, "k", slow)
					aDone <- err
				}()
				<-started
				bctx, bcancel := context.WithCancel(guard)
				defer bcancel()
				type result struct {
					v   string
					err error
				}
				bDone := make(chan result, 1)
				go func() {
					v, err := b.group.Fetch(bctx, "k", fast)
					bDone <- result{v, err}
				}()
				waitUntil(t, "b found a's lease", func() bool { return b.cache.Stats().LeasesBusy == 1 })
				if !off {
					waitUntil(t, "b marked a's lease", func() bool {
						return rdb.GetRange(ctx, rkey, 14, 14).Val() == "\x01"
					})
				}
				if tc.invalidate {
					if err := a.group.Invalidate(ctx, "k"); err != nil {
						t.Fatal(err)
					}
				}
				close(release)
				if err := <-aDone; (err != nil) != tc.fail {
					t.Fatalf("a's Fetch: %v", err)
				}
				if err := keyNode.Publish(ctx, tiered.WakeChannel(ns), "sentinel").Err(); err != nil {
					t.Fatal(err)
				}
				msg, err := sub.ReceiveMessage(guard)
				if err != nil {
					t.Fatal(err)
				}
				if off {
					// A fill announces only a lease marked as waited for; a
					// hand-off (a failed load, a fill an invalidation beat)
					// is announced whoever waits, and b does not listen.
					for msg.Payload != "sentinel" {
						if !tc.fail && !tc.invalidate {
							t.Fatalf("a published %q with no node marked as waiting", msg.Payload)
						}
						if msg, err = sub.ReceiveMessage(guard); err != nil {
							t.Fatal(err)
						}
					}
					select {
					case r := <-bDone:
						t.Fatalf("b returned %q, %v with its polls off and no notice", r.v, r.err)
					default:
					}
					return
				}
				if msg.Payload != rkey {
					t.Fatalf("the first wake notice is %q; want %q", msg.Payload, rkey)
				}
				var r result
				select {
				case r = <-bDone:
				case <-guard.Done():
					t.Fatal("b still waits 30s after the notice")
				}
				want, wantLoads := "a", int64(1)
				if tc.fail {
					want, wantLoads = "b", 2
				}
				if r.err != nil || r.v != want || loads.Load() != wantLoads {
					t.Fatalf("b read %q, %v after %d loads; want %q after %d", r.v, r.err, loads.Load(), want, wantLoads)
				}
				if n := tiered.WakeWaits(b.cache); n != 0 {
					t.Fatalf("%d keys still listened on after the wait", n)
				}
			})
		}
	}
}
