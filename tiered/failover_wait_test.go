package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

// dialGate holds a client's new connections while a test keeps it shut.
type dialGate struct {
	mu   sync.Mutex // protects shut and open
	shut bool
	open chan struct{} // closed when the gate opens
}

// wrap returns a dialer that waits at the gate, then calls next.
func (g *dialGate) wrap(next func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		g.mu.Lock()
		shut, open := g.shut, g.open
		g.mu.Unlock()
		if shut {
			select {
			case <-open:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return next(ctx, network, addr)
	}
}

func (g *dialGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut, g.open = true, make(chan struct{})
}

func (g *dialGate) reopen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		g.shut = false
		close(g.open)
	}
}

// TestShardedFailoverFlushes: with sharded pub/sub, a failover of the
// channel's shard ends node B's subscription; node A's invalidation sent
// before B has subscribed again never reaches B. B's new connections are
// held at a gate meanwhile, so the invalidation always falls in that
// window. B must not serve the invalidated value afterwards; with the
// flush on a lost subscription switched off it does, so the test catches
// the bug the flush prevents.
func TestShardedFailoverFlushes(t *testing.T) {
	t.Parallel()
	for _, flush := range []bool{true, false} {
		t.Run(fmt.Sprintf("flush=%v", flush), func(t *testing.T) {
			t.Parallel()
			if stale := shardedFailoverScenario(t, flush); stale == flush {
				t.Fatalf("node B served the invalidated value: %v; want %v", stale, !flush)
			}
		})
	}
}

func shardedFailoverScenario(t *testing.T, flush bool) (stale bool) {
	cl := redistest.StartCluster(t)
	ctx := context.Background()
	// Heartbeats too rare to notice anything: only the server's
	// SUNSUBSCRIBE tells B.
	o := tiered.Options{Namespace: "sh", ShardedPubSub: true, Heartbeat: time.Hour}
	a := newFleetNodeOn(t, cl.Client(t), o)
	gate := &dialGate{}
	bopts := cl.Options()
	bopts.Dialer = gate.wrap(bopts.Dialer)
	brdb := redis.NewClusterClient(bopts)
	t.Cleanup(func() { brdb.Close() })
	t.Cleanup(gate.reopen) // before the client closes: nothing stays held
	b := newFleetNodeOn(t, brdb, o)
	tiered.SetNoFlush(b.cache, !flush)
	if _, err := b.group.Fetch(ctx, "1", constLoader("old")); err != nil {
		t.Fatal(err)
	}
	b.cache.WaitL1()
	if !b.inL1(t, "1") {
		t.Fatal("the value is not in B's L1")
	}

	gate.close()
	cl.Failover(t, cl.ReplicaOf(t, cl.MasterOf(t, busChannel("sh"))))
	b.expect(t, tiered.EventBusLost)
	if err := a.group.Set(ctx, "1", "new"); err != nil { // B is not subscribed
		t.Fatal(err)
	}
	gate.reopen()
	b.expect(t, tiered.EventBusRestored)
	v, err := b.group.Fetch(ctx, "1", constLoader("loaded"))
	if err != nil {
		t.Fatal(err)
	}
	return v == "old"
}

// TestKillMasterWithWait: an invalidation acknowledged by a master whose
// replica never received it is lost when the master dies and the replica
// takes over (replication is asynchronous): the old value is back in
// Redis, and every node reads it again after recovery. The test holds the
// replica's link with a proxy so that the replica always misses it. With
// InvalidateReplicas the invalidation is not acknowledged: Delete returns
// ErrNotReplicated, the cache retries it on the promoted replica, and
// after recovery no node reads the old value.
func TestKillMasterWithWait(t *testing.T) {
	t.Parallel()
	for _, wait := range []bool{true, false} {
		t.Run(fmt.Sprintf("wait=%v", wait), func(t *testing.T) {
			t.Parallel()
			acked, stale := killMasterScenario(t, wait)
			switch {
			case wait && acked:
				t.Fatal("Delete reported success for an invalidation no replica had")
			case wait && stale:
				t.Fatal("a node read the invalidated value after recovery")
			case !wait && !(acked && stale):
				t.Fatalf("without waiting Delete should succeed and the value come back: acked %v, stale %v", acked, stale)
			}
		})
	}
}

func killMasterScenario(t *testing.T, wait bool) (acked, stale bool) {
	cl := redistest.StartCluster(t)
	ctx := context.Background()
	o := tiered.Options{Namespace: "kw", Heartbeat: 200 * time.Millisecond}
	if wait {
		o.InvalidateReplicas, o.InvalidateReplicasTimeout = 1, 500*time.Millisecond
	}
	a := newFleetNodeOn(t, cl.Client(t), o)
	b := newFleetNodeOn(t, cl.Client(t), o)
	m := cl.MasterOf(t, "kw:post:1")
	proxy := cl.ProxyReplication(t, m)
	if _, err := b.group.Fetch(ctx, "1", constLoader("old")); err != nil {
		t.Fatal(err)
	}
	cl.WaitReplicated(t) // the replica has the old value
	proxy.Cut()          // and will get nothing more from m

	err := a.group.Invalidate(ctx, "1")
	if err != nil && !errors.Is(err, remote.ErrNotReplicated) {
		t.Fatalf("Delete: %v", err)
	}
	acked = err == nil
	cl.KillMaster(t, m)
	cl.Restart(t, m) // back as the new master's replica: the shard has a replica again

	eventually(t, "invalidations retried", func() bool { return a.cache.PendingInvalidations() == 0 })
	for name, n := range map[string]*fleetNode{"a": a, "b": b} {
		var v string
		eventually(t, "Redis reachable from node "+name, func() bool {
			var err error
			v, err = n.group.Get(ctx, "1")
			return err == nil || errors.Is(err, tiered.ErrNotCached)
		})
		if v == "old" {
			stale = true
		}
	}
	return acked, stale
}
