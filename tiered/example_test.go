package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// Profile is the value type of the examples.
type Profile struct {
	ID   string
	Name string
}

// loadProfile stands in for a database query. A package-level function keeps
// L1 hits allocation-free (a closure built per call would allocate).
func loadProfile(_ context.Context, id string) (Profile, error) {
	fmt.Println("loading", id, "from the database")
	return Profile{ID: id, Name: "user " + id}, nil
}

func ExampleNew() {
	mr, _ := miniredis.Run() // an embedded Redis; use your own server's address
	defer mr.Close()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 []string{mr.Addr()},
		ContextTimeoutEnabled: true,
	})
	defer rdb.Close()

	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{TTL: time.Hour})
	fmt.Println(profiles.Key("42"))
	// Output: user_profile:42
}

func ExampleGroup_Fetch() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{TTL: time.Hour})

	ctx := context.Background()
	_ = c.WaitBus(ctx)                             // until the invalidation bus is up, L1 keeps entries for 1s only
	u, _ := profiles.Fetch(ctx, "42", loadProfile) // a miss: loads and fills both tiers
	fmt.Println(u.Name)
	c.WaitL1()
	u, _ = profiles.Fetch(ctx, "42", loadProfile) // an L1 hit
	fmt.Println(u.Name)
	fmt.Println("in redis:", mr.Exists("shop:user_profile:42"))
	s := profiles.Stats()
	fmt.Println("loads:", s.Loads, "L1 hits:", s.L1Hits)
	// Output:
	// loading 42 from the database
	// user 42
	// user 42
	// in redis: true
	// loads: 1 L1 hits: 1
}

func ExampleGroup_FetchMany() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{})

	ctx := context.Background()
	_ = profiles.Set(ctx, "1", Profile{ID: "1", Name: "Ann"})
	loadMany := func(_ context.Context, ids []string) (map[string]Profile, error) {
		fmt.Println("loading", ids, "in one query")
		out := map[string]Profile{}
		for _, id := range ids {
			if id != "404" { // 404 does not exist
				out[id] = Profile{ID: id, Name: "user " + id}
			}
		}
		return out, nil
	}
	got, _ := profiles.FetchMany(ctx, []string{"1", "2", "3", "404"}, loadMany)
	ids := make([]string, 0, len(got))
	for id := range got {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Println(id, got[id].Name)
	}
	// Output:
	// loading [2 3 404] in one query
	// 1 Ann
	// 2 user 2
	// 3 user 3
}

func ExampleCache_InvalidatePattern() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "blog"})
	defer c.Close()
	lists, _ := tiered.NewGroup[[]string](c, "posts", tiered.GroupOptions{})
	ctx := context.Background()
	_ = c.WaitBus(ctx)
	for _, id := range []string{"user_5_page_1", "user_5_page_2", "user_50_page_1"} {
		_ = lists.Set(ctx, id, []string{"a post"})
	}

	// The decorator's pattern_to_invalidate_extra, with a value from the
	// request: the value is escaped, and nothing is appended behind it.
	tmpl := tiered.MustParsePattern("posts:user_{user_id}_*")
	pattern, _ := tmpl.ExpandMap(map[string]string{"user_id": "5"})
	fmt.Println(pattern)
	_ = c.InvalidatePattern(ctx, pattern)
	fmt.Println(mr.Exists("blog:posts:user_5_page_1"), mr.Exists("blog:posts:user_5_page_2"), mr.Exists("blog:posts:user_50_page_1"))

	evil, _ := tmpl.ExpandMap(map[string]string{"user_id": "*"})
	fmt.Println(evil)
	// Output:
	// posts:user_5_*
	// false false true
	// posts:user_\*_*
}

// errNoSuchUser is what the loader below returns for an id that does not
// exist: it wraps tiered.ErrNotFound.
var errNoSuchUser = fmt.Errorf("no such user: %w", tiered.ErrNotFound)

func loadMaybe(_ context.Context, id string) (Profile, error) {
	fmt.Println("loading", id, "from the database")
	if id == "404" {
		return Profile{}, errNoSuchUser
	}
	return Profile{ID: id, Name: "user " + id}, nil
}

// ExampleGroupOptions_negativeTTL caches a "not found" answer: the second
// Fetch of a missing id does not reach the database, and Get tells it apart
// from an id that is not cached at all.
func ExampleGroupOptions_negativeTTL() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{
		TTL:         time.Hour,
		NegativeTTL: time.Minute, // creating user 404 must then invalidate its id
	})
	ctx := context.Background()
	_ = c.WaitBus(ctx)

	_, err := profiles.Fetch(ctx, "404", loadMaybe)
	fmt.Println(err)
	c.WaitL1()
	_, err = profiles.Fetch(ctx, "404", loadMaybe) // from the cache: no load
	fmt.Println(errors.Is(err, tiered.ErrNotFound))
	_, err = profiles.Get(ctx, "7")
	fmt.Println(errors.Is(err, tiered.ErrNotCached))
	// Output:
	// loading 404 from the database
	// no such user: tiered: not found
	// true
	// true
}
