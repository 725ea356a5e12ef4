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

// A price expires, then the database goes down: with FailSafe the caller
// still gets the last price, and FetchInfo tells it is a fallback.
func ExampleGroup_FetchInfo() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	prices, _ := tiered.NewGroup[int](c, "price", tiered.GroupOptions{
		TTL:      20 * time.Millisecond,
		FailSafe: time.Hour, // keep an expired price for an hour, as a fallback
	})
	ctx := context.Background()
	_ = c.WaitBus(ctx)

	v, s, err := prices.FetchInfo(ctx, "eur", func(context.Context, string) (int, error) { return 100, nil })
	fmt.Println(v, s.Fallback, err)

	time.Sleep(40 * time.Millisecond) // the price expires
	v, s, err = prices.FetchInfo(ctx, "eur", func(context.Context, string) (int, error) {
		return 0, errors.New("database down")
	})
	fmt.Println(v, s.Fallback, err)
	fmt.Println("fallbacks served:", prices.Stats().FailSafe)
	// Output:
	// 100 false <nil>
	// 100 true <nil>
	// fallbacks served: 1
}

// Each value decides its own TTL: here a finished order is kept for a day,
// one in progress for a minute.
func ExampleGroupOptions_adaptiveTTL() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop", DisableJitter: true})
	defer c.Close()
	type Order struct{ Done bool }
	orders, _ := tiered.NewGroup[Order](c, "order", tiered.GroupOptions{
		TTL: time.Minute,
		TTLOf: func(_ string, v any) time.Duration {
			if v.(Order).Done {
				return 24 * time.Hour
			}
			return 0 // the group's TTL
		},
	})
	ctx := context.Background()
	_ = c.WaitBus(ctx)
	load := func(_ context.Context, id string) (Order, error) { return Order{Done: id == "1"}, nil }
	for _, id := range []string{"1", "2"} {
		_, _ = orders.Fetch(ctx, id, load)
		fmt.Println("order", id, "lives", mr.TTL("shop:order:"+id))
	}
	// Output:
	// order 1 lives 24h0m0s
	// order 2 lives 1m0s
}

// Each "not found" decides how long it is cached: here an id that can never
// exist is remembered for an hour, one that may be created any moment is
// not remembered at all (the group's NegativeTTL is 0).
func ExampleGroupOptions_adaptiveNegativeTTL() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop", DisableJitter: true})
	defer c.Close()
	errMalformed := fmt.Errorf("malformed order id: %w", tiered.ErrNotFound)
	orders, _ := tiered.NewGroup[string](c, "order", tiered.GroupOptions{
		NegativeTTLOf: func(_ string, err error) time.Duration {
			if errors.Is(err, errMalformed) {
				return time.Hour
			}
			return 0 // the group's NegativeTTL: 0, not cached
		},
	})
	ctx := context.Background()
	_ = c.WaitBus(ctx)
	load := func(_ context.Context, id string) (string, error) {
		if id == "x!" {
			return "", errMalformed
		}
		return "", fmt.Errorf("no order %s yet: %w", id, tiered.ErrNotFound)
	}
	for _, id := range []string{"x!", "7"} {
		_, err := orders.Fetch(ctx, id, load)
		fmt.Printf("order %s: %v; cached for %v\n", id, err, mr.TTL("shop:order:"+id))
	}
	// Output:
	// order x!: malformed order id: tiered: not found; cached for 1h0m0s
	// order 7: no order 7 yet: tiered: not found; cached for 0s
}

// PeekInfo tells a caller that only looks at L1 (an HTTP cache choosing its
// X-Cache header) whether the value there is a fail-safe fallback.
func ExampleGroup_PeekInfo() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	c, _ := tiered.New(tiered.Options{Redis: rdb, Namespace: "shop"})
	defer c.Close()
	prices, _ := tiered.NewGroup[int](c, "price", tiered.GroupOptions{TTL: 500 * time.Millisecond, FailSafe: time.Hour})
	ctx := context.Background()
	_ = c.WaitBus(ctx)

	_, _ = prices.Fetch(ctx, "eur", func(context.Context, string) (int, error) { return 100, nil })
	c.WaitL1()
	v, s, ok := prices.PeekInfo("eur")
	fmt.Println(v, s.Fallback, ok)

	time.Sleep(600 * time.Millisecond) // the price expires, and the database goes down
	_, _ = prices.Fetch(ctx, "eur", func(context.Context, string) (int, error) { return 0, errors.New("database down") })
	c.WaitL1() // the fallback stays in L1 for FailSafeThrottle
	v, s, ok = prices.PeekInfo("eur")
	fmt.Println(v, s.Fallback, ok)
	// Output:
	// 100 false true
	// 100 true true
}
