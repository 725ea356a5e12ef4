package tiered_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// aclApp and aclWatcher are the Redis ACL rules of docs/operations.md (The bus under hostile input)
// for the namespace "shop": the application's user may use its keys and
// publish on its channel; a watcher may only subscribe to the channel.
var (
	aclApp = []string{"on", "resetkeys", "~shop:*", "resetchannels", "&shop:tiercache:*",
		"-@all", "+@read", "+@write", "+@scripting", "+@pubsub", "+@connection", "-@dangerous", "+wait", "+time"}
	aclWatcher = []string{"on", "resetkeys", "resetchannels", "&shop:tiercache:bus",
		"-@all", "+subscribe", "+ssubscribe", "+ping", "+hello", "+auth"}
)

// TestACLOfTheDocs: two caches whose Redis user has the documented rules
// load, fill, set and invalidate (keys and patterns) through each other;
// the documented watcher can subscribe but not publish, and the
// application's user cannot touch another namespace's keys.
func TestACLOfTheDocs(t *testing.T) {
	t.Run("Documented", func(t *testing.T) { aclOfTheDocs(t, aclApp, true) })
	// The rules documented before wake notices name the bus's channel
	// only: the caches work as before, without notices.
	busOnly := slices.Clone(aclApp)
	busOnly[slices.Index(busOnly, "&shop:tiercache:*")] = "&shop:tiercache:bus"
	t.Run("BusChannelOnly", func(t *testing.T) { aclOfTheDocs(t, busOnly, false) })
}

func aclOfTheDocs(t *testing.T, rules []string, wake bool) {
	srv := startRedis(t)
	admin := srv.Client(t)
	ctx := context.Background()
	setUser := func(name, pw string, rules []string) *redis.Client {
		args := []any{"ACL", "SETUSER", name, "reset", ">" + pw}
		for _, r := range rules {
			args = append(args, r)
		}
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("ACL SETUSER %s: %v", name, err)
		}
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: name, Password: pw, ContextTimeoutEnabled: true})
		t.Cleanup(func() { c.Close() })
		return c
	}
	app := setUser("app", "app-secret", rules)
	watcher := setUser("watcher", "watch-secret", aclWatcher)
	var nodes []*tiered.Group[string]
	var caches []*tiered.Cache
	for range 2 {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "app", Password: "app-secret", ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		c := newCache(t, tiered.Options{Redis: rdb, Namespace: "shop"}) // its bus subscribed
		if got := tiered.WakeOn(c); got != wake {
			t.Fatalf("wake notices on = %v; want %v", got, wake)
		}
		caches = append(caches, c)
		nodes = append(nodes, newGroup[string](t, c, "item", tiered.GroupOptions{}))
	}
	for _, id := range []string{"1", "2"} {
		for _, g := range nodes {
			if v, err := g.Fetch(ctx, id, constLoader("v1")); err != nil || v != "v1" {
				t.Fatalf("Fetch(%s) = %q, %v", id, v, err)
			}
		}
	}
	if err := nodes[0].Set(ctx, "1", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := caches[0].InvalidatePattern(ctx, "item:*"); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].Invalidate(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	for i, c := range caches {
		if s := c.Stats(); s.RedisErrors != 0 {
			t.Errorf("node %d: %d Redis errors under the documented ACL", i, s.RedisErrors)
		}
	}
	if err := app.Set(ctx, "other:k", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("app SET other:k = %v; want NOPERM", err)
	}
	sub := watcher.Subscribe(ctx, "shop:tiercache:bus")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("watcher SUBSCRIBE: %v", err)
	}
	if err := watcher.Publish(ctx, "shop:tiercache:bus", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Errorf("watcher PUBLISH = %v; want NOPERM", err)
	}
}
