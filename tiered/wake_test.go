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
	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

// TestWakeEndsTheWait: node b waits for the lease of node a's load with its
// polls switched off (every pause an hour), so only a wake notice can make
// it look again. It marks a's lease; a's fill (or its failed load's
// release, or a fill that an invalidation beat) publishes the key on the
// wake channel, and b returns: with the value, which the fill's notice
// carries (one load in all), with a's value from its hand-off when the
// invalidation beat its fill (the notice names the key, and b reads), or,
// after a failed load, with its own. With b's marking and listening switched off,
// a's fill publishes nothing (a sentinel published once the fill is in
// Redis arrives first) and b is still waiting once the sentinel arrived.
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
				if off {
					// a's Fetch may return before its fill or hand-off
					// reached Redis: the sentinel goes out once the fill is
					// there (for the fill; the other cases announce their
					// hand-off whoever waits, before or after it).
					if !tc.fail && !tc.invalidate {
						waitUntil(t, "a's fill reached Redis", func() bool {
							v := rdb.Get(ctx, rkey).Val()
							return len(v) > 2 && v[2] == byte(remote.KindValue)
						})
					}
					if err := keyNode.Publish(ctx, tiered.WakeChannel(ns), "sentinel").Err(); err != nil {
						t.Fatal(err)
					}
				}
				msg, err := sub.ReceiveMessage(guard)
				if err != nil {
					t.Fatal(err)
				}
				if off {
					// A fill announces only a lease marked as waited for; a
					// hand-off (a failed load, a fill an invalidation beat)
					// is announced whoever waits, and b does not listen.
					for msg.Payload != "sentinel" { // a hand-off's notice: the key only
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
				// A fill's notice carries the value; a failed load's or a
				// lost lease's announces the key only.
				if key, _, rec, has, ok := remote.ParseWake(msg.Payload); !ok || key != rkey || has != (!tc.fail && !tc.invalidate) || has && rec.Kind != remote.KindValue {
					t.Fatalf("the first wake notice is %q (key %q, value %v); want %q", msg.Payload, key, has, rkey)
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

// TestForgedWakeValueWithBusKey: with a BusKey, a node takes only the key
// from a wake notice (notices are not signed): a notice forged with a value
// for the very lease it waits for makes the waiting node read Redis, find
// the lease still there, and wait on for the real value. With values taken
// from notices all the same (the switch), the forged value is what the read
// returns.
func TestForgedWakeValueWithBusKey(t *testing.T) {
	for _, protected := range []bool{true, false} {
		t.Run(fmt.Sprintf("key only=%v", protected), func(t *testing.T) {
			wrongNotice(t, true, func(c *tiered.Cache) { tiered.SetWakeKeyOnly(c, protected) }, protected)
		})
	}
}

// TestOtherLeasesNoticeIsRead: a notice from the fill of another lease than
// the one a node waits for may be older than what the node saw: it reached
// the node late, after an invalidation the node (its writer, say) had
// applied before its read began. The node reads Redis instead of taking its
// value. With the lease check off (the switch) it serves the old value.
func TestOtherLeasesNoticeIsRead(t *testing.T) {
	for _, protected := range []bool{true, false} {
		t.Run(fmt.Sprintf("lease check=%v", protected), func(t *testing.T) {
			wrongNotice(t, false, func(c *tiered.Cache) { tiered.SetNoNoteLeaseCheck(c, !protected) }, protected)
		})
	}
}

// wrongNotice: node b waits for a's lease with its polls off; a notice
// with the value "forged" arrives for that key (for a's lease with
// sameLease, else for another); with the protection on, b reads Redis on
// it, finds the lease, and returns a's real value; with it off, b returns
// the notice's value.
func wrongNotice(t *testing.T, busKey bool, set func(*tiered.Cache), protected bool) {
	addr := startServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	ns := fmt.Sprintf("forge%d", time.Now().UnixNano())
	o := tiered.Options{Namespace: ns, LeaseWait: time.Hour}
	if busKey {
		o.BusKey = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
	}
	a, b := newFleetNode(t, addr, o), newFleetNode(t, addr, o)
	tiered.SetPollPause(b.cache, time.Hour)
	set(b.cache)
	rkey := ns + ":" + b.group.Key("k")
	started, release := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = a.group.Fetch(ctx, "k", func(context.Context, string) (string, error) {
			close(started)
			<-release
			return "real", nil
		})
	}()
	defer close(release)
	<-started
	guard, cancel := context.WithTimeout(ctx, 30*time.Second) // a hang guard only
	defer cancel()
	bDone := make(chan string, 1)
	go func() {
		v, err := b.group.Fetch(guard, "k", constLoader("b"))
		if err != nil {
			v = err.Error()
		}
		bDone <- v
	}()
	waitUntil(t, "b marked a's lease", func() bool { return rdb.GetRange(ctx, rkey, 14, 14).Val() == "\x01" })
	lease := rdb.GetRange(ctx, rkey, 0, 10).Val() // the identity of the lease b waits for
	if !busKey {
		other := remote.Encode(remote.Record{Kind: remote.KindLease, Token: remote.NewToken()})
		lease = string(other[:11])
	}
	env := remote.Encode(remote.Record{Kind: remote.KindValue, Token: remote.NewToken(), Expire: time.Now().Add(time.Hour).UnixMilli(), Payload: []byte(`"forged"`)})
	notice := fmt.Sprintf("\x00%d:%s%s%s", len(rkey), rkey, lease, env)
	if err := rdb.Publish(ctx, tiered.WakeChannel(ns), notice).Err(); err != nil {
		t.Fatal(err)
	}
	if !protected {
		if v := <-bDone; v != "forged" {
			t.Fatalf("without the protection b read %q; want the notice's value", v)
		}
		return
	}
	// b read Redis on the notice, found the lease, and waits on.
	waitUntil(t, "b read Redis on the notice", func() bool { return tiered.WakeReads(b.cache) == 1 })
	release <- struct{}{}
	if v := <-bDone; v != "real" {
		t.Fatalf("b read %q; want the holder's value", v)
	}
}
