package redistest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// role is what ROLE says of a node.
type role struct {
	master    bool
	masterAt  string // a replica's master, as "host:port"
	connected bool   // a replica's link is up and in sync
}

func (n *Node) role(ctx context.Context) (role, error) {
	return roleOf(ctx, n.admin)
}

// roleOf asks c for its ROLE.
func roleOf(ctx context.Context, c *redis.Client) (role, error) {
	v, err := c.Do(ctx, "role").Slice()
	if err != nil {
		return role{}, err
	}
	if len(v) == 0 {
		return role{}, fmt.Errorf("empty ROLE reply")
	}
	switch v[0] {
	case "master":
		return role{master: true}, nil
	case "slave":
		if len(v) < 4 {
			return role{}, fmt.Errorf("short ROLE reply %v", v)
		}
		return role{
			masterAt:  fmt.Sprintf("%v:%v", v[1], v[2]),
			connected: v[3] == "connected",
		}, nil
	}
	return role{}, fmt.Errorf("ROLE %v", v[0])
}

// slotRange is one range of a node's view of the cluster.
type slotRange struct {
	start, end int
	master     string   // node ID
	replicas   []string // node IDs, sorted
}

// view is what one node reports of who serves every slot (CLUSTER SLOTS,
// which lists neither failed nodes nor masters without slots).
type view []slotRange

func (n *Node) view(ctx context.Context) (view, error) {
	//lint:ignore SA1019 CLUSTER SLOTS leaves out failed nodes, which is the view wanted here; every server from 3.0 to 8 answers it
	slots, err := n.admin.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	var v view
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		r := slotRange{start: s.Start, end: s.End, master: s.Nodes[0].ID}
		for _, rn := range s.Nodes[1:] {
			r.replicas = append(r.replicas, rn.ID)
		}
		slices.Sort(r.replicas)
		v = append(v, r)
	}
	slices.SortFunc(v, func(a, b slotRange) int { return a.start - b.start })
	return v, nil
}

// String renders v canonically, so that two views compare as strings.
func (v view) String() string {
	var b strings.Builder
	for _, r := range v {
		fmt.Fprintf(&b, "[%d-%d %.8s %v]", r.start, r.end, r.master, shortIDs(r.replicas))
	}
	return b.String()
}

func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:min(8, len(id))]
	}
	return out
}

// owner returns the ID of the master serving slot, or "".
func (v view) owner(slot int) string {
	for _, r := range v {
		if slot >= r.start && slot <= r.end {
			return r.master
		}
	}
	return ""
}

// isMaster reports whether id serves a slot in v.
func (v view) isMaster(id string) bool {
	return slices.ContainsFunc(v, func(r slotRange) bool { return r.master == id })
}

// replicasOf returns the replicas v lists for master id.
func (v view) replicasOf(id string) []string {
	for _, r := range v {
		if r.master == id {
			return r.replicas
		}
	}
	return nil
}

// isReplica reports whether v lists id as a replica of some master.
func (v view) isReplica(id string) bool {
	return slices.ContainsFunc(v, func(r slotRange) bool { return slices.Contains(r.replicas, id) })
}

// stable reports nil when the live nodes have converged: each reports
// cluster_state:ok with every slot served, all report the same view, and
// every live replica is listed in it and in sync with its master. It
// returns the common view.
func (c *Cluster) stable(ctx context.Context) (view, error) { return c.converged(ctx, true) }

// converged is stable, where synced says whether every live replica must be
// listed and in sync too.
func (c *Cluster) converged(ctx context.Context, synced bool) (view, error) {
	var common view
	for i, n := range c.live() {
		info, err := n.admin.ClusterInfo(ctx).Result()
		if err != nil {
			return nil, fmt.Errorf("CLUSTER INFO on %s: %w", n.Addr(), err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return nil, fmt.Errorf("%s: cluster state not ok: %w", n.Addr(), errPending)
		}
		v, err := n.view(ctx)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER SLOTS on %s: %w", n.Addr(), err)
		}
		if i == 0 {
			common = v
		} else if v.String() != common.String() {
			return nil, fmt.Errorf("%s sees %v, another node %v: %w", n.Addr(), v, common, errPending)
		}
		if !synced {
			continue
		}
		r, err := n.role(ctx)
		if err != nil {
			return nil, fmt.Errorf("ROLE on %s: %w", n.Addr(), err)
		}
		if !r.master && !r.connected {
			return nil, fmt.Errorf("replica %s not in sync with %s: %w", n.Addr(), r.masterAt, errPending)
		}
		if r.master {
			if err := replicasOnline(ctx, n.admin); err != nil {
				return nil, fmt.Errorf("master %s: %w", n.Addr(), err)
			}
		}
	}
	if !synced {
		return common, nil
	}
	for _, n := range c.live() {
		if r, err := n.role(ctx); err == nil && !r.master && !common.isReplica(n.id) {
			return nil, fmt.Errorf("replica %s not listed yet: %w", n.Addr(), errPending)
		}
	}
	return common, nil
}

