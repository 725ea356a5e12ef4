package tiered_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// Article is the value type of the tag examples.
type Article struct {
	ID     string
	Author string
}

func loadArticle(_ context.Context, id string) (Article, error) {
	fmt.Println("loading post", id)
	return Article{ID: id, Author: "7"}, nil
}

// articleTags tags every post with its author: InvalidateTags("user:7")
// then reaches every post of user 7, whatever its key.
func articleTags(_ string, a Article) []string { return []string{"user:" + a.Author} }

func ExampleCache_InvalidateTags() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "blog"})
	defer c.Close()
	posts, _ := tiered.NewGroup[Article](c, "post", tiered.GroupOptions{TTL: time.Hour, Tags: articleTags})

	ctx := context.Background()
	_ = c.WaitBus(ctx)
	_, _ = posts.Fetch(ctx, "1", loadArticle) // loads
	_, _ = posts.Fetch(ctx, "1", loadArticle) // cached
	// User 7 changed their name: everything tagged with them goes, on
	// every node, with one write in Redis.
	_ = c.InvalidateTags(ctx, "user:7")
	_, _ = posts.Fetch(ctx, "1", loadArticle) // loads again
	// Output:
	// loading post 1
	// loading post 1
}

func ExampleGroup_Clear() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "blog"})
	defer c.Close()
	posts, _ := tiered.NewGroup[Article](c, "post", tiered.GroupOptions{TTL: time.Hour})
	drafts, _ := tiered.NewGroup[Article](c, "draft", tiered.GroupOptions{TTL: time.Hour})

	ctx := context.Background()
	_ = c.WaitBus(ctx)
	_, _ = posts.Fetch(ctx, "1", loadArticle)
	_, _ = drafts.Fetch(ctx, "2", loadArticle)
	_ = posts.Clear(ctx)                       // every post, no SCAN; drafts stay
	_, _ = posts.Fetch(ctx, "1", loadArticle)  // loads again
	_, _ = drafts.Fetch(ctx, "2", loadArticle) // still cached
	// Output:
	// loading post 1
	// loading post 2
	// loading post 1
}

func ExampleCache_Clear() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "blog"})
	defer c.Close()
	posts, _ := tiered.NewGroup[Article](c, "post", tiered.GroupOptions{TTL: time.Hour})

	ctx := context.Background()
	_ = c.WaitBus(ctx)
	_, _ = posts.Fetch(ctx, "1", loadArticle)
	_ = c.Clear(ctx)                          // every entry of the namespace, every group
	_, _ = posts.Fetch(ctx, "1", loadArticle) // loads again
	// Output:
	// loading post 1
	// loading post 1
}
