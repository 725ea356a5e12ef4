package tiered_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// loadNode is one node of a failover test: its recorder only counts, so it
// never blocks the bus however many invalidations arrive.
type loadNode struct {
	cache                    *tiered.Cache
	group                    *tiered.Group[string]
	lost, restored, received atomic.Int64
}

func newLoadNode(t *testing.T, rdb redis.UniversalClient, o tiered.Options) *loadNode {
	t.Helper()
	n := &loadNode{}
	o.Redis = rdb
	o.Recorder = tiered.RecorderFunc(func(e tiered.Event) {
		switch e.Kind {
		case tiered.EventBusLost:
			n.lost.Add(1)
		case tiered.EventBusRestored:
			n.restored.Add(1)
		case tiered.EventInvalidationReceived:
			n.received.Add(1)
		}
	})
	n.cache = newCache(t, o)
	n.group = newGroup[string](t, n.cache, "post", tiered.GroupOptions{})
	return n
}

// inL1 reports whether the node's L1 serves id (see fleetNode.inL1).
func (n *loadNode) inL1(id string) bool {
	before := n.group.Stats().L1Hits
	_, _ = n.group.Get(context.Background(), id)
	return n.group.Stats().L1Hits > before
}

// eventually polls cond until it holds, and fails the test after 60s. It
// waits for background work (a retry loop, a bus message, a server's
// election), it does not order the test's steps.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deployment is a Redis deployment a failover test runs on.
type deployment struct {
	client   func(t *testing.T) redis.UniversalClient
	opts     tiered.Options
	failover func(t *testing.T)
	// settle, if set, waits after the load until invalidations can
	// complete again (a replica back in sync for InvalidateReplicas).
	settle func(t *testing.T)
}

// failoverUnderLoad runs readers (Fetch and FetchMany on two nodes) and a
// writer (database update, then Delete on node a) across a failover, and
// checks: no read fails (the cache fails open), reads go on while the
// failover runs, and once the load stops, the bus is back on both nodes,
// no invalidation is pending and a fence invalidation has crossed, every
// read on either node returns the database's current value: no stale read
// after recovery.
func failoverUnderLoad(t *testing.T, d deployment) (a, b *loadNode) {
	o := d.opts
	o.Namespace, o.Heartbeat = "load", 200*time.Millisecond
	a, b = newLoadNode(t, d.client(t), o), newLoadNode(t, d.client(t), o)
	const keys = 40
	var db [keys]atomic.Int64
	load := func(_ context.Context, id string) (string, error) {
		i, _ := strconv.Atoi(id)
		return strconv.FormatInt(db[i].Load(), 10), nil
	}
	loadMany := func(ctx context.Context, ids []string) (map[string]string, error) {
		out := make(map[string]string, len(ids))
		for _, id := range ids {
			out[id], _ = load(ctx, id)
		}
		return out, nil
	}
	var reads, writes, failedWrites, readErrs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ctx := context.Background()
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := []*loadNode{a, b}[i%2]
				var err error
				if r == 0 {
					ids := make([]string, 8)
					for j := range ids {
						ids[j] = strconv.Itoa(rng.IntN(keys))
					}
					_, err = n.group.FetchMany(ctx, ids, loadMany)
				} else {
					_, err = n.group.Fetch(ctx, strconv.Itoa(rng.IntN(keys)), load)
				}
				if err != nil {
					readErrs.Add(1)
					t.Errorf("a read failed: %v", err)
				}
				reads.Add(1)
				if i%16 == 15 {
					time.Sleep(100 * time.Microsecond) // pacing: leave the writer some CPU
				}
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(99, 7))
		for {
			select {
			case <-stop:
				return
			default:
			}
			i := rng.IntN(keys)
			db[i].Add(1)
			if err := a.group.Invalidate(ctx, strconv.Itoa(i)); err != nil {
				failedWrites.Add(1) // retried in the background
			}
			writes.Add(1)
			time.Sleep(2 * time.Millisecond) // pacing: let reads hit L1 between writes
		}
	})
	progress := func(r, w int64) {
		eventually(t, "load progresses", func() bool { return reads.Load() >= r && writes.Load() >= w })
	}
	progress(300, 30)
	before := reads.Load()
	d.failover(t)
	if reads.Load() == before {
		t.Error("no read completed while the failover ran")
	}
	progress(reads.Load()+300, writes.Load()+30)
	close(stop)
	wg.Wait()
	t.Logf("%d reads, %d writes (%d failed, retried); bus lost/restored: a %d/%d, b %d/%d",
		reads.Load(), writes.Load(), failedWrites.Load(), a.lost.Load(), a.restored.Load(), b.lost.Load(), b.restored.Load())

	if d.settle != nil {
		d.settle(t)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, n := range []*loadNode{a, b} {
		if err := n.cache.WaitBus(wctx); err != nil {
			t.Fatalf("the bus did not recover: %v", err)
		}
	}
	eventually(t, "pending invalidations retried", func() bool { return a.cache.PendingInvalidations() == 0 })
	if _, err := b.group.Fetch(ctx, "fence", constLoader("f")); err != nil {
		t.Fatal(err)
	}
	b.cache.WaitL1()
	if !b.inL1("fence") {
		t.Fatal("the fence is not in L1")
	}
	if err := a.group.Invalidate(ctx, "fence"); err != nil {
		t.Fatalf("Invalidate after recovery: %v", err)
	}
	eventually(t, "the fence invalidation crosses the bus", func() bool { return !b.inL1("fence") })
	for i := range keys {
		want := strconv.FormatInt(db[i].Load(), 10)
		for name, n := range map[string]*loadNode{"a": a, "b": b} {
			if v, err := n.group.Fetch(ctx, strconv.Itoa(i), load); err != nil || v != want {
				t.Errorf("after recovery node %s reads key %d = %q, %v; want %q (stale)", name, i, v, err, want)
			}
		}
	}
	return a, b
}

