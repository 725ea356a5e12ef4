package tiered_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// tagOf is the Tags of the test groups: "u1_a" carries "u1" and "all".
func tagOf(id string, _ string) []string {
	p, _, _ := strings.Cut(id, "_")
	return []string{p, "all"}
}

// tagNode is one node of a tag test: a cache with two tagged groups.
type tagNode struct {
	*fleetNode
	ns      string
	profile *tiered.Group[string]
}

// tagSpaces numbers the namespaces of the tag tests: each scenario has a
// fresh one, so that scenarios sharing a server do not see each other.
var tagSpaces atomic.Int64

// clientFactory makes a go-redis client of its own for each node.
type clientFactory func(t *testing.T) redis.UniversalClient

func singleServer(t *testing.T) clientFactory {
	addr := startServer(t)
	return func(t *testing.T) redis.UniversalClient {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
}

func onCluster(cl *redistest.Cluster) clientFactory {
	return func(t *testing.T) redis.UniversalClient { return cl.Client(t) }
}

// newTagNodes makes count nodes on one fresh namespace.
func newTagNodes(t *testing.T, clients clientFactory, count int) []*tagNode {
	t.Helper()
	ns := fmt.Sprint("tags", tagSpaces.Add(1))
	var out []*tagNode
	for range count {
		n := newFleetNodeOn(t, clients(t), tiered.Options{Namespace: ns})
		// newFleetNodeOn's group has no tags: use tagged ones.
		n.group = newGroup[string](t, n.cache, "tpost", tiered.GroupOptions{Tags: tagOf})
		out = append(out, &tagNode{fleetNode: n, ns: ns, profile: newGroup[string](t, n.cache, "tprofile", tiered.GroupOptions{Tags: tagOf})})
	}
	return out
}

// counted returns a loader of value v that counts its calls in calls.
func counted(calls *atomic.Int64, v string) tiered.LoaderFunc[string] {
	return func(context.Context, string) (string, error) {
		calls.Add(1)
		return v, nil
	}
}

// mustFetch fetches id with load and fails unless the value is want.
func mustFetch(t *testing.T, g *tiered.Group[string], id string, load tiered.LoaderFunc[string], want string) {
	t.Helper()
	v, err := g.Fetch(context.Background(), id, load)
	if err != nil || v != want {
		t.Fatalf("%s.Fetch(%q) = %q, %v; want %q", g.Name(), id, v, err, want)
	}
}

// Where the invalidation of the stale-fill case comes from.
type tagSource int

const (
	fromHere     tagSource = iota // the loading node invalidates
	fromOther                     // another node, and its message has arrived
	fromInFlight                  // another node, its message held back until the fill is over
)

// tagStaleFill runs the race: node a loads u1_a (reading "v1") and blocks;
// the tag u1 is invalidated; the load returns. It reports whether the old
// value was filled into Redis, and whether a reads it afterwards (from L1
// or Redis) instead of loading "v2".
func tagStaleFill(t *testing.T, clients clientFactory, src tagSource, protect bool) (inL2, served bool) {
	t.Helper()
	ctx := context.Background()
	nodes := newTagNodes(t, clients, 2)
	a, b := nodes[0], nodes[1]
	// The table of a knows the tags before the race: only the fill's own
	// check can catch an invalidation it has not heard of.
	mustFetch(t, a.group, "u1_z", constLoader("z"), "z")
	tiered.SetNoTagCheck(a.cache, !protect)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := a.group.Fetch(ctx, "u1_a", func(context.Context, string) (string, error) {
			close(started)
			<-release
			return "v1", nil
		})
		done <- err
	}()
	<-started
	var published chan error
	switch src {
	case fromHere:
		if err := a.cache.InvalidateTags(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
	case fromOther:
		if err := b.cache.InvalidateTags(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		a.expect(t, tiered.EventInvalidationReceived)
	case fromInFlight:
		held, free := make(chan struct{}), make(chan struct{})
		var once sync.Once
		tiered.SetHoldPublish(b.cache, func() { once.Do(func() { close(held); <-free }) })
		published = make(chan error, 1)
		go func() { published <- b.cache.InvalidateTags(ctx, "u1") }()
		<-held // the stamp is in Redis; the message is not sent
		defer func() {
			close(free)
			if err := <-published; err != nil {
				t.Error(err)
			}
			a.expect(t, tiered.EventInvalidationReceived)
		}()
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.cache.WaitL1()
	raw, err := a.rdb.Get(ctx, a.ns+":"+a.group.Key("u1_a")).Bytes()
	inL2 = err == nil && strings.HasSuffix(string(raw), `"v1"`)
	var calls atomic.Int64
	v, err := a.group.Fetch(ctx, "u1_a", counted(&calls, "v2"))
	if err != nil {
		t.Fatal(err)
	}
	return inL2, v == "v1"
}

func tagStaleFillCases(t *testing.T, clients clientFactory, cluster bool) {
	srcs := map[string]tagSource{"Here": fromHere, "Other": fromOther, "InFlight": fromInFlight}
	for name, src := range srcs {
		if cluster && src == fromInFlight {
			continue // the fill's script cannot read the stamps: see docs/invalidation.md, Tags and Clear
		}
		t.Run(name, func(t *testing.T) {
			if inL2, served := tagStaleFill(t, clients, src, true); inL2 || served {
				t.Fatalf("a load that began before the tag's invalidation: in L2 %v, served afterwards %v", inL2, served)
			}
			// The switch shows the test catches the stale fill.
			if inL2, served := tagStaleFill(t, clients, src, false); !inL2 || !served {
				t.Fatalf("without the tag checks the old value should be filled and served: in L2 %v, served %v", inL2, served)
			}
		})
	}
}

func TestTagNoStaleFill(t *testing.T) {
	tagStaleFillCases(t, singleServer(t), false)
}

// tagReachesEveryNode: an InvalidateTags on one node removes the tagged
// entries, and only those, from every node's L1, and from Redis for every
// reader. With noApply, node 1 ignores the tag messages: it must then
// keep serving the old values, which shows that the test catches it.
func tagReachesEveryNode(t *testing.T, clients clientFactory, noApply bool) (stale []string) {
	ctx := context.Background()
	nodes := newTagNodes(t, clients, 3)
	tiered.SetNoTagApply(nodes[1].cache, noApply)
	ids := []string{"u1_a", "u1_b", "u2_a"}
	for _, n := range nodes {
		for _, id := range ids {
			mustFetch(t, n.group, id, constLoader("old"), "old")
		}
		n.cache.WaitL1()
		for _, id := range ids {
			if !n.inL1(t, id) {
				t.Fatalf("%s not in L1 after Fetch", id)
			}
		}
	}
	if err := nodes[0].cache.InvalidateTags(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		n.expect(t, tiered.EventInvalidationReceived)
	}
	for i, n := range nodes {
		if !n.inL1(t, "u2_a") {
			t.Errorf("node %d: u2_a (not tagged u1) left L1", i)
		}
		for _, id := range []string{"u1_a", "u1_b"} {
			if v, _ := n.group.Fetch(ctx, id, constLoader("new")); v != "new" {
				stale = append(stale, fmt.Sprintf("node %d: %s = %q", i, id, v))
			}
		}
	}
	return stale
}

func TestTagReachesEveryNode(t *testing.T) {
	clients := singleServer(t)
	if stale := tagReachesEveryNode(t, clients, false); len(stale) > 0 {
		t.Fatalf("stale after InvalidateTags: %q", stale)
	}
	if stale := tagReachesEveryNode(t, clients, true); len(stale) == 0 {
		t.Fatal("a node that ignores tag messages should serve old values")
	}
}

// tagLostMessage: node a's tag message is lost; a's next message shows
// node b the gap, and b's flush rules (L1 flushed, tag table forgotten)
// make it read the stamp again instead of serving the old value from
// Redis. With noReset, b keeps its table: it must then serve the old
// value.
func tagLostMessage(t *testing.T, clients clientFactory, noReset bool) (served string) {
	ctx := context.Background()
	nodes := newTagNodes(t, clients, 2)
	a, b := nodes[0], nodes[1]
	tiered.SetNoTagReset(b.cache, noReset)
	mustFetch(t, b.group, "u1_a", constLoader("old"), "old")
	tiered.DropNextPublish(a.cache)
	if err := a.cache.InvalidateTags(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if err := a.group.Invalidate(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	b.expect(t, tiered.EventBusGap)
	b.expect(t, tiered.EventInvalidationReceived)
	v, err := b.group.Fetch(ctx, "u1_a", constLoader("new"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTagLostMessage(t *testing.T) {
	clients := singleServer(t)
	if v := tagLostMessage(t, clients, false); v != "new" {
		t.Fatalf("after a lost tag message and a gap: %q; want \"new\"", v)
	}
	if v := tagLostMessage(t, clients, true); v != "old" {
		t.Fatalf("without the table reset the old value should be served; got %q", v)
	}
}

// groupClear: Clear of one group reloads its entries on every node and
// leaves the other group's; Cache.Clear then reloads everything. With
// noCheck (tag checks off) the cleared group keeps serving.
func groupClear(t *testing.T, clients clientFactory, noCheck bool) (problems []string) {
	ctx := context.Background()
	nodes := newTagNodes(t, clients, 2)
	a, b := nodes[0], nodes[1]
	for _, n := range []*tagNode{a, b} {
		tiered.SetNoTagCheck(n.cache, noCheck)
		mustFetch(t, n.group, "u1_a", constLoader("post1"), "post1")
		mustFetch(t, n.profile, "u1_a", constLoader("prof1"), "prof1")
		n.cache.WaitL1()
	}
	if err := a.group.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	b.expect(t, tiered.EventInvalidationReceived)
	for i, n := range []*tagNode{a, b} {
		var calls atomic.Int64
		if v, _ := n.group.Fetch(ctx, "u1_a", counted(&calls, "post2")); v != "post2" {
			problems = append(problems, fmt.Sprintf("node %d: cleared group serves %q", i, v))
		}
		if v, _ := n.profile.Fetch(ctx, "u1_a", counted(&calls, "prof2")); v != "prof1" {
			problems = append(problems, fmt.Sprintf("node %d: the other group reloaded: %q", i, v))
		}
		n.cache.WaitL1()
	}
	if err := b.cache.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	a.expect(t, tiered.EventInvalidationReceived)
	for i, n := range []*tagNode{a, b} {
		if v, _ := n.profile.Fetch(ctx, "u1_a", constLoader("prof3")); v != "prof3" {
			problems = append(problems, fmt.Sprintf("node %d: after Cache.Clear: %q", i, v))
		}
	}
	return problems
}

func TestGroupClear(t *testing.T) {
	clients := singleServer(t)
	if p := groupClear(t, clients, false); len(p) > 0 {
		t.Fatalf("%q", p)
	}
	if p := groupClear(t, clients, true); len(p) == 0 {
		t.Fatal("with the tag checks off a cleared group should keep serving")
	}
}

// v1Envelope is a value as a release before tags wrote it: envelope
// version 1, no tags, no load begin.
func v1Envelope(payload string, expireMs int64) []byte {
	b := make([]byte, 23, 23+len(payload))
	b[0], b[1], b[2] = 0xC7, 1, 1
	binary.BigEndian.PutUint64(b[3:], 42)
	binary.BigEndian.PutUint64(b[15:], uint64(expireMs))
	return append(b, payload...)
}

// preTagEnvelope: a value written before tags reads as untagged (a tag
// invalidation leaves it), and as loaded before every invalidation (a
// Clear of its group removes it). With noCheck the Clear does not.
func preTagEnvelope(t *testing.T, clients clientFactory, noCheck bool) (afterTag, afterClear string) {
	ctx := context.Background()
	a := newTagNodes(t, clients, 1)[0]
	tiered.SetNoTagCheck(a.cache, noCheck)
	exp := time.Now().Add(time.Hour).UnixMilli()
	if err := a.rdb.Set(ctx, a.ns+":"+a.group.Key("u1_a"), v1Envelope(`"legacy"`, exp), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	mustFetch(t, a.group, "u1_a", counted(&calls, "fresh"), "legacy")
	if err := a.cache.InvalidateTags(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	afterTag, _ = a.group.Fetch(ctx, "u1_a", counted(&calls, "fresh"))
	if err := a.group.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	afterClear, _ = a.group.Fetch(ctx, "u1_a", counted(&calls, "fresh"))
	return afterTag, afterClear
}

func TestPreTagEnvelope(t *testing.T) {
	clients := singleServer(t)
	if tagged, cleared := preTagEnvelope(t, clients, false); tagged != "legacy" || cleared != "fresh" {
		t.Fatalf("pre-tag value: after InvalidateTags %q (want legacy), after Clear %q (want fresh)", tagged, cleared)
	}
	if _, cleared := preTagEnvelope(t, clients, true); cleared != "legacy" {
		t.Fatalf("with the tag checks off the pre-tag value should survive Clear; got %q", cleared)
	}
}

// TestTagCluster runs the tag tests on a real Redis Cluster.
func TestTagCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	clients := onCluster(cl)
	t.Run("NoStaleFill", func(t *testing.T) { tagStaleFillCases(t, clients, true) })
	t.Run("ReachesEveryNode", func(t *testing.T) {
		if stale := tagReachesEveryNode(t, clients, false); len(stale) > 0 {
			t.Fatalf("stale after InvalidateTags: %q", stale)
		}
		if stale := tagReachesEveryNode(t, clients, true); len(stale) == 0 {
			t.Fatal("a node that ignores tag messages should serve old values")
		}
	})
	t.Run("LostMessage", func(t *testing.T) {
		if v := tagLostMessage(t, clients, false); v != "new" {
			t.Fatalf("after a lost tag message and a gap: %q", v)
		}
		if v := tagLostMessage(t, clients, true); v != "old" {
			t.Fatalf("without the table reset the old value should be served; got %q", v)
		}
	})
	t.Run("GroupClear", func(t *testing.T) {
		if p := groupClear(t, clients, false); len(p) > 0 {
			t.Fatalf("%q", p)
		}
		if p := groupClear(t, clients, true); len(p) == 0 {
			t.Fatal("with the tag checks off a cleared group should keep serving")
		}
	})
	t.Run("PreTagEnvelope", func(t *testing.T) {
		if tagged, cleared := preTagEnvelope(t, clients, false); tagged != "legacy" || cleared != "fresh" {
			t.Fatalf("pre-tag value: after InvalidateTags %q, after Clear %q", tagged, cleared)
		}
	})
}

// TestTagBadInput: bad tags are refused at the call, and nothing is
// written.
func TestTagBadInput(t *testing.T) {
	ctx := context.Background()
	rdb, _ := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "bad"})
	long := strings.Repeat("x", tiered.MaxTagLen+1)
	many := make([]string, tiered.MaxInvalidateTags+1)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	for _, tags := range [][]string{{""}, {"ok", ""}, {long}, many} {
		if err := c.InvalidateTags(ctx, tags...); !errors.Is(err, tiered.ErrBadTag) {
			t.Errorf("InvalidateTags(%d tags) = %v; want ErrBadTag", len(tags), err)
		}
	}
	if keys := rdb.Keys(ctx, "*").Val(); len(keys) != 0 {
		t.Errorf("after refused calls Redis holds %q", keys)
	}
	var tags []string
	g := newGroup[string](t, c, "g", tiered.GroupOptions{Tags: func(string, string) []string { return tags }})
	tooMany := make([]string, tiered.MaxTags+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint("t", i)
	}
	for _, bad := range [][]string{{""}, {long}, tooMany} {
		tags = bad
		if err := g.Set(ctx, "1", "v"); !errors.Is(err, tiered.ErrBadTag) {
			t.Errorf("Set with %d bad tags = %v; want ErrBadTag", len(bad), err)
		}
		if _, err := g.Fetch(ctx, "1", constLoader("v")); !errors.Is(err, tiered.ErrBadTag) {
			t.Errorf("Fetch with %d bad tags = %v; want ErrBadTag", len(bad), err)
		}
		if _, err := g.Get(ctx, "1"); !errors.Is(err, tiered.ErrNotCached) {
			t.Errorf("after refused tags, Get = %v; want ErrNotCached", err)
		}
	}
	if _, err := tiered.NewGroup[string](c, "wrong", tiered.GroupOptions{Tags: func(string, int) []string { return nil }}); err == nil {
		t.Error("NewGroup with a Tags of the wrong type succeeded")
	}
}
