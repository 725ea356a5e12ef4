package tiered_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// clusterNodes makes fleet nodes on cl, each with a cluster client of its
// own; extra adjusts their options.
func clusterNodes(cl *redistest.Cluster, extra func(*tiered.Options)) nodeFactory {
	return func(t *testing.T, o tiered.Options) *fleetNode {
		if extra != nil {
			extra(&o)
		}
		return newFleetNodeOn(t, cl.Client(t), o)
	}
}

// TestClusterInvalidation runs the invalidation and stale-fill tests of a
// single server against a real Redis Cluster (3 masters with a replica
// each, emptied before every case), with plain and sharded pub/sub.
func TestClusterInvalidation(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	sharded := func(o *tiered.Options) { o.ShardedPubSub = true }
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"ReachesEveryNode", func(t *testing.T) { invalidationReachesEveryNode(t, cl.Client(t), clusterNodes(cl, nil)) }},
		{"ReachesEveryNodeSharded", func(t *testing.T) { invalidationReachesEveryNode(t, cl.Client(t), clusterNodes(cl, sharded)) }},
		{"PatternInjection", func(t *testing.T) { patternInjection(t, cl.Client(t), clusterNodes(cl, nil)) }},
		{"StarStaysInTheNamespace", func(t *testing.T) { starStaysInTheNamespace(t, cl.Client(t)) }},
		{"PatternOnEveryMaster", func(t *testing.T) { patternOnEveryMaster(t, cl) }},
		{"FetchManyAcrossSlots", func(t *testing.T) { fetchManyAcrossSlots(t, cl) }},
	}
	invalidations := map[string]func(*tiered.Group[string]) error{
		"Invalidate": func(g *tiered.Group[string]) error { return g.Invalidate(context.Background(), "1") },
		"Set":        func(g *tiered.Group[string]) error { return g.Set(context.Background(), "1", "v2") },
	}
	for iname, inv := range invalidations {
		cases = append(cases, struct {
			name string
			run  func(t *testing.T)
		}{"NoStaleFill/" + iname, func(t *testing.T) {
			if inL2, inL1 := staleFill(t, cl.Client(t), inv, false); inL2 || inL1 {
				t.Fatalf("stale v1 installed: in L2 %v, in L1 %v", inL2, inL1)
			}
			// The switch shows the test catches the stale fill on a cluster too.
			cl.Flush(t)
			if inL2, inL1 := staleFill(t, cl.Client(t), inv, true); !inL2 || !inL1 {
				t.Fatalf("without compare-and-set v1 should be installed: in L2 %v, in L1 %v", inL2, inL1)
			}
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl.Flush(t)
			tc.run(t)
		})
	}
}

// patternOnEveryMaster: a pattern invalidation removes the matching keys
// from every master of the cluster, and only those, and reaches the other
// node's L1.
func patternOnEveryMaster(t *testing.T, cl *redistest.Cluster) {
	ctx := context.Background()
	nodes := clusterNodes(cl, nil)
	a, b := nodes(t, tiered.Options{Namespace: "pat"}), nodes(t, tiered.Options{Namespace: "pat"})
	var ids []string
	for u := range 2 {
		for i := range 150 {
			ids = append(ids, fmt.Sprintf("user_%d_%d", u+1, i))
		}
	}
	for _, id := range ids {
		if err := a.group.Set(ctx, id, "v"); err != nil {
			t.Fatal(err)
		}
	}
	for range ids { // each Set tells b; none may arrive after b's reads
		b.expect(t, tiered.EventInvalidationReceived)
	}
	noLoad := func(context.Context, []string) (map[string]string, error) {
		return nil, fmt.Errorf("loader called: the values are in Redis")
	}
	if _, err := b.group.FetchMany(ctx, ids, noLoad); err != nil {
		t.Fatal(err)
	}
	b.cache.WaitL1()
	// L1 is advisory (Ristretto may drop a fill): check the entries it took.
	before := map[string]bool{}
	cached := 0
	for _, id := range ids {
		before[id] = b.inL1(t, id)
		if before[id] && strings.HasPrefix(id, "user_1_") {
			cached++
		}
	}
	if cached == 0 {
		t.Fatal("no key of user_1 in the other node's L1 before the pattern")
	}
	perMaster := map[string]int{}
	for _, id := range ids[:150] {
		perMaster[cl.MasterOf(t, "pat:post:"+id).Addr()]++
	}
	if len(perMaster) != 3 {
		t.Fatalf("the keys of user_1 live on %d masters; want all 3", len(perMaster))
	}
	if err := a.cache.InvalidatePattern(ctx, "post:user_1_*"); err != nil {
		t.Fatal(err)
	}
	b.expect(t, tiered.EventInvalidationReceived)
	rdb := cl.Client(t)
	for _, id := range ids {
		want := !strings.HasPrefix(id, "user_1_")
		if got := rdb.Exists(ctx, "pat:post:"+id).Val() == 1; got != want {
			t.Fatalf("%s in Redis = %v after the pattern; want %v", id, got, want)
		}
		if got := b.inL1(t, id); got != (want && before[id]) {
			t.Fatalf("%s in the other node's L1 = %v after the pattern (before: %v); want %v", id, got, before[id], want && before[id])
		}
	}
}

// fetchManyAcrossSlots: FetchMany loads what no tier has in one batch and
// fills Redis across every slot; another node then reads all of it from
// Redis with one pipeline, without loading.
func fetchManyAcrossSlots(t *testing.T, cl *redistest.Cluster) {
	ctx := context.Background()
	nodes := clusterNodes(cl, nil)
	a, b := nodes(t, tiered.Options{Namespace: "many"}), nodes(t, tiered.Options{Namespace: "many"})
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	var calls atomic.Int64
	load := func(_ context.Context, ids []string) (map[string]string, error) {
		calls.Add(1)
		out := make(map[string]string, len(ids))
		for _, id := range ids {
			out[id] = "v" + id
		}
		return out, nil
	}
	for _, n := range []*fleetNode{a, b} {
		got, err := n.group.FetchMany(ctx, ids, load)
		if err != nil || len(got) != len(ids) || got["42"] != "v42" {
			t.Fatalf("FetchMany = %d values (42: %q), %v", len(got), got["42"], err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("batch loader called %d times; want once (the second node reads Redis)", calls.Load())
	}
	if s := b.group.Stats(); s.L2Hits != uint64(len(ids)) {
		t.Fatalf("second node: %d L2 hits; want %d", s.L2Hits, len(ids))
	}
}

func TestNewValidatesReplicaOptions(t *testing.T) {
	rdb, _ := newMini(t)
	ring := redis.NewRing(&redis.RingOptions{})
	t.Cleanup(func() { ring.Close() })
	for _, tc := range []struct {
		name string
		opts tiered.Options
		want string
	}{
		{"negative replicas", tiered.Options{Redis: rdb, InvalidateReplicas: -1}, "negative InvalidateReplicas"},
		{"negative timeout", tiered.Options{Redis: rdb, InvalidateReplicas: 1, InvalidateReplicasTimeout: -1}, "InvalidateReplicasTimeout"},
		{"ring", tiered.Options{Redis: ring, InvalidateReplicas: 1, DisableBus: true}, "WaitReplicas needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tiered.New(tc.opts)
			if c != nil {
				c.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tiered: ") {
				t.Fatalf("New() error = %v; want one containing %q", err, tc.want)
			}
		})
	}
}
