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

// TestInvalidateIn: in another caller's pipeline, ahead of its PUBLISH (on
// a real server), a key whose window is open becomes a stale envelope and
// the others (a strict group's, a window already over) are unlinked; the
// outcome is charged to the breaker, and an open breaker adds none of
// them.
func TestInvalidateIn(t *testing.T) {
	piped := func(s *remote.Store, rdb *redis.Client, keys []string, ends []int64, now int64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p := rdb.Pipeline()
		done := s.InvalidateIn(ctx, p, keys, ends, now)
		p.Publish(ctx, "ch", "x")
		_, _ = p.Exec(ctx)
		return done()
	}
	t.Run("marks and unlinks", func(t *testing.T) {
		rdb := redistest.Start(t).Client(t)
		s, err := remote.New(rdb, remote.Options{Namespace: "ns", Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		keys := []string{"a", "b", "c"}
		for _, k := range keys {
			if err := s.Set(ctx, k, value("v-"+k, time.Minute), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UnixMilli()
		if err := piped(s, rdb, keys, []int64{now + 60_000, 0, now}, now); err != nil {
			t.Fatal(err)
		}
		if r := mustGet(t, s, "a"); r.Kind != remote.KindStale {
			t.Fatalf("a (window open): kind %v; want a stale envelope", r.Kind)
		}
		if n := rdb.Exists(ctx, "ns:b", "ns:c").Val(); n != 0 {
			t.Fatalf("%d of the strict key and the key whose window was over left in Redis; want 0", n)
		}
	})
	t.Run("breaker", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := miniClient(t, m)
		bs := newBreakerStore(t, rdb, remote.Options{BreakerFailures: 2, BreakerCooldown: time.Second})
		m.SetError(loading)
		now := time.Now().UnixMilli()
		keys, ends := []string{"k", "s"}, []int64{now + 60_000, 0}
		for i := range 2 {
			if err := piped(bs.Store, rdb, keys, ends, now); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
				t.Fatalf("piped invalidation #%d = %v; want the server's error", i, err)
			}
		}
		bs.expect(t, m.Addr(), true)
		m.SetError("")
		p := rdb.Pipeline()
		err := bs.InvalidateIn(context.Background(), p, keys, ends, now)()
		if !errors.Is(err, remote.ErrBreakerOpen) || p.Len() != 0 {
			t.Fatalf("InvalidateIn with the breaker open = %v, %d commands added; want ErrBreakerOpen and none", err, p.Len())
		}
	})
}
