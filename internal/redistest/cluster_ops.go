package redistest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Failover promotes replica r with CLUSTER FAILOVER (a manual failover:
// its master stops its clients until r has caught up, so no acknowledged
// write is lost), and returns once r serves its former master's slots in
// the view of every live node, the former master is r's replica and in
// sync, and the cluster is stable.
func (c *Cluster) Failover(t testing.TB, r *Node) {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	old, err := r.masterID(ctx)
	mustDo(t, err, "master of %s", r.Addr())
	mustDo(t, r.admin.ClusterFailover(ctx).Err(), "CLUSTER FAILOVER on %s", r.Addr())
	c.waitPromoted(t, r.id, old)
}

// masterID returns the ID of the master n replicates, from n's own
// CLUSTER NODES.
func (n *Node) masterID(ctx context.Context) (string, error) {
	out, err := n.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return "", err
	}
	f := fieldsOf(nodeLine(out, n.id))
	if len(f) < 4 || !slices.Contains(f[2], "slave") {
		return "", fmt.Errorf("%s is not a replica: %v", n.Addr(), f)
	}
	return f[3][0], nil
}

// fieldsOf splits a CLUSTER NODES line into its fields, each split at
// commas.
func fieldsOf(line string) [][]string {
	var out [][]string
	for _, f := range strings.Fields(line) {
		out = append(out, strings.Split(f, ","))
	}
	return out
}

// waitPromoted waits until node id serves slots in every live node's view
// and the cluster is stable, with the former master old (if live) listed
// as its replica.
func (c *Cluster) waitPromoted(t testing.TB, id, old string) {
	t.Helper()
	waitUntil(t, "replica promoted", convergeTimeout, func(ctx context.Context) error {
		v, err := c.stable(ctx)
		if err != nil {
			return err
		}
		if !v.isMaster(id) {
			return fmt.Errorf("%.8s serves no slot yet: %w", id, errPending)
		}
		if o := c.Node(old); o != nil && o.Running() && !slices.Contains(v.replicasOf(id), old) {
			return fmt.Errorf("former master %.8s not a replica of %.8s yet: %w", old, id, errPending)
		}
		return nil
	})
}

// KillMaster kills master m outright (SIGKILL) and returns the replica
// that the cluster elects in its place, once every live node serves m's
// slots from it and the cluster is stable again. The election takes
// cluster-node-timeout and a short random delay. m's replicas need not be
// in sync (a test may have cut their link on purpose). It fails the test
// when m has no replica.
func (c *Cluster) KillMaster(t testing.TB, m *Node) *Node {
	t.Helper()
	var reps []string
	waitUntil(t, "nodes agree on the slots", convergeTimeout, func(ctx context.Context) error {
		v, err := c.converged(ctx, false)
		reps = v.replicasOf(m.id)
		return err
	})
	if len(reps) == 0 {
		t.Fatalf("redistest: master %s has no replica to take over", m.Addr())
	}
	m.Kill()
	var promoted string
	waitUntil(t, "replica of a killed master promoted", convergeTimeout, func(ctx context.Context) error {
		v, err := c.stable(ctx)
		if err != nil {
			return err
		}
		for _, id := range reps {
			if v.isMaster(id) {
				promoted = id
				return nil
			}
		}
		return fmt.Errorf("no replica of %s promoted yet: %w", m.Addr(), errPending)
	})
	return c.mustNode(t, promoted)
}

// Restart starts node n again on its address (killing it first if it
// runs), with its nodes.conf and no data, and returns once it has rejoined
// and the cluster is stable: a former master whose slots went to a replica
// meanwhile comes back as that replica's replica, and resyncs.
func (c *Cluster) Restart(t testing.TB, n *Node) {
	t.Helper()
	n.Server.Restart()
	c.waitKnown(t)
	c.WaitStable(t)
}

// AddMaster starts a new node, introduces it to the cluster with CLUSTER
// MEET, and returns it once every live node knows it. It serves no slot
// until [Cluster.MoveSlot] gives it some.
func (c *Cluster) AddMaster(t testing.TB) *Node {
	t.Helper()
	var seed *Node
	if live := c.live(); len(live) > 0 {
		seed = live[0]
	} else {
		t.Fatal("redistest: no live node to meet")
	}
	n := c.startNode(t)
	ctx, cancel := adminCtx()
	defer cancel()
	mustDo(t, seed.admin.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(n.Port())).Err(), "CLUSTER MEET %s", n.Addr())
	c.waitKnown(t)
	c.WaitStable(t)
	return n
}

