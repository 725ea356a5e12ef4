package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

// DefaultNodeTimeout is the cluster-node-timeout of a [Cluster] whose
// options set none: short, so that a killed master is replaced within a
// few seconds, yet long enough that a loaded machine does not fail nodes
// over by itself.
const DefaultNodeTimeout = time.Second

// ClusterOption configures [StartCluster].
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	masters, replicas int
	nodeTimeout       time.Duration
	args              []string
}

// Masters sets how many masters the cluster starts with, in [1, 16]; the
// hash slots are split evenly among them. Default: 3.
func Masters(n int) ClusterOption { return func(c *clusterConfig) { c.masters = n } }

// ReplicasPerMaster sets how many replicas each master gets, in [0, 4].
// Default: 1.
func ReplicasPerMaster(n int) ClusterOption { return func(c *clusterConfig) { c.replicas = n } }

// NodeTimeout sets cluster-node-timeout, at least 100ms. Default:
// [DefaultNodeTimeout].
func NodeTimeout(d time.Duration) ClusterOption {
	return func(c *clusterConfig) { c.nodeTimeout = d }
}

// ClusterArgs adds arguments to every node's command line, after the ones
// StartCluster passes itself.
func ClusterArgs(args ...string) ClusterOption {
	return func(c *clusterConfig) { c.args = append(c.args, args...) }
}

// Cluster is a real Redis Cluster of redis-server processes started for a
// test by [StartCluster], on 127.0.0.1. Its methods are safe for
// concurrent use, but those that change the cluster (Failover, KillMaster,
// Restart, AddMaster, MoveSlot, ProxyReplication) fail the test like
// t.Fatal, so they must be called from the test's goroutine.
type Cluster struct {
	cfg clusterConfig

	mu    sync.Mutex // protects nodes and remap
	nodes []*Node
	remap map[string]string // address a node announces -> its real address
}

// Node is one redis-server of a [Cluster]. Its [Server] methods (Addr,
// Kill, Restart, Client...) act on that process alone; the Cluster's
// methods also wait for the other nodes to take the change in.
type Node struct {
	*Server
	id    string
	admin *redis.Client
}

// ID returns the node's cluster node ID. It does not change across Kill
// and Restart (the node keeps its nodes.conf).
func (n *Node) ID() string { return n.id }

// StartCluster starts a Redis Cluster: by default 3 masters, each with one
// replica, every node on a free loopback port P no higher than 22767 whose
// cluster bus port P+10000 is free as well (both stay below 32768, away
// from the kernel's ephemeral ports). The nodes are joined directly:
// CLUSTER ADDSLOTSRANGE on each master, a distinct config epoch per node,
// CLUSTER MEET, then CLUSTER REPLICATE. StartCluster returns once every
// node reports cluster_state:ok, all of them agree on who serves every
// slot, and every replica is in sync with its master. Every node is killed
// when the test ends.
//
// Nodes run with persistence off, cluster-replica-validity-factor 0 (a
// replica may always take over, however long its link was down),
// cluster-allow-replica-migration no, and diskless replication without
// delay, so that a replica is in sync a moment after it attaches.
//
// When redis-server is not on PATH, StartCluster skips the test, or fails
// it when [RequireRedis] holds. It must be called from the test's
// goroutine.
func StartCluster(t testing.TB, opts ...ClusterOption) *Cluster {
	t.Helper()
	cfg := clusterConfig{masters: 3, replicas: 1, nodeTimeout: DefaultNodeTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.masters < 1 || cfg.masters > 16:
		t.Fatalf("redistest: Masters(%d) outside [1, 16]", cfg.masters)
	case cfg.replicas < 0 || cfg.replicas > 4:
		t.Fatalf("redistest: ReplicasPerMaster(%d) outside [0, 4]", cfg.replicas)
	case cfg.nodeTimeout < 100*time.Millisecond:
		t.Fatalf("redistest: NodeTimeout(%v) below 100ms", cfg.nodeTimeout)
	}
	Binary(t) // skip or fail before starting anything
	c := &Cluster{cfg: cfg, remap: make(map[string]string)}
	total := cfg.masters * (1 + cfg.replicas)
	for range total {
		c.startNode(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	masters := c.nodes[:cfg.masters]
	for i, m := range masters {
		lo, hi := i*slotCount/cfg.masters, (i+1)*slotCount/cfg.masters-1
		mustDo(t, m.admin.ClusterAddSlotsRange(ctx, lo, hi).Err(), "CLUSTER ADDSLOTSRANGE on %s", m.Addr())
	}
	for i, n := range c.nodes {
		mustDo(t, n.admin.Do(ctx, "cluster", "set-config-epoch", i+1).Err(), "CLUSTER SET-CONFIG-EPOCH on %s", n.Addr())
	}
	for _, n := range c.nodes[1:] {
		mustDo(t, c.nodes[0].admin.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(n.Port())).Err(), "CLUSTER MEET %s", n.Addr())
	}
	c.waitKnown(t)
	for j, r := range c.nodes[cfg.masters:] {
		m := masters[j%cfg.masters]
		mustDo(t, r.admin.ClusterReplicate(ctx, m.id).Err(), "CLUSTER REPLICATE on %s", r.Addr())
	}
	c.waitSynced(t)
	// CLUSTER SLOTS lists a replica only once its replication offset is not
	// 0, which an idle master reaches at its next replication ping: a
	// FLUSHALL of the empty masters moves every offset at once.
	c.Flush(t)
	c.WaitStable(t)
	return c
}

// mustDo fails the test when err is not nil.
func mustDo(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("redistest: %s: %v", fmt.Sprintf(format, args...), err)
	}
}

