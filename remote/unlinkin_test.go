package remote_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// pipedUnlink runs UnlinkIn of keys in a pipeline with a PUBLISH after the
// UNLINKs, as the bus does, and returns the outcome read while the
// pipeline's context is live.
func pipedUnlink(s *remote.Store, rdb *redis.Client, keys ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := rdb.Pipeline()
	done := s.UnlinkIn(ctx, p, keys)
	p.Publish(ctx, "ch", "x")
	_, _ = p.Exec(ctx)
	return done()
}

// TestUnlinkIn: the UNLINKs added to another caller's pipeline remove the
// keys (on a real server), and their outcome is charged to the breaker as
// Unlink's: failures open it, and an open breaker adds nothing.
func TestUnlinkIn(t *testing.T) {
	t.Run("removes", func(t *testing.T) {
		rdb := redistest.Start(t).Client(t)
		s, err := remote.New(rdb, remote.Options{Namespace: "ns"})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		rdb.Set(ctx, "ns:a", "1", 0)
		rdb.Set(ctx, "ns:b", "1", 0)
		if !s.Pipelines(rdb) {
			t.Fatal("a single server's store does not pipeline with its own client")
		}
		if err := pipedUnlink(s, rdb, "a", "b"); err != nil {
			t.Fatal(err)
		}
		if n := rdb.Exists(ctx, "ns:a", "ns:b").Val(); n != 0 {
			t.Fatalf("%d keys left", n)
		}
		other := redistest.Start(t).Client(t)
		if s.Pipelines(other) {
			t.Fatal("the store pipelines with a client that is not its own")
		}
	})
	t.Run("breaker", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := miniClient(t, m)
		bs := newBreakerStore(t, rdb, remote.Options{BreakerFailures: 2, BreakerCooldown: time.Second})
		m.SetError(loading)
		for i := range 2 {
			if err := pipedUnlink(bs.Store, rdb, "k"); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
				t.Fatalf("piped UNLINK #%d = %v; want the server's error", i, err)
			}
		}
		bs.expect(t, m.Addr(), true)
		m.SetError("")
		sent := m.CommandCount()
		p := rdb.Pipeline()
		err := bs.UnlinkIn(context.Background(), p, []string{"k"})()
		if !errors.Is(err, remote.ErrBreakerOpen) || p.Len() != 0 || m.CommandCount() != sent {
			t.Fatalf("UnlinkIn with the breaker open = %v, %d commands added; want ErrBreakerOpen and none", err, p.Len())
		}
	})
}

// TestMarkStaleIn: the stale marks added to another caller's pipeline turn
// the values into stale envelopes ahead of the pipeline's PUBLISH (on a
// real server), a window already over unlinks, and the outcome is charged
// to the breaker: failures open it, and an open breaker adds nothing.
func TestMarkStaleIn(t *testing.T) {
	piped := func(s *remote.Store, rdb *redis.Client, end, now int64, keys ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p := rdb.Pipeline()
		done := s.MarkStaleIn(ctx, p, keys, end, now)
		p.Publish(ctx, "ch", "x")
		_, _ = p.Exec(ctx)
		return done()
	}
	t.Run("marks", func(t *testing.T) {
		rdb := redistest.Start(t).Client(t)
		s, err := remote.New(rdb, remote.Options{Namespace: "ns", Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, k := range []string{"a", "b"} {
			if err := s.Set(ctx, k, value("v-"+k, time.Minute), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UnixMilli()
		if err := piped(s, rdb, now+60_000, now, "a"); err != nil {
			t.Fatal(err)
		}
		if r := mustGet(t, s, "a"); r.Kind != remote.KindStale {
			t.Fatalf("a after MarkStaleIn: kind %v; want a stale envelope", r.Kind)
		}
		if err := piped(s, rdb, now, now, "b"); err != nil {
			t.Fatal(err)
		}
		if n := rdb.Exists(ctx, "ns:b").Val(); n != 0 {
			t.Fatal("a window already over left the key in Redis")
		}
	})
	t.Run("breaker", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := miniClient(t, m)
		bs := newBreakerStore(t, rdb, remote.Options{BreakerFailures: 2, BreakerCooldown: time.Second})
		m.SetError(loading)
		now := time.Now().UnixMilli()
		for i := range 2 {
			if err := piped(bs.Store, rdb, now+60_000, now, "k"); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
				t.Fatalf("piped stale mark #%d = %v; want the server's error", i, err)
			}
		}
		bs.expect(t, m.Addr(), true)
		m.SetError("")
		p := rdb.Pipeline()
		err := bs.MarkStaleIn(context.Background(), p, []string{"k"}, now+60_000, now)()
		if !errors.Is(err, remote.ErrBreakerOpen) || p.Len() != 0 {
			t.Fatalf("MarkStaleIn with the breaker open = %v, %d commands added; want ErrBreakerOpen and none", err, p.Len())
		}
	})
}
