package remote_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// manyKeys returns n keys, which a cluster spreads over every master.
func manyKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return keys
}

func testManyKeys(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	keys := manyKeys("many:", 200)
	recs, err := s.GetMany(ctx, keys)
	if err != nil || len(recs) != len(keys) {
		t.Fatalf("GetMany = %d records, %v", len(recs), err)
	}
	acq, err := s.AcquireMany(ctx, keys, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var fills []remote.Fill
	var releases []remote.Lease
	for i, a := range acq {
		if !a.Won {
			t.Fatalf("AcquireMany: %s not won on an empty store", keys[i])
		}
		if i%2 == 0 {
			fills = append(fills, remote.Fill{Lease: a.Lease, Record: value(keys[i], time.Minute), TTL: time.Minute})
		} else {
			releases = append(releases, a.Lease)
		}
	}
	ok, err := s.FillMany(ctx, fills)
	if err != nil {
		t.Fatal(err)
	}
	for i, filled := range ok {
		if !filled {
			t.Fatalf("FillMany: fill %d of %d failed", i, len(ok))
		}
	}
	if err := s.ReleaseMany(ctx, releases); err != nil {
		t.Fatal(err)
	}
	recs, err = s.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		switch {
		case i%2 == 0 && (r.Kind != remote.KindValue || string(r.Payload) != keys[i]):
			t.Fatalf("GetMany(%s) = %v %q; want its value", keys[i], r.Kind, r.Payload)
		case i%2 == 1 && r.Kind != remote.KindMiss:
			t.Fatalf("GetMany(%s) = %v after Release; want a miss", keys[i], r.Kind)
		}
	}
	if err := s.Unlink(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	recs, _ = s.GetMany(ctx, keys)
	for i, r := range recs {
		if r.Kind != remote.KindMiss {
			t.Fatalf("after Unlink %s = %v; want a miss", keys[i], r.Kind)
		}
	}
}

func testFillManyAfterFlush(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	keys := manyKeys("flush:", 30)
	acq, err := s.AcquireMany(ctx, keys, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Skipf("SCRIPT FLUSH unsupported: %v", err)
	}
	fills := make([]remote.Fill, len(acq))
	for i, a := range acq {
		fills[i] = remote.Fill{Lease: a.Lease, Record: value("v", time.Minute), TTL: time.Minute}
	}
	ok, err := s.FillMany(ctx, fills)
	if err != nil {
		t.Fatalf("FillMany after SCRIPT FLUSH: %v", err)
	}
	for i, filled := range ok {
		if !filled {
			t.Fatalf("FillMany after SCRIPT FLUSH: %s not filled", keys[i])
		}
	}
}

func testLoadScripts(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Skipf("SCRIPT FLUSH unsupported: %v", err)
	}
	if err := s.LoadScripts(ctx); err != nil {
		t.Fatalf("LoadScripts: %v", err)
	}
	// A cluster client's SCRIPT EXISTS is true only where every node
	// has the script.
	got, err := rdb.ScriptExists(ctx, remote.ScriptSHAs()...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range got {
		if !ok {
			t.Fatalf("script %d of %d not loaded everywhere", i+1, len(got))
		}
	}
}

// testResentAcquire: a client that sends an acquisition again (after a
// connection failed once the server had run it) finds its own lease and
// counts it as won; another token still loses.
func testResentAcquire(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	keys := []string{"r1", "r2"}
	tokens := []uint64{remote.NewToken(), remote.NewToken()}
	for round := 1; round <= 2; round++ {
		acq, err := remote.AcquireWithTokens(ctx, s, keys, 5*time.Second, tokens)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range acq {
			if !a.Won || a.Lease.Token != tokens[i] {
				t.Fatalf("send %d: %s won %v with token %x; want won with %x", round, keys[i], a.Won, a.Lease.Token, tokens[i])
			}
		}
	}
	acq, err := remote.AcquireWithTokens(ctx, s, keys[:1], 5*time.Second, []uint64{tokens[0] + 1})
	if err != nil || acq[0].Won || acq[0].Found.Token != tokens[0] {
		t.Fatalf("another token: %+v, %v; want lost to lease %x", acq, err, tokens[0])
	}
}

func testDeletePattern(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	ns := []string{"post:user_5_a", "post:user_5_b", "post:user_50_a", "post:user_[5]_a", "post:user_*", "other:1"}
	for _, k := range ns {
		if err := s.Set(ctx, k, value("v", time.Minute), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	foreign := []string{"post:user_5_a", "x:post:user_5_a", "conf"}
	for _, k := range foreign {
		rdb.Set(ctx, k, "foreign", 0)
	}
	exists := func(k string) bool { return mustGet(t, s, k).Kind != remote.KindMiss }
	for _, step := range []struct {
		pattern string
		n       int
		gone    []string
	}{
		{"post:user_5_*", 2, []string{"post:user_5_a", "post:user_5_b"}},
		{`post:user_\[5]_a`, 1, []string{"post:user_[5]_a"}},
		{`post:user_\*`, 1, []string{"post:user_*"}},
		{"*", 2, []string{"post:user_50_a", "other:1"}},
	} {
		n, err := s.DeletePattern(ctx, step.pattern)
		if err != nil || n != step.n {
			t.Fatalf("DeletePattern(%q) = %d, %v; want %d", step.pattern, n, err, step.n)
		}
		for _, k := range step.gone {
			if exists(k) {
				t.Fatalf("DeletePattern(%q) left %s", step.pattern, k)
			}
		}
	}
	for _, k := range foreign {
		if rdb.Exists(ctx, k).Val() != 1 {
			t.Fatalf("DeletePattern removed %s, outside the namespace", k)
		}
	}
}

func testDeletePatternMany(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	keys := manyKeys("bulk:", 2500)
	for _, k := range keys {
		if err := s.Set(ctx, k, value("v", time.Minute), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(ctx, "bulkier", value("v", time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeletePattern(ctx, "bulk:*")
	if err != nil || n != len(keys) {
		t.Fatalf("DeletePattern(bulk:*) = %d, %v; want %d", n, err, len(keys))
	}
	recs, err := s.GetMany(ctx, append(keys, "bulkier"))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs[:len(keys)] {
		if r.Kind != remote.KindMiss {
			t.Fatalf("%s survived DeletePattern", keys[i])
		}
	}
	if recs[len(keys)].Kind != remote.KindValue {
		t.Fatal("DeletePattern(bulk:*) removed bulkier")
	}
}

// testFailedAcquire: an AcquireMany whose pipeline the server ran but
// whose replies were lost returns the error and leaves none of its leases
// behind (other nodes would wait for them), while what other writers put
// in the keys stays. With the release switched off, the leases stay: the
// check can fail.
func testFailedAcquire(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	h := &redistest.FailHook{}
	rdb.AddHook(h)
	for _, keep := range []bool{false, true} {
		keys := manyKeys(fmt.Sprintf("fa-%v-", keep), 8)
		if err := s.Set(ctx, keys[0], value("theirs", time.Minute), time.Minute); err != nil {
			t.Fatal(err)
		}
		remote.SetKeepAbandoned(s, keep)
		h.FailPipelines(1, true)
		_, err := s.AcquireMany(ctx, keys, time.Minute)
		h.FailPipelines(0, false)
		if !errors.Is(err, redistest.ErrInjected) {
			t.Fatalf("AcquireMany = %v; want the injected failure", err)
		}
		if got := mustGet(t, s, keys[0]); got.Kind != remote.KindValue || string(got.Payload) != "theirs" {
			t.Fatalf("%s holds %v after a failed AcquireMany; want the value another writer set", keys[0], got.Kind)
		}
		left := 0
		for _, k := range keys[1:] {
			if mustGet(t, s, k).Kind == remote.KindLease {
				left++
			}
		}
		switch {
		case !keep && left != 0:
			t.Fatalf("%d leases left behind by a failed AcquireMany; want none", left)
		case keep && left != len(keys)-1:
			t.Fatalf("release off: %d leases left; want %d (the server ran the acquisition)", left, len(keys)-1)
		}
		// Acquire: one SET NX PX GET, run by the server, its reply lost.
		one := keys[0] + "-one"
		h.FailCommands(1, true)
		_, _, _, err = s.Acquire(ctx, one, time.Minute)
		h.FailCommands(0, false)
		if !errors.Is(err, redistest.ErrInjected) {
			t.Fatalf("Acquire = %v; want the injected failure", err)
		}
		if got := mustGet(t, s, one).Kind == remote.KindLease; got != keep {
			t.Fatalf("a lease left behind by a failed Acquire: %v; want %v (release off: %v)", got, keep, keep)
		}
	}
}

// testOldServer: a server that rejects SET NX GET (Redis before 7.0,
// played by a hook) is found out at the first lease taking, which then
// succeeds with the script, as do the ones after, without another SET NX
// GET.
func testOldServer(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	h := &redistest.OldServerHook{}
	rdb.AddHook(h)
	if s.LeaseByScript() {
		t.Fatal("a new store takes leases with the script before it asked the server")
	}
	l, won, _, err := s.Acquire(ctx, "old1", time.Minute)
	if err != nil || !won {
		t.Fatalf("Acquire on an old server = won %v, %v; want won", won, err)
	}
	if !s.LeaseByScript() || h.Rejected() != 1 {
		t.Fatalf("after the first lease: by script %v, %d rejected; want true, 1", s.LeaseByScript(), h.Rejected())
	}
	if got := mustGet(t, s, "old1"); got.Kind != remote.KindLease || got.Token != l.Token {
		t.Fatalf("old1 holds %v %x; want our lease %x", got.Kind, got.Token, l.Token)
	}
	acq, err := s.AcquireMany(ctx, manyKeys("old-", 4), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range acq {
		if !a.Won {
			t.Fatalf("AcquireMany key %d not won on an old server", i)
		}
	}
	if _, won, _, err := s.Acquire(ctx, "old1", time.Minute); err != nil || won {
		t.Fatalf("a second Acquire of old1 = won %v, %v; want lost to the first", won, err)
	}
	if h.Rejected() != 1 {
		t.Fatalf("%d SET NX GETs rejected; want 1", h.Rejected())
	}
}

// testHandOff: FillHandOff writes each hand-off in the pipeline of the
// fills (given apart, or as a fill's own record), whether the fill succeeds
// (a lease still held) or not (a lease an UNLINK removed), on the slot of
// its key (checked with CLUSTER KEYSLOT on
// a cluster), readable with GetMany; a key whose braces leave no such name
// gets none. The keys cross slots, and one carries a hash tag.
func testHandOff(t *testing.T, s *remote.Store, rdb redis.UniversalClient) {
	ctx := context.Background()
	keys := append(manyKeys("hand:", 20), "tagged:{user7}:a")
	acq, err := s.AcquireMany(ctx, keys, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(ctx, keys[0], keys[1]); err != nil {
		t.Fatal(err)
	}
	var fills []remote.Fill
	var hands []remote.HandOff
	var hkeys []string
	for i, a := range acq {
		rec := value(fmt.Sprintf("v%d", i), time.Minute)
		f := remote.Fill{Lease: a.Lease, Record: rec, TTL: time.Minute}
		if i%2 == 0 {
			f.HandOff = time.Minute // the fill's own record
		} else {
			hands = append(hands, remote.HandOff{Lease: a.Lease, Record: rec, TTL: time.Minute})
		}
		fills = append(fills, f)
		k, ok := s.HandOffKey(a.Lease)
		if !ok {
			t.Fatalf("no hand-off key for %q", a.Lease.Key)
		}
		if cc, isCluster := rdb.(*redis.ClusterClient); isCluster {
			want := cc.ClusterKeySlot(ctx, s.RedisKey(a.Lease.Key)).Val()
			if got := cc.ClusterKeySlot(ctx, s.RedisKey(k)).Val(); got != want {
				t.Fatalf("hand-off key %q on slot %d, its key %q on %d", k, got, a.Lease.Key, want)
			}
		}
		hkeys = append(hkeys, k)
	}
	ok, err := s.FillHandOff(ctx, fills, hands)
	if err != nil {
		t.Fatal(err)
	}
	for i, filled := range ok {
		if filled != (i >= 2) {
			t.Errorf("fill of %s: %v; want %v (its lease was unlinked: %v)", keys[i], filled, i >= 2, i < 2)
		}
	}
	recs, err := s.GetMany(ctx, hkeys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Kind != remote.KindValue || string(r.Payload) != fmt.Sprintf("v%d", i) {
			t.Errorf("hand-off of %s: %v %q", keys[i], r.Kind, r.Payload)
		}
	}
	if _, ok := s.HandOffKey(remote.Lease{Key: "odd}key", Token: 1}); ok {
		t.Error("a hand-off key for a key with a stray brace")
	}
	// Only hand-offs: no fill in the pipeline.
	l, won, _, err := s.Acquire(ctx, "hand:only", 5*time.Second)
	if err != nil || !won {
		t.Fatalf("Acquire: won %v, %v", won, err)
	}
	marker := remote.Record{Kind: remote.KindLease, Token: l.Token}
	if _, err := s.FillHandOff(ctx, nil, []remote.HandOff{{Lease: l, Record: marker, TTL: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	hk, _ := s.HandOffKey(l)
	if r := mustGet(t, s, hk); r.Kind != remote.KindLease || r.Token != l.Token {
		t.Errorf("marker hand-off: %v token %x; want a lease record of %x", r.Kind, r.Token, l.Token)
	}
}

// testDeletePatternWith: the keys the callback takes stay (it invalidates
// them itself), the ones it returns are unlinked, every match is offered
// once and counted, and its error ends the scan with that error.
func testDeletePatternWith(t *testing.T, s *remote.Store, _ redis.UniversalClient) {
	ctx := context.Background()
	keys := manyKeys("with:", 1500)
	for _, k := range keys {
		if err := s.Set(ctx, k, value("v", time.Minute), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex // a cluster's masters are scanned at once
	offered := map[string]int{}
	kept := map[string]bool{}
	n, err := s.DeletePatternWith(ctx, "with:*", func(_ context.Context, batch []string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		var rest []string
		for i, k := range batch {
			offered[k]++
			if i%2 == 0 {
				kept[k] = true
			} else {
				rest = append(rest, k)
			}
		}
		return rest, nil
	})
	if err != nil || n != len(keys) {
		t.Fatalf("DeletePatternWith(with:*) = %d, %v; want %d", n, err, len(keys))
	}
	recs, err := s.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		k := keys[i]
		if offered[k] != 1 {
			t.Fatalf("%s offered %d times; want 1", k, offered[k])
		}
		if got := r.Kind != remote.KindMiss; got != kept[k] {
			t.Fatalf("%s present %v after the scan; want %v (taken by the callback)", k, got, kept[k])
		}
	}
	boom := errors.New("boom")
	if _, err := s.DeletePatternWith(ctx, "with:*", func(context.Context, []string) ([]string, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("DeletePatternWith with a failing callback = %v; want its error", err)
	}
}
