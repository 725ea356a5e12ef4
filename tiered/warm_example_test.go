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

// Country, Post and the functions below stand in for a database.
type Country struct{ Code, Name string }

type Post struct {
	ID, Title string
}

var countryNames = map[string]string{"FR": "France", "JP": "Japan", "NZ": "New Zealand"}

func loadCountries(_ context.Context, codes []string) (map[string]Country, error) {
	out := map[string]Country{}
	for _, c := range codes {
		out[c] = Country{Code: c, Name: countryNames[c]}
	}
	return out, nil
}

func loadPosts(_ context.Context, ids []string) (map[string]Post, error) {
	out := map[string]Post{}
	for _, id := range ids {
		out[id] = Post{ID: id, Title: "post " + id}
	}
	return out, nil
}

func loadProfile2(_ context.Context, id string) (Profile, error) {
	return Profile{ID: id, Name: "user " + id}, nil
}

// loadFirstPage loads a user's ten most recent posts; user 3's query fails.
func loadFirstPage(_ context.Context, user string) ([]Post, error) {
	if user == "3" {
		return nil, errors.New("timeout")
	}
	return []Post{{ID: user + "01", Title: "latest"}}, nil
}

// The three start-up warmers of a web service: reference data that rarely
// changes, popular content, and the data of recently active users, each
// reporting its progress.
func ExampleGroup_Warm() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "app", RedisTimeout: time.Second})
	defer c.Close()
	ctx := context.Background()
	_ = c.WaitBus(ctx) // confirming the bus flushes L1: warm after it

	countries, _ := tiered.NewGroup[Country](c, "country", tiered.GroupOptions{TTL: 24 * time.Hour})
	posts, _ := tiered.NewGroup[Post](c, "post_cache", tiered.GroupOptions{TTL: 30 * time.Minute})
	profiles, _ := tiered.NewGroup[Profile](c, "user_profile", tiered.GroupOptions{TTL: time.Hour})
	firstPages, _ := tiered.NewGroup[[]Post](c, "user_posts_page_1", tiered.GroupOptions{TTL: 30 * time.Minute})

	report := func(what string) func(tiered.WarmProgress) {
		return func(p tiered.WarmProgress) {
			if p.Done == p.Total { // Progress also comes after every batch
				fmt.Printf("%s: %d of %d warmed, %d failed\n", what, p.Done-p.Failed, p.Total, p.Failed)
			}
		}
	}

	// Reference data: one batch query.
	_ = countries.Warm(ctx, []string{"FR", "JP", "NZ"}, tiered.WarmOptions[Country]{
		LoadMany: loadCountries, Progress: report("countries"),
	})

	// Popular content: the 100 most viewed posts, 25 per query.
	popular := make([]string, 100)
	for i := range popular {
		popular[i] = fmt.Sprint(i + 1)
	}
	_ = posts.Warm(ctx, popular, tiered.WarmOptions[Post]{
		LoadMany: loadPosts, BatchSize: 25, Progress: report("popular posts"),
	})

	// Recently active users: profile and first page of posts, one query each.
	active := []string{"1", "2", "3"}
	_ = profiles.Warm(ctx, active, tiered.WarmOptions[Profile]{Load: loadProfile2, Progress: report("profiles")})
	err := firstPages.Warm(ctx, active, tiered.WarmOptions[[]Post]{Load: loadFirstPage, Progress: report("first pages")})
	fmt.Println(err)

	p, _ := posts.Peek("42") // served from this node's L1
	fmt.Println(p.Title, mr.Exists("app:post_cache:42"), mr.Exists("app:user_posts_page_1:3"))
	// Output:
	// countries: 3 of 3 warmed, 0 failed
	// popular posts: 100 of 100 warmed, 0 failed
	// profiles: 3 of 3 warmed, 0 failed
	// first pages: 2 of 3 warmed, 1 failed
	// tiered: warm "user_posts_page_1": 1 failed (3): id "3": timeout
	// post 42 true false
}

// A fresh process copies the hot keys that another process already cached
// from Redis into its L1, with pipelined reads, before taking traffic.
func ExampleCache_WarmL1() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	ctx := context.Background()

	old, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "app"})
	oldPosts, _ := tiered.NewGroup[Post](old, "post_cache", tiered.GroupOptions{})
	_ = oldPosts.Set(ctx, "1", Post{ID: "1", Title: "hello"})
	old.Close()

	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "app", RedisTimeout: time.Second})
	defer c.Close()
	posts, _ := tiered.NewGroup[Post](c, "post_cache", tiered.GroupOptions{})
	found, err := c.WarmL1(ctx, []string{posts.Key("1"), posts.Key("2")})
	fmt.Println(found, err)
	p, inL1 := posts.Peek("1")
	fmt.Println(p.Title, inL1)
	// Output:
	// 1 <nil>
	// hello true
}
