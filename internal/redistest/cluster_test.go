package redistest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
)

// setKeys writes n keys through c and returns them.
func setKeys(t *testing.T, c *redis.ClusterClient, n int) []string {
	t.Helper()
	ctx := context.Background()
	keys := make([]string, n)
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range keys {
			keys[i] = fmt.Sprintf("key:%d", i)
			p.Set(ctx, keys[i], i, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pipelined SETs: %v", err)
	}
	return keys
}

// dbsizes returns the DBSIZE of every node, by address.
func dbsizes(t *testing.T, nodes []*redistest.Node) map[string]int64 {
	t.Helper()
	out := make(map[string]int64)
	for _, n := range nodes {
		if !n.Running() {
			continue
		}
		sz, err := n.Admin().DBSize(context.Background()).Result()
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", n.Addr(), err)
		}
		out[n.Addr()] = sz
	}
	return out
}

func TestClusterStartsShardedAndReplicated(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	nodes := cl.Nodes()
	if len(nodes) != 6 {
		t.Fatalf("Nodes() = %d; want 6", len(nodes))
	}
	for _, n := range nodes {
		if n.Port() > 55535 || n.Port() == 6379 {
			t.Errorf("node on port %d; want at most 55535 and never 6379", n.Port())
		}
	}
	masters := cl.Masters(t)
	if len(masters) != 3 {
		t.Fatalf("Masters() = %d; want 3", len(masters))
	}
	c := cl.Client(t)
	keys := setKeys(t, c, 300)
	cl.WaitReplicated(t)
	sizes := dbsizes(t, nodes)
	var total int64
	for _, m := range masters {
		if sizes[m.Addr()] == 0 {
			t.Errorf("master %s holds no key of 300", m.Addr())
		}
		total += sizes[m.Addr()]
		if r := cl.ReplicaOf(t, m); sizes[r.Addr()] != sizes[m.Addr()] {
			t.Errorf("replica %s holds %d keys, its master %d", r.Addr(), sizes[r.Addr()], sizes[m.Addr()])
		}
	}
	if total != int64(len(keys)) {
		t.Fatalf("masters hold %d keys; want %d", total, len(keys))
	}
	m := cl.MasterOf(t, keys[0])
	if n, _ := m.Admin().Exists(context.Background(), keys[0]).Result(); n != 1 {
		t.Fatalf("MasterOf(%q) = %s, which does not hold it", keys[0], m.Addr())
	}
}

func TestClusterFailoverKillRestart(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	c := cl.Client(t)
	ctx := context.Background()
	keys := setKeys(t, c, 100)
	cl.WaitReplicated(t)

	m := cl.MasterOf(t, keys[0])
	r := cl.ReplicaOf(t, m)
	cl.Failover(t, r)
	if got := cl.MasterOf(t, keys[0]); got != r {
		t.Fatalf("after Failover the master of %q is %s; want the replica %s", keys[0], got.Addr(), r.Addr())
	}
	if got := cl.ReplicaOf(t, r); got != m {
		t.Fatalf("after Failover the replica of %s is %s; want the former master %s", r.Addr(), got.Addr(), m.Addr())
	}
	if v, err := c.Get(ctx, keys[0]).Result(); err != nil || v != "0" {
		t.Fatalf("GET %q after a manual failover = %q, %v; want \"0\"", keys[0], v, err)
	}

	promoted := cl.KillMaster(t, r)
	if promoted != m {
		t.Fatalf("KillMaster promoted %s; want the only replica %s", promoted.Addr(), m.Addr())
	}
	if got := cl.MasterOf(t, keys[0]); got != m || r.Running() {
		t.Fatalf("after KillMaster: master %s, killed node running %v", got.Addr(), r.Running())
	}
	cl.Restart(t, r)
	if got := cl.ReplicaOf(t, m); got != r {
		t.Fatalf("the restarted node is not a replica of %s", m.Addr())
	}
	cl.WaitReplicated(t)
	if n, _ := r.Admin().DBSize(ctx).Result(); n != dbsizes(t, []*redistest.Node{m})[m.Addr()] {
		t.Fatalf("the restarted replica holds %d keys; its master %d", n, dbsizes(t, []*redistest.Node{m})[m.Addr()])
	}
}

func TestClusterAddMasterMoveSlot(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.ReplicasPerMaster(0))
	c := cl.Client(t)
	ctx := context.Background()
	keys := setKeys(t, c, 50)
	n := cl.AddMaster(t)
	if slices.Contains(cl.Masters(t), n) {
		t.Fatal("a new master serves slots before any is moved to it")
	}
	slot := cl.Slot(t, keys[7])
	cl.MoveSlot(t, slot, n)
	if got := cl.MasterOf(t, keys[7]); got != n {
		t.Fatalf("after MoveSlot the master of %q is %s; want %s", keys[7], got.Addr(), n.Addr())
	}
	if ex, _ := n.Admin().Exists(ctx, keys[7]).Result(); ex != 1 {
		t.Fatalf("the key of the moved slot is not on the new master")
	}
	if v, err := c.Get(ctx, keys[7]).Result(); err != nil || v != "7" {
		t.Fatalf("GET %q after the move = %q, %v", keys[7], v, err)
	}
	if len(cl.Masters(t)) != 4 {
		t.Fatalf("Masters() after MoveSlot = %d; want 4", len(cl.Masters(t)))
	}
}

func TestClusterProxyReplication(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.Masters(1))
	c := cl.Client(t)
	ctx := context.Background()
	m := cl.Masters(t)[0]
	r := cl.ReplicaOf(t, m)
	p := cl.ProxyReplication(t, m)
	if err := c.Set(ctx, "through", "1", 0).Err(); err != nil {
		t.Fatalf("SET through the remapping dialer: %v", err)
	}
	cl.WaitReplicated(t)
	p.Blackhole()
	if err := c.Set(ctx, "held", "1", 0).Err(); err != nil {
		t.Fatalf("SET while replication is held: %v", err)
	}
	if n, _ := r.Admin().DBSize(ctx).Result(); n != 1 {
		t.Fatalf("replica DBSIZE = %d while replication is held; want 1 (the write before)", n)
	}
	p.Heal()
	cl.WaitReplicated(t)
	if n, _ := r.Admin().DBSize(ctx).Result(); n != 2 {
		t.Fatalf("replica DBSIZE = %d after Heal; want 2", n)
	}
}

func TestStartClusterValidates(t *testing.T) {
	redistest.Binary(t)
	for _, tc := range []struct {
		opt  redistest.ClusterOption
		want string
	}{
		{redistest.Masters(0), "Masters(0)"},
		{redistest.ReplicasPerMaster(5), "ReplicasPerMaster(5)"},
		{redistest.NodeTimeout(time.Millisecond), "NodeTimeout(1ms)"},
	} {
		got, msg := outcome(t, func(tb testing.TB) { redistest.StartCluster(tb, tc.opt) })
		if got != "fatal" || !strings.Contains(msg, tc.want) {
			t.Errorf("StartCluster: %s %q; want fatal containing %q", got, msg, tc.want)
		}
	}
}
