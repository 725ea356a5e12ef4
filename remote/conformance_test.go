package remote_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// backend makes a fresh, empty Redis for one test and returns a client.
type backend func(t *testing.T) redis.UniversalClient

func miniredisBackend(t *testing.T) redis.UniversalClient {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func realBackend(t *testing.T) redis.UniversalClient {
	return redistest.Start(t).Client(t)
}

// TestConformance runs the L2 contract against every backend: miniredis, a
// real redis-server, and a real Redis Cluster (3 masters with a replica
// each, emptied before every case).
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name string
		new  backend
	}{{"miniredis", miniredisBackend}, {"redis", realBackend}} {
		t.Run(b.name, func(t *testing.T) { RunConformance(t, b.new) })
	}
}

func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	RunConformance(t, func(t *testing.T) redis.UniversalClient {
		cl.Flush(t)
		return cl.Client(t)
	})
}

// RunConformance is the L2 conformance suite.
func RunConformance(t *testing.T, newClient backend) {
	cases := []struct {
		name string
		run  func(t *testing.T, s *remote.Store, rdb redis.UniversalClient)
	}{
		{"MissIsNotAnError", testMiss},
		{"SetGetRoundTrip", testRoundTrip},
		{"AcquireIsExclusive", testAcquire},
		{"AcquireIsExclusiveWithScript", func(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
			remote.UseLeaseScript(s)
			testAcquire(t, s, rdb)
			testMany(t, s, rdb)
		}},
		{"AcquireAtReadsTheTime", testAcquireAt},
		{"FillNeedsTheLease", testFill},
		{"FillAfterUnlinkWritesNothing", testFillAfterUnlink},
		{"FillAfterSetKeepsTheSet", testFillAfterSet},
		{"ReleaseOnlyOwnLease", testRelease},
		{"RenewOnlyOwnLease", testRenew},
		{"ForeignAndCorrupt", testForeignCorrupt},
		{"DiscardIsCompareAndDelete", testDiscard},
		{"ManyOperations", testMany},
		{"PipelinedScriptsSurviveScriptFlush", testScriptFlush},
		{"NamespaceConfinement", testNamespace},
		{"ManyKeysAcrossSlots", testManyKeys},
		{"FillManyAfterScriptFlush", testFillManyAfterFlush},
		{"LoadScripts", testLoadScripts},
		{"ResentAcquireIsWon", testResentAcquire},
		{"FailedAcquireLeavesNoLease", testFailedAcquire},
		{"OldServerFallsBackToScript", testOldServer},
		{"DeletePattern", testDeletePattern},
		{"DeletePatternManyKeys", testDeletePatternMany},
		{"DeletePatternWith", testDeletePatternWith},
		{"HandOffBesideTheFill", testHandOff},
		{"WakeNotices", testWake},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rdb := newClient(t)
			// The cases check what Redis holds, not how fast: a per-call
			// timeout that a busy machine cannot meet would fail them
			// for the wrong reason.
			s, err := remote.New(rdb, remote.Options{Namespace: "conf", Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			tc.run(t, s, rdb)
		})
	}
}

func value(payload string, ttl time.Duration) remote.Record {
	return remote.Record{
		Kind: remote.KindValue, Token: remote.NewToken(), LoadTime: 1500 * time.Microsecond,
		Expire: time.Now().Add(ttl).UnixMilli(), Payload: []byte(payload),
	}
}

func mustGet(t *testing.T, s *remote.Store, key string) remote.Record {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q) error: %v", key, err)
	}
	return r
}

func testMiss(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	if r := mustGet(t, s, "nope"); r.Kind != remote.KindMiss {
		t.Fatalf("Get(missing).Kind = %v; want miss", r.Kind)
	}
}

func testRoundTrip(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	in := value("hello", time.Minute)
	if err := s.Set(ctx, "k", in, time.Minute); err != nil {
		t.Fatal(err)
	}
	out := mustGet(t, s, "k")
	if out.Kind != remote.KindValue || out.Token != in.Token || out.Expire != in.Expire ||
		out.LoadTime != in.LoadTime || string(out.Payload) != "hello" {
		t.Fatalf("Get = %+v; want %+v", out, in)
	}
	pttl := rdb.PTTL(ctx, "conf:k").Val()
	if pttl <= 0 || pttl > time.Minute {
		t.Fatalf("PTTL = %v; want in (0, 1m]", pttl)
	}
}

func testAcquire(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	l, won, _, err := s.Acquire(ctx, "k", 5*time.Second)
	if err != nil || !won {
		t.Fatalf("first Acquire = won %v, err %v; want won", won, err)
	}
	_, won2, found, err := s.Acquire(ctx, "k", 5*time.Second)
	if err != nil || won2 {
		t.Fatalf("second Acquire = won %v, err %v; want lost", won2, err)
	}
	if found.Kind != remote.KindLease || found.Token != l.Token {
		t.Fatalf("second Acquire found %v token %x; want lease %x", found.Kind, found.Token, l.Token)
	}
	if pttl := rdb.PTTL(ctx, "conf:k").Val(); pttl <= 0 || pttl > 5*time.Second {
		t.Fatalf("lease PTTL = %v; want in (0, 5s]", pttl)
	}
	if r := mustGet(t, s, "k"); r.Kind != remote.KindLease {
		t.Fatalf("Get during lease = %v; want lease", r.Kind)
	}
}