// MoveSlot moves slot, with its keys, to master to, as resharding does:
// CLUSTER SETSLOT IMPORTING and MIGRATING, MIGRATE of every key, then
// CLUSTER SETSLOT NODE on every live master. It returns once every live
// node sees to serve the slot and the cluster is stable.
func (c *Cluster) MoveSlot(t testing.TB, slot int, to *Node) {
	t.Helper()
	src := c.mustNode(t, c.currentView(t).owner(slot))
	if src == to {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	mustDo(t, to.admin.Do(ctx, "cluster", "setslot", slot, "importing", src.id).Err(), "SETSLOT IMPORTING on %s", to.Addr())
	mustDo(t, src.admin.Do(ctx, "cluster", "setslot", slot, "migrating", to.id).Err(), "SETSLOT MIGRATING on %s", src.Addr())
	for {
		keys, err := src.admin.ClusterGetKeysInSlot(ctx, slot, 1000).Result()
		mustDo(t, err, "CLUSTER GETKEYSINSLOT on %s", src.Addr())
		if len(keys) == 0 {
			break
		}
		args := []any{"migrate", "127.0.0.1", to.Port(), "", 0, adminTimeout.Milliseconds(), "keys"}
		for _, k := range keys {
			args = append(args, k)
		}
		mustDo(t, src.admin.Do(ctx, args...).Err(), "MIGRATE from %s", src.Addr())
	}
	masters := []*Node{to, src}
	for _, m := range c.Masters(t) {
		if !slices.Contains(masters, m) {
			masters = append(masters, m)
		}
	}
	for _, m := range masters {
		mustDo(t, m.admin.Do(ctx, "cluster", "setslot", slot, "node", to.id).Err(), "SETSLOT NODE on %s", m.Addr())
	}
	waitUntil(t, "slot moved", convergeTimeout, func(ctx context.Context) error {
		v, err := c.stable(ctx)
		if err != nil {
			return err
		}
		if v.owner(slot) != to.id {
			return fmt.Errorf("slot %d still served by %.8s: %w", slot, v.owner(slot), errPending)
		}
		return nil
	})
}

// ProxyReplication puts a fault-injecting [Proxy] between master m and its
// replicas, and only them: m announces the proxy's port to the cluster
// (cluster-announce-port), so its replicas reconnect through the proxy,
// while clients built from [Cluster.Options] still reach m directly. A
// test can then hold or cut replication ([Proxy.Blackhole], [Proxy.Cut])
// and show what asynchronous replication loses. ProxyReplication returns
// once every replica of m replicates through the proxy and is in sync.
// Restarting m drops the announcement.
func (c *Cluster) ProxyReplication(t testing.TB, m *Node) *Proxy {
	t.Helper()
	reps := c.currentView(t).replicasOf(m.id)
	if len(reps) == 0 {
		t.Fatalf("redistest: master %s has no replica", m.Addr())
	}
	p := NewProxy(t, m.Addr())
	_, pport, err := net.SplitHostPort(p.Addr())
	mustDo(t, err, "proxy address %q", p.Addr())
	c.mu.Lock()
	c.remap[p.Addr()] = m.Addr()
	c.mu.Unlock()
	ctx, cancel := adminCtx()
	defer cancel()
	mustDo(t, m.admin.ConfigSet(ctx, "cluster-announce-bus-port", strconv.Itoa(m.Port()+busOffset)).Err(), "announce bus port")
	mustDo(t, m.admin.ConfigSet(ctx, "cluster-announce-port", pport).Err(), "announce port")
	waitUntil(t, "replicas reconnected through the proxy", convergeTimeout, func(ctx context.Context) error {
		if _, err := c.stable(ctx); err != nil {
			return err
		}
		for _, id := range reps {
			r := c.mustNode(t, id)
			ro, err := r.role(ctx)
			if err != nil {
				return err
			}
			if ro.masterAt != p.Addr() || !ro.connected {
				return fmt.Errorf("replica %s replicates from %s (connected %v): %w", r.Addr(), ro.masterAt, ro.connected, errPending)
			}
		}
		return nil
	})
	return p
}

// WaitReplicated waits until every live replica has processed everything
// its master had written when WaitReplicated was called.
func (c *Cluster) WaitReplicated(t testing.TB) {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	want := make(map[string]int64) // replica ID -> offset to reach
	v := c.currentView(t)
	for _, r := range v {
		m := c.mustNode(t, r.master)
		off, err := replOffset(ctx, m.admin, "master_repl_offset")
		mustDo(t, err, "INFO replication on %s", m.Addr())
		for _, id := range r.replicas {
			want[id] = off
		}
	}
	waitUntil(t, "replicas caught up", convergeTimeout, func(ctx context.Context) error {
		for id, off := range want {
			r := c.mustNode(t, id)
			got, err := replOffset(ctx, r.admin, "slave_repl_offset")
			if err != nil {
				return err
			}
			if got < off {
				return fmt.Errorf("replica %s at offset %d of %d: %w", r.Addr(), got, off, errPending)
			}
		}
		return nil
	})
}

// replOffset reads field (a replication offset) from c's INFO replication.
func replOffset(ctx context.Context, c *redis.Client, field string) (int64, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in INFO replication", field)
}