// nodeArgs returns the command line arguments of every cluster node.
func (c *Cluster) nodeArgs() []string {
	return append([]string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(c.cfg.nodeTimeout.Milliseconds(), 10),
		"--cluster-replica-validity-factor", "0",
		"--cluster-allow-replica-migration", "no",
		"--repl-diskless-sync", "yes",
		"--repl-diskless-sync-delay", "0",
		"--repl-ping-replica-period", "1",
	}, c.cfg.args...)
}

// startNode starts one more node, not yet part of the cluster.
func (c *Cluster) startNode(t testing.TB) *Node {
	t.Helper()
	s := Start(t, func(cfg *config) { cfg.clusterPort = true }, Args(c.nodeArgs()...))
	n := &Node{Server: s, admin: redis.NewClient(&redis.Options{
		Addr: s.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1,
	})}
	t.Cleanup(func() { _ = n.admin.Close() })
	ctx, cancel := adminCtx()
	defer cancel()
	id, err := n.admin.Do(ctx, "cluster", "myid").Text()
	mustDo(t, err, "CLUSTER MYID on %s", s.Addr())
	n.id = id
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// Nodes returns every node started for the cluster, live or killed, in the
// order they were started: the masters StartCluster began with, then
// their replicas, then the nodes added later.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// live returns the nodes whose process runs.
func (c *Cluster) live() []*Node {
	var out []*Node
	for _, n := range c.Nodes() {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// Node returns the node whose ID is id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes() {
		if n.id == id {
			return n
		}
	}
	return nil
}

// Addrs returns the real addresses of the live nodes.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.live() {
		out = append(out, n.Addr())
	}
	return out
}

// Options returns options for a go-redis cluster client of this cluster:
// every live node as a seed, ContextTimeoutEnabled, and a Dialer that
// reaches a node at its real address when the node announces another one
// (see [Cluster.ProxyReplication]). Callers may change the copy they get;
// a Dialer of their own should call the one it replaces.
func (c *Cluster) Options() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true, Dialer: c.dial}
}

// Client returns a new cluster client built from [Cluster.Options], closed
// when t's test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(c.Options())
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// dial connects to addr, or to the real address of the node that
// announces addr.
func (c *Cluster) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	if real, ok := c.remap[addr]; ok {
		addr = real
	}
	c.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Flush empties every live master (FLUSHALL); replicas follow.
func (c *Cluster) Flush(t testing.TB) {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	for _, n := range c.live() {
		role, err := n.role(ctx)
		mustDo(t, err, "ROLE on %s", n.Addr())
		if role.master {
			mustDo(t, n.admin.FlushAll(ctx).Err(), "FLUSHALL on %s", n.Addr())
		}
	}
}

// Admin returns a client of the node alone (not a cluster client), for
// commands a test sends to one node; it is closed when the cluster's test
// ends.
func (n *Node) Admin() *redis.Client { return n.admin }