// busChannel is the bus channel of namespace ns.
func busChannel(ns string) string { return ns + ":tiercache:bus" }

// TestClusterFailoverUnderLoad: failovers of the master that holds the bus
// channel, under load: a manual failover (CLUSTER FAILOVER on its replica)
// with plain and with sharded pub/sub (where the server ends the
// subscriptions, so both nodes lose the bus and recover), and the master
// killed outright with InvalidateReplicas (the writes to its shard fail
// and are retried until the killed node is back as a replica).
func TestClusterFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    tiered.Options
		kill    bool
		wantBus bool // both nodes must lose the bus
	}{
		{name: "manual", opts: tiered.Options{}},
		{name: "manual-sharded", opts: tiered.Options{ShardedPubSub: true}, wantBus: true},
		{name: "kill-wait", opts: tiered.Options{InvalidateReplicas: 1}, kill: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl := redistest.StartCluster(t)
			var killed *redistest.Node
			d := deployment{
				client: func(t *testing.T) redis.UniversalClient { return cl.Client(t) },
				opts:   tc.opts,
				failover: func(t *testing.T) {
					m := cl.MasterOf(t, busChannel("load"))
					if tc.kill {
						killed = m
						cl.KillMaster(t, m)
						return
					}
					cl.Failover(t, cl.ReplicaOf(t, m))
				},
			}
			if tc.kill {
				d.settle = func(t *testing.T) { cl.Restart(t, killed) }
			}
			a, b := failoverUnderLoad(t, d)
			if tc.wantBus && (a.lost.Load() == 0 || b.lost.Load() == 0) {
				t.Fatalf("bus losses a %d, b %d; want the server's unsubscribe on both", a.lost.Load(), b.lost.Load())
			}
		})
	}
}

// TestSentinelFailoverUnderLoad: a Sentinel failover under load, with
// InvalidateReplicas. A Sentinel failover does not stop the former
// primary's clients: writes it acknowledges after the replica's promotion
// are lost when it becomes a replica, which only the wait for a replica
// reveals (the writes fail and are retried on the new primary).
func TestSentinelFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	failoverUnderLoad(t, deployment{
		client:   func(t *testing.T) redis.UniversalClient { return s.Client(t) },
		opts:     tiered.Options{InvalidateReplicas: 1},
		failover: func(t *testing.T) { s.Failover(t) },
		settle:   func(t *testing.T) { s.WaitReplicaInSync(t) },
	})
}
