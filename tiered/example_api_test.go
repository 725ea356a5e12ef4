package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// NewGroup makes the typed view of one kind of value: its name is the key
// prefix, and each name may be used once per cache.
func ExampleNewGroup() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()

	profiles, err := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{TTL: time.Hour})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(profiles.Name(), profiles.Key("42"))

	_, err = tiered.NewGroup[string](c, "user_profile", tiered.GroupOptions{})
	fmt.Println("same name again:", err != nil)
	_, err = tiered.NewGroup[Profile](c, "sessions", tiered.GroupOptions{TTL: -time.Second})
	fmt.Println("negative TTL:", err != nil)
	// Output:
	// user_profile user_profile:42
	// same name again: true
	// negative TTL: true
}

// Get reads the cache only: it never calls a loader, and tells an id that
// is not cached from one cached as not existing.
func ExampleGroup_Get() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{})
	ctx := context.Background()
	_ = c.WaitBus(ctx)

	_, err := profiles.Get(ctx, "42")
	fmt.Println("before:", errors.Is(err, tiered.ErrNotCached))
	_, _ = profiles.Fetch(ctx, "42", loadProfile)
	u, err := profiles.Get(ctx, "42")
	fmt.Println("after:", u.Name, err)
	// Output:
	// before: true
	// loading 42 from the database
	// after: user 42 <nil>
}

// Set writes a value through both tiers after the source of truth changed:
// the next reads, on any node, get it without loading.
func ExampleGroup_Set() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{TTL: time.Hour})
	ctx := context.Background()
	_ = c.WaitBus(ctx)

	if err := profiles.Set(ctx, "42", Profile{ID: "42", Name: "Ann"}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("in redis:", mr.Exists("shop:user_profile:42"))
	u, _ := profiles.Fetch(ctx, "42", loadProfile) // a hit: no load
	fmt.Println(u.Name)
	// Output:
	// in redis: true
	// Ann
}

// Invalidate removes ids from Redis and from every node's L1; the next
// read loads the new value.
func ExampleGroup_Invalidate() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{TTL: time.Hour})
	ctx := context.Background()
	_ = c.WaitBus(ctx)

	_, _ = profiles.Fetch(ctx, "42", loadProfile)
	if err := profiles.Invalidate(ctx, "42"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("in redis:", mr.Exists("shop:user_profile:42"))
	_, _ = profiles.Fetch(ctx, "42", loadProfile) // loads again
	fmt.Println("empty id refused:", profiles.Invalidate(ctx, "") != nil)
	// Output:
	// loading 42 from the database
	// in redis: false
	// loading 42 from the database
	// empty id refused: true
}

// Cache.Invalidate takes keys as Group.Key returns them, so code that knows
// no group (an HTTP handler, a consumer of database changes) can
// invalidate. It returns nil only once the keys left Redis and the message
// to the other nodes went out: nothing waits for a retry.
func ExampleCache_Invalidate() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{TTL: time.Hour})
	ctx := context.Background()
	_ = c.WaitBus(ctx)
	_ = profiles.Set(ctx, "42", Profile{ID: "42", Name: "Ann"})

	err := c.Invalidate(ctx, profiles.Key("42"))
	fmt.Println("err:", err, "pending:", c.PendingInvalidations())
	_, err = profiles.Get(ctx, "42")
	fmt.Println("cached:", !errors.Is(err, tiered.ErrNotCached))
	// Output:
	// err: <nil> pending: 0
	// cached: false
}

// A key template substitutes its values as they are: a key is literal.
func ExampleParseKey() {
	t, err := tiered.ParseKey("user_posts:{user_id}")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Names(), t.IsPattern())
	key, _ := t.ExpandMap(map[string]string{"user_id": "*"})
	fmt.Println(key)
	_, err = tiered.ParseKey("user_posts:{7}")
	fmt.Println("bad placeholder:", err != nil)
	// Output:
	// [user_id] false
	// user_posts:*
	// bad placeholder: true
}

// A pattern template escapes every value it substitutes, so a value of
// "*" matches the one key with that id.
func ExampleParsePattern() {
	t, err := tiered.ParsePattern("posts:user_{user_id}_*")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range []string{"5", "*"} {
		p, _ := t.ExpandMap(map[string]string{"user_id": id})
		fmt.Println(p)
	}
	_, err = tiered.ParsePattern("posts:[{c}]")
	fmt.Println("placeholder in a class:", err != nil)
	// Output:
	// posts:user_5_*
	// posts:user_\*_*
	// placeholder in a class: true
}

// Expand takes its values from a function, such as a request's path
// values; a placeholder it has no value for is an error.
func ExampleTemplate_Expand() {
	t := tiered.MustParseKey("orders:{shop}:{order_id}")
	path := map[string]string{"shop": "north", "order_id": "17"} // r.PathValue, say
	value := func(name string) (string, bool) {
		v, ok := path[name]
		return v, ok
	}
	key, err := t.Expand(value)
	fmt.Println(key, err)

	delete(path, "order_id")
	_, err = t.Expand(value)
	fmt.Println(err != nil)
	// Output:
	// orders:north:17 <nil>
	// true
}