// testAcquireAt: AcquireAt takes a missing key's lease like Acquire, and
// its Taken is the server's time between a TIME before and one after; a
// key that holds something is returned, not taken, with no time; after
// SCRIPT FLUSH it still works (EVAL after NOSCRIPT).
func testAcquireAt(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	before, err := s.Time(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	l, won, _, err := s.AcquireAt(ctx, "k", 5*time.Second)
	if err != nil || !won {
		t.Fatalf("first AcquireAt = won %v, err %v; want won", won, err)
	}
	after, _ := s.Time(ctx, "k")
	if l.Taken < before || l.Taken > after {
		t.Fatalf("Taken = %d; want the server's time, in [%d, %d]", l.Taken, before, after)
	}
	l2, won2, found, err := s.AcquireAt(ctx, "k", 5*time.Second)
	if err != nil || won2 || l2.Taken != 0 {
		t.Fatalf("second AcquireAt = won %v, Taken %d, err %v; want lost, no time", won2, l2.Taken, err)
	}
	if found.Kind != remote.KindLease || found.Token != l.Token {
		t.Fatalf("second AcquireAt found %v token %x; want lease %x", found.Kind, found.Token, l.Token)
	}
	if pttl := rdb.PTTL(ctx, "conf:k").Val(); pttl <= 0 || pttl > 5*time.Second {
		t.Fatalf("lease PTTL = %v; want in (0, 5s]", pttl)
	}
	if ok, err := s.Fill(ctx, l, value("v1", time.Minute), time.Minute); !ok || err != nil {
		t.Fatalf("Fill(lease of AcquireAt) = %v, %v; want true, nil", ok, err)
	}
	if _, won, found, err := s.AcquireAt(ctx, "k", 5*time.Second); err != nil || won || string(found.Payload) != "v1" {
		t.Fatalf("AcquireAt of a filled key = won %v, %q, %v; want its value", won, found.Payload, err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, won, _, err := s.AcquireAt(ctx, "k2", 5*time.Second); err != nil || !won {
		t.Fatalf("AcquireAt after SCRIPT FLUSH = won %v, err %v; want won", won, err)
	}
}

func testFill(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	l, _, _, _ := s.Acquire(ctx, "k", 5*time.Second)
	wrong := remote.Lease{Key: "k", Token: l.Token + 1}
	if ok, err := s.Fill(ctx, wrong, value("x", time.Minute), time.Minute); ok || err != nil {
		t.Fatalf("Fill(wrong lease) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.Fill(ctx, l, value("v1", time.Minute), time.Minute); !ok || err != nil {
		t.Fatalf("Fill(own lease) = %v, %v; want true, nil", ok, err)
	}
	if ok, _ := s.Fill(ctx, l, value("v2", time.Minute), time.Minute); ok {
		t.Fatal("second Fill with a consumed lease succeeded")
	}
	if r := mustGet(t, s, "k"); string(r.Payload) != "v1" {
		t.Fatalf("value = %q; want v1", r.Payload)
	}
}

func testFillAfterUnlink(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	l, _, _, _ := s.Acquire(ctx, "k", 5*time.Second)
	if err := s.Unlink(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Fill(ctx, l, value("stale", time.Minute), time.Minute); ok {
		t.Fatal("Fill after Unlink succeeded: a stale value was installed")
	}
	if r := mustGet(t, s, "k"); r.Kind != remote.KindMiss {
		t.Fatalf("after a failed fill Get = %v; want miss", r.Kind)
	}
}

func testFillAfterSet(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	l, _, _, _ := s.Acquire(ctx, "k", 5*time.Second)
	if err := s.Set(ctx, "k", value("new", time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Fill(ctx, l, value("old", time.Minute), time.Minute); ok {
		t.Fatal("Fill over a newer Set succeeded")
	}
	if r := mustGet(t, s, "k"); string(r.Payload) != "new" {
		t.Fatalf("value = %q; want new", r.Payload)
	}
}

func testRelease(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	l, _, _, _ := s.Acquire(ctx, "k", 5*time.Second)
	if ok, _ := s.Release(ctx, remote.Lease{Key: "k", Token: l.Token ^ 1}); ok {
		t.Fatal("Release of someone else's lease removed it")
	}
	if ok, err := s.Release(ctx, l); !ok || err != nil {
		t.Fatalf("Release(own) = %v, %v; want true", ok, err)
	}
	if r := mustGet(t, s, "k"); r.Kind != remote.KindMiss {
		t.Fatalf("after Release Get = %v; want miss", r.Kind)
	}
}

func testRenew(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	l, _, _, _ := s.Acquire(ctx, "k", time.Second)
	if ok, _ := s.Renew(ctx, remote.Lease{Key: "k", Token: l.Token ^ 1}, time.Hour); ok {
		t.Fatal("Renew of someone else's lease succeeded")
	}
	if ok, err := s.Renew(ctx, l, time.Hour); !ok || err != nil {
		t.Fatalf("Renew(own) = %v, %v; want true", ok, err)
	}
	if pttl := rdb.PTTL(ctx, "conf:k").Val(); pttl <= time.Second {
		t.Fatalf("PTTL after Renew = %v; want > 1s", pttl)
	}
}

func testForeignCorrupt(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	rdb.Set(ctx, "conf:foreign", []byte{0xC7, 99, 1, 2, 3}, 0)
	rdb.Set(ctx, "conf:corrupt", "plain text", 0)
	rdb.Set(ctx, "conf:short", []byte{0xC7, 1, 1}, 0)
	for key, want := range map[string]remote.Kind{
		"foreign": remote.KindForeign, "corrupt": remote.KindCorrupt, "short": remote.KindCorrupt,
	} {
		if r := mustGet(t, s, key); r.Kind != want {
			t.Errorf("Get(%q).Kind = %v; want %v", key, r.Kind, want)
		}
	}
}

func testDiscard(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	rdb.Set(ctx, "conf:k", "garbage", 0)
	r := mustGet(t, s, "k")
	rdb.Set(ctx, "conf:k", "newer", 0)
	if ok, _ := s.Discard(ctx, "k", r); ok {
		t.Fatal("Discard removed a value written after the read")
	}
	r = mustGet(t, s, "k")
	if ok, err := s.Discard(ctx, "k", r); !ok || err != nil {
		t.Fatalf("Discard = %v, %v; want true", ok, err)
	}
	if n := rdb.Exists(ctx, "conf:k").Val(); n != 0 {
		t.Fatal("key still exists after Discard")
	}
}

func testMany(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	keys := []string{"a", "b", "c", "d"}
	if err := s.Set(ctx, "b", value("vb", time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	recs, err := s.GetMany(ctx, keys)
	if err != nil || len(recs) != 4 || recs[1].Kind != remote.KindValue || recs[0].Kind != remote.KindMiss {
		t.Fatalf("GetMany = %+v, %v", recs, err)
	}
	acq, err := s.AcquireMany(ctx, keys, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !acq[0].Won || acq[1].Won || !bytes.Equal(acq[1].Found.Payload, []byte("vb")) || !acq[2].Won {
		t.Fatalf("AcquireMany = %+v", acq)
	}
	if err := s.Unlink(ctx, "c"); err != nil { // an invalidation lands mid-batch
		t.Fatal(err)
	}
	fills := []remote.Fill{
		{Lease: acq[0].Lease, Record: value("va", time.Minute), TTL: time.Minute},
		{Lease: acq[2].Lease, Record: value("vc", time.Minute), TTL: time.Minute},
	}
	ok, err := s.FillMany(ctx, fills)
	if err != nil || !ok[0] || ok[1] {
		t.Fatalf("FillMany = %v, %v; want [true false]", ok, err)
	}
	if err := s.ReleaseMany(ctx, []remote.Lease{acq[3].Lease}); err != nil {
		t.Fatal(err)
	}
	recs, _ = s.GetMany(ctx, keys)
	got := []remote.Kind{recs[0].Kind, recs[1].Kind, recs[2].Kind, recs[3].Kind}
	want := []remote.Kind{remote.KindValue, remote.KindValue, remote.KindMiss, remote.KindMiss}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("kinds after the batch = %v; want %v", got, want)
		}
	}
}

func testScriptFlush(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Skipf("SCRIPT FLUSH unsupported: %v", err)
	}
	acq, err := s.AcquireMany(ctx, []string{"x", "y"}, 5*time.Second)
	if err != nil || !acq[0].Won || !acq[1].Won {
		t.Fatalf("AcquireMany after SCRIPT FLUSH = %+v, %v; want both won", acq, err)
	}
}

func testNamespace(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	rdb.Set(ctx, "k", "foreign app", 0)
	rdb.Set(ctx, "other:k", "foreign app", 0)
	if r := mustGet(t, s, "k"); r.Kind != remote.KindMiss {
		t.Fatalf("Get saw a key outside the namespace: %v", r.Kind)
	}
	if err := s.Unlink(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	// One key per EXISTS: on a cluster the two live in different slots.
	if n := rdb.Exists(ctx, "k").Val() + rdb.Exists(ctx, "other:k").Val(); n != 2 {
		t.Fatalf("keys outside the namespace left: %d; want 2", n)
	}
	if got := s.RedisKey("a:b"); got != "conf:a:b" {
		t.Fatalf("RedisKey = %q", got)
	}
}
