package remote_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
)

// testWake: a lease marked as waited for is announced on the wake channel
// when a store with Options.Wake fills or releases it, and when such a
// store's fill finds its lease gone; an unmarked lease's fill announces
// nothing, and a store without Wake (an older release) fills and renews a
// marked lease as any other and announces nothing. The keys share a slot,
// so that on a cluster their notices come from one master, in order,
// before the sentinel published there last.
func testWake(t *testing.T, old *remote.Store, rdb redis.UniversalClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard only
	defer cancel()
	const channel = "conf:tiercache:wake"
	s, err := remote.New(rdb, remote.Options{Namespace: "conf", Timeout: 10 * time.Second, Wake: channel})
	if err != nil {
		t.Fatal(err)
	}
	sub := rdb.Subscribe(ctx, channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	acquire := func(key string, mark bool) remote.Lease {
		t.Helper()
		l, won, _, err := s.Acquire(ctx, key, time.Minute)
		if err != nil || !won {
			t.Fatalf("Acquire(%s) = %v, %v", key, won, err)
		}
		if mark {
			recs, err := s.MarkWaiting(ctx, []remote.Lease{l})
			if err != nil || recs[0].Kind != remote.KindLease || recs[0].Token != l.Token {
				t.Fatalf("MarkWaiting(%s) = %+v, %v; want the lease", key, recs, err)
			}
			if b := rdb.GetRange(ctx, "conf:"+key, 14, 14).Val(); b != "\x01" {
				t.Fatalf("the mark of %s is %q; want \\x01", key, b)
			}
		}
		return l
	}
	fill := func(st *remote.Store, l remote.Lease, want bool) {
		t.Helper()
		if ok, err := st.Fill(ctx, l, value("v", time.Minute), time.Minute); err != nil || ok != want {
			t.Fatalf("Fill(%s) = %v, %v; want %v", l.Key, ok, err, want)
		}
	}

	// A marked lease is the same lease to a store of an older release.
	l := acquire("{w}old", true)
	if ok, err := old.Renew(ctx, l, time.Minute); err != nil || !ok {
		t.Fatalf("Renew of a marked lease = %v, %v; want true", ok, err)
	}
	fill(old, l, true)
	if rec := mustGet(t, s, "{w}old"); rec.Kind != remote.KindValue {
		t.Fatalf("after the fill the key holds a %v", rec.Kind)
	}
	// Marking reads a value as GET does and changes nothing.
	before := rdb.Get(ctx, "conf:{w}old").Val()
	if recs, err := s.MarkWaiting(ctx, []remote.Lease{{Key: "{w}old", Token: l.Token}}); err != nil || recs[0].Kind != remote.KindValue {
		t.Fatalf("MarkWaiting of a value = %+v, %v", recs, err)
	}
	if after := rdb.Get(ctx, "conf:{w}old").Val(); after != before {
		t.Fatal("MarkWaiting changed a value")
	}
	fill(s, acquire("{w}unmarked", false), true)
	filled := acquire("{w}filled", true)
	fill(s, filled, true)
	if ok, err := s.Release(ctx, acquire("{w}released", true)); err != nil || !ok {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	gone := acquire("{w}gone", false)
	if err := s.Unlink(ctx, "{w}gone"); err != nil {
		t.Fatal(err)
	}
	fill(s, gone, false)

	var pub redis.Cmdable = rdb
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		if pub, err = cc.MasterForKey(ctx, "conf:{w}"); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(ctx, channel, "sentinel").Err(); err != nil {
		t.Fatal(err)
	}
	// The fill's notice carries what it wrote; the others name the key.
	for _, want := range []struct {
		key string
		has bool
	}{{"conf:{w}filled", true}, {"conf:{w}released", false}, {"conf:{w}gone", false}, {"sentinel", false}} {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		key, lease, rec, has, ok := remote.ParseWake(msg.Payload)
		if !ok || key != want.key || has != want.has || has && lease != filled.Token {
			t.Fatalf("wake notice %q = key %q, value %v; want %q, %v", msg.Payload, key, has, want.key, want.has)
		}
		if has && (rec.Kind != remote.KindValue || string(rec.Payload) != "v") {
			t.Fatalf("the notice of %s carries %+v; want the value filled", key, rec)
		}
	}
	// A value larger than MaxWakeValue is announced by its key only.
	big := acquire("{w}big", true)
	if ok, err := s.Fill(ctx, big, value(strings.Repeat("x", remote.MaxWakeValue), time.Minute), time.Minute); err != nil || !ok {
		t.Fatalf("Fill(big) = %v, %v", ok, err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if key, _, _, has, ok := remote.ParseWake(msg.Payload); !ok || key != "conf:{w}big" || has {
		t.Fatalf("the notice of a large value = key %q, value %v; want the key only", key, has)
	}
}

func TestParseWake(t *testing.T) {
	lease := string(remote.Encode(remote.Record{Kind: remote.KindLease, Token: 7})[:11])
	for _, p := range []string{"", "\x00", "\x00:k", "\x00x:k", "\x005:k", "\x00-1:k", "\x000:", "\x001:k", "\x001:k0123456789a"} {
		if _, _, _, _, ok := remote.ParseWake(p); ok {
			t.Errorf("ParseWake(%q) ok; want malformed", p)
		}
	}
	if key, _, _, has, ok := remote.ParseWake("shop:user:1"); !ok || key != "shop:user:1" || has {
		t.Errorf("ParseWake of a key = %q, %v, %v", key, has, ok)
	}
	if key, l, rec, has, ok := remote.ParseWake("\x001:k" + lease + "junk"); !ok || key != "k" || l != 7 || !has || rec.Kind != remote.KindCorrupt {
		t.Errorf("ParseWake of a notice with bad bytes = %q, %d, %v, %v, %v; want the key, lease 7 and a corrupt record", key, l, rec.Kind, has, ok)
	}
}
