package remote_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// TestMarkStale checks each case of a MaxStale invalidation on a real
// server and a real cluster: a live value becomes a stale envelope whose
// window ends when asked and whose PX is what is left of it; a stale
// envelope keeps its first window; a lease carrying one goes back to it
// (its holder's fill then fails); a plain lease, an expired value and a
// "not found" are unlinked.
func TestMarkStale(t *testing.T) {
	t.Run("single", func(t *testing.T) { markStaleCases(t, redistest.Start(t).Client(t)) })
	t.Run("cluster", func(t *testing.T) { markStaleCases(t, redistest.StartCluster(t).Client(t)) })
}

func markStaleCases(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	s := newStore(t, rdb, remote.Options{Namespace: "st"})
	now := time.Now().UnixMilli()
	end := now + 60_000
	value := remote.Record{Kind: remote.KindValue, Token: 7, Expire: now + 3_600_000, Payload: []byte(`"v0"`), Begin: 5, Tags: []string{"a"}}
	set := func(key string, rec remote.Record) {
		t.Helper()
		if err := s.Set(ctx, key, rec, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	set("value", value)
	set("expired", remote.Record{Kind: remote.KindValue, Token: 8, Expire: now - 1, Payload: []byte(`"old"`)})
	set("absent", remote.Record{Kind: remote.KindAbsent, Token: 9, Expire: now + 3_600_000})
	lease, won, _, err := s.Acquire(ctx, "lease", time.Minute)
	if err != nil || !won {
		t.Fatalf("Acquire = %v, %v", won, err)
	}
	keys := []string{"value", "expired", "absent", "lease", "missing"}
	if err := s.MarkStale(ctx, keys, end, now); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	st := got[0]
	if st.Kind != remote.KindStale || st.Expire != end || string(st.Payload) != `"v0"` || st.Begin != 5 || len(st.Tags) != 1 {
		t.Fatalf("value after MarkStale = %+v; want stale, window end %d, the value's payload, begin and tags", st, end)
	}
	if pttl := rdb.PTTL(ctx, "st:value").Val(); pttl <= 50*time.Second || pttl > time.Minute {
		t.Fatalf("stale PTTL = %v; want about the window", pttl)
	}
	for i, k := range keys[1:] {
		if got[i+1].Kind != remote.KindMiss {
			t.Fatalf("%s after MarkStale = %v; want removed", k, got[i+1].Kind)
		}
	}
	if ok, err := s.Fill(ctx, lease, value, time.Hour); err != nil || ok {
		t.Fatalf("fill of a lease removed by MarkStale = %v, %v; want false", ok, err)
	}

	// A second invalidation keeps the first window.
	if err := s.MarkStale(ctx, []string{"value"}, end+30_000, now+10); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Get(ctx, "value"); rec.Kind != remote.KindStale || rec.Token != st.Token || rec.Expire != end {
		t.Fatalf("after a second invalidation = %+v; want the first stale write (end %d)", rec, end)
	}

	// A lease taken over the stale envelope carries it; an invalidation
	// puts the envelope back for what is left of its window.
	taker := remote.Record{Kind: remote.KindLease, Token: 11, Expire: now + 60_000, Payload: st.Raw}
	if ok, err := s.Replace(ctx, "value", st, taker, time.Minute); err != nil || !ok {
		t.Fatalf("take-over = %v, %v", ok, err)
	}
	rec, _ := s.Get(ctx, "value")
	if c, ok := rec.StaleOf(); rec.Kind != remote.KindLease || !ok || c.Token != st.Token {
		t.Fatalf("after the take-over = %+v (carries %+v, %v); want a lease carrying the stale envelope", rec, c, ok)
	}
	if err := s.MarkStale(ctx, []string{"value"}, end+30_000, now+20_000); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Get(ctx, "value"); rec.Kind != remote.KindStale || rec.Token != st.Token {
		t.Fatalf("lease carrying a stale value, invalidated = %+v; want the stale envelope back", rec)
	}
	if pttl := rdb.PTTL(ctx, "st:value").Val(); pttl <= 30*time.Second || pttl > 40*time.Second {
		t.Fatalf("PTTL = %v; want what is left of the first window (40s)", pttl)
	}
	if ok, err := s.Fill(ctx, remote.Lease{Key: "value", Token: 11}, value, time.Hour); err != nil || ok {
		t.Fatalf("fill under the removed lease = %v, %v; want false", ok, err)
	}

	// A window already over is an UNLINK.
	if err := s.MarkStale(ctx, []string{"value"}, now, now); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.Get(ctx, "value"); rec.Kind != remote.KindMiss {
		t.Fatalf("window over = %v; want removed", rec.Kind)
	}
}
