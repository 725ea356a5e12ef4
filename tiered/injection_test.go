package tiered_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// countExisting counts which of keys exist, one EXISTS per key (keys of a
// cluster may live in different slots).
func countExisting(ctx context.Context, rdb redis.UniversalClient, keys ...string) int {
	n := 0
	for _, k := range keys {
		n += int(rdb.Exists(ctx, k).Val())
	}
	return n
}

// TestPatternInjection: ids full of glob metacharacters, put into a pattern
// template, invalidate exactly the one key with that id, in Redis and in
// every node's L1; a pattern of "*" leaves keys outside the namespace alone.
func TestPatternInjection(t *testing.T) {
	rdb := newReal(t)
	addr := rdb.Options().Addr
	patternInjection(t, rdb, func(t *testing.T, o tiered.Options) *fleetNode { return newFleetNode(t, addr, o) })
}

func patternInjection(t *testing.T, rdb redis.UniversalClient, newNode nodeFactory) {
	ctx := context.Background()
	a := newNode(t, tiered.Options{Namespace: "inj"})
	b := newNode(t, tiered.Options{Namespace: "inj"})
	evil := []string{"*", "?", "[", "]", `\`, ":", "[a-z]", `\*`, "a*", "*:*", "^", "-"}
	plain := []string{"1", "a", "b", "z", "a:b", "x*y"}
	all := append(append([]string{}, evil...), plain...)
	for _, n := range []*fleetNode{a, b} {
		for _, id := range all {
			if _, err := n.group.Fetch(ctx, "user_"+id+"_posts", constLoader("v")); err != nil {
				t.Fatal(err)
			}
		}
		n.cache.WaitL1()
	}
	tmpl := tiered.MustParsePattern("post:user_{id}_*")
	removed := map[string]bool{}
	for _, id := range evil {
		p, err := tmpl.ExpandMap(map[string]string{"id": id})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.cache.InvalidatePattern(ctx, p); err != nil {
			t.Fatal(err)
		}
		b.expect(t, tiered.EventInvalidationReceived)
		removed[id] = true
		for _, other := range all {
			key := "inj:post:user_" + other + "_posts"
			inRedis := rdb.Exists(ctx, key).Val() == 1
			if inRedis == removed[other] {
				t.Fatalf("after invalidating id %q: %s in Redis = %v", id, key, inRedis)
			}
			for name, n := range map[string]*fleetNode{"a": a, "b": b} {
				if got := n.inL1(t, "user_"+other+"_posts"); got == removed[other] {
					t.Fatalf("after invalidating id %q: node %s serves %q from L1 = %v", id, name, other, got)
				}
			}
		}
	}
}

// TestStarStaysInTheNamespace: "*" removes every key of the namespace and
// nothing else in the database.
func TestStarStaysInTheNamespace(t *testing.T) {
	starStaysInTheNamespace(t, newReal(t))
}

func starStaysInTheNamespace(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "mine"})
	g := newGroup[string](t, c, "post", tiered.GroupOptions{})
	for _, id := range []string{"1", "2", "3"} {
		if err := g.Set(ctx, id, "v"); err != nil {
			t.Fatal(err)
		}
	}
	foreign := []string{"other:post:1", "mine", "minex:post:1", "post:1", "mine-post:1"}
	for _, k := range foreign {
		rdb.Set(ctx, k, "foreign", 0)
	}
	if err := c.InvalidatePattern(ctx, "*"); err != nil {
		t.Fatal(err)
	}
	if n := countExisting(ctx, rdb, "mine:post:1", "mine:post:2", "mine:post:3"); n != 0 {
		t.Fatalf("%d keys of the namespace survived *", n)
	}
	if n := countExisting(ctx, rdb, foreign...); n != len(foreign) {
		t.Fatalf("only %d of %d foreign keys survived *", n, len(foreign))
	}
}