// WaitStable waits until the live nodes have converged: every one reports
// cluster_state:ok with all 16384 slots served, they all agree on the
// master and the replicas of every slot, and every live replica is in sync
// with its master (its link up, and online in its master's view, so that
// the master counts it for WAIT). It fails the test if they have not
// within 30s.
func (c *Cluster) WaitStable(t testing.TB) {
	t.Helper()
	waitUntil(t, "cluster stable", convergeTimeout, func(ctx context.Context) error {
		_, err := c.stable(ctx)
		return err
	})
}

// waitKnown waits until every live node knows every other live node,
// past the handshake.
func (c *Cluster) waitKnown(t testing.TB) {
	t.Helper()
	waitUntil(t, "nodes known to each other", convergeTimeout, func(ctx context.Context) error {
		live := c.live()
		for _, n := range live {
			out, err := n.admin.ClusterNodes(ctx).Result()
			if err != nil {
				return err
			}
			for _, o := range live {
				line := nodeLine(out, o.id)
				if line == "" || strings.Contains(line, "handshake") || strings.Contains(line, "noaddr") {
					return fmt.Errorf("%s does not know %s yet: %w", n.Addr(), o.Addr(), errPending)
				}
			}
		}
		return nil
	})
}

// replicasOnline reports nil when every replica attached to the master
// behind c is online in the master's own view (INFO replication): only
// then does the master count the replica's acknowledgements for WAIT. A
// replica reports its link up a moment before its master puts it online.
func replicasOnline(ctx context.Context, c *redis.Client) error {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	for line := range strings.Lines(info) {
		if strings.HasPrefix(line, "slave") && strings.Contains(line, "state=") && !strings.Contains(line, "state=online") {
			return fmt.Errorf("replica not online yet: %s: %w", strings.TrimSpace(line), errPending)
		}
	}
	return nil
}

// waitSynced waits until every live replica's link to its master is up
// and in sync.
func (c *Cluster) waitSynced(t testing.TB) {
	t.Helper()
	waitUntil(t, "replicas in sync", convergeTimeout, func(ctx context.Context) error {
		for _, n := range c.live() {
			r, err := n.role(ctx)
			if err != nil {
				return err
			}
			if !r.master && !r.connected {
				return fmt.Errorf("replica %s not in sync: %w", n.Addr(), errPending)
			}
		}
		return nil
	})
}

// nodeLine returns the line of CLUSTER NODES output out about node id.
func nodeLine(out, id string) string {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, id+" ") {
			return line
		}
	}
	return ""
}

// currentView returns the view the live nodes agree on, waiting for them
// to converge first.
func (c *Cluster) currentView(t testing.TB) view {
	t.Helper()
	var v view
	waitUntil(t, "cluster stable", convergeTimeout, func(ctx context.Context) error {
		var err error
		v, err = c.stable(ctx)
		return err
	})
	return v
}

// Slot returns the hash slot of key (CLUSTER KEYSLOT).
func (c *Cluster) Slot(t testing.TB, key string) int {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	live := c.live()
	if len(live) == 0 {
		t.Fatal("redistest: no live node")
	}
	slot, err := live[0].admin.ClusterKeySlot(ctx, key).Result()
	mustDo(t, err, "CLUSTER KEYSLOT %q", key)
	return int(slot)
}

// MasterOf returns the master that serves key, once the cluster is stable.
func (c *Cluster) MasterOf(t testing.TB, key string) *Node {
	t.Helper()
	slot := c.Slot(t, key)
	return c.mustNode(t, c.currentView(t).owner(slot))
}

// ReplicaOf returns a replica of master m, once the cluster is stable. It
// fails the test when m has none.
func (c *Cluster) ReplicaOf(t testing.TB, m *Node) *Node {
	t.Helper()
	reps := c.currentView(t).replicasOf(m.id)
	if len(reps) == 0 {
		t.Fatalf("redistest: master %s has no replica", m.Addr())
	}
	return c.mustNode(t, reps[0])
}

// Masters returns the masters that serve slots, once the cluster is
// stable, in slot order.
func (c *Cluster) Masters(t testing.TB) []*Node {
	t.Helper()
	var out []*Node
	for _, r := range c.currentView(t) {
		n := c.mustNode(t, r.master)
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func (c *Cluster) mustNode(t testing.TB, id string) *Node {
	t.Helper()
	n := c.Node(id)
	if n == nil {
		t.Fatalf("redistest: no node with ID %q", id)
	}
	return n
}
