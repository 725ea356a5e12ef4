package tiered_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// BenchmarkWake measures how long a node that waits for another node's
// lease takes to return once that node's load ends, on a real local Redis:
// from the holder's loader returning (its fill follows) to the waiter's
// Fetch returning with the value. "notice" is the default (the fill's
// script publishes a wake notice); "poll" switches the waiter's notices off
// (it polls, as before notices); "pubsub" is a raw go-redis PUBLISH to one
// subscriber in the same run, from the PUBLISH call to the message's
// arrival, back to back; "pubsub-idle" is the same PUBLISH made 2ms after
// the last one, as a fill comes 2ms after the lease: the floor a notice
// cannot beat in the same conditions (the client, the server and the
// subscriber have gone idle meanwhile, and each wakes up again for it).
// Each reports the p50 and p99 in µs; the holder's load takes 2ms, as in
// the harness.
func BenchmarkWake(b *testing.B) {
	srv := startRedis(b)
	ctx := context.Background()
	for _, mode := range []string{"notice", "poll"} {
		b.Run(mode, func(b *testing.B) {
			_, ga := newWakeNode(b, srv.Addr())
			w, gw := newWakeNode(b, srv.Addr())
			tiered.SetNoWakeWait(w, mode == "poll")
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			run := time.Now().UnixNano() // every run loads keys of its own
			for i := 0; i < b.N; i++ {
				id := fmt.Sprint(run, "-", i)
				started, release := make(chan struct{}), make(chan time.Time, 1)
				go func() {
					_, _ = ga.Fetch(ctx, id, func(context.Context, string) (string, error) {
						close(started)
						time.Sleep(2 * time.Millisecond)
						release <- time.Now()
						return "v", nil
					})
				}()
				<-started
				if v, err := gw.Fetch(ctx, id, constLoader("w")); err != nil || v != "v" {
					b.Fatalf("the waiter read %q, %v; want the holder's value", v, err)
				}
				lat = append(lat, time.Since(<-release))
			}
			b.StopTimer()
			reportLatencies(b, "", lat)
		})
	}
	for _, idle := range []time.Duration{0, 2 * time.Millisecond} {
		name := "pubsub"
		if idle > 0 {
			name = "pubsub-idle"
		}
		b.Run(name, func(b *testing.B) { benchPubSub(b, srv.Addr(), idle) })
	}
}

// benchPubSub times a raw PUBLISH to one subscriber, from the call to the
// message's arrival, each made idle after the one before.
func benchPubSub(b *testing.B, addr string, idle time.Duration) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ps := rdb.Subscribe(ctx, "raw-wake")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	ch := ps.Channel()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if idle > 0 {
			time.Sleep(idle)
		}
		start := time.Now()
		if err := rdb.Publish(ctx, "raw-wake", "k").Err(); err != nil {
			b.Fatal(err)
		}
		<-ch
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, "", lat)
}

// newWakeNode is one node of BenchmarkWake, its bus subscribed.
func newWakeNode(b *testing.B, addr string) (*tiered.Cache, *tiered.Group[string]) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	b.Cleanup(func() { rdb.Close() })
	c := newCache(b, tiered.Options{Redis: rdb, Namespace: "wakebench", LeaseWait: time.Minute})
	if err := c.WaitBus(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c, newGroup[string](b, c, "post", tiered.GroupOptions{})
}
