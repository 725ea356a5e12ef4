package remote_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// TestEnvelopeTags: a tagged value round-trips through Redis; a value
// written before tags (version 1) reads as untagged with a load begin of
// 0; tag bytes that do not add up are corrupt.
func TestEnvelopeTags(t *testing.T) {
	ctx := context.Background()
	rdb := miniredisBackend(t)
	s, err := remote.New(rdb, remote.Options{Namespace: "env"})
	if err != nil {
		t.Fatal(err)
	}
	rec := value("p", time.Minute)
	rec.Begin, rec.Tags = 1234567, []string{"a", strings.Repeat("b", remote.MaxTagLen)}
	if err := s.Set(ctx, "k", rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "k")
	if err != nil || got.Kind != remote.KindValue || got.Begin != rec.Begin || !slices.Equal(got.Tags, rec.Tags) || string(got.Payload) != "p" {
		t.Fatalf("Get = %+v, %v; want begin %d, tags %q, payload p", got, err, rec.Begin, rec.Tags)
	}

	v1 := make([]byte, 23, 30)
	v1[0], v1[1], v1[2] = 0xC7, 1, byte(remote.KindValue)
	binary.BigEndian.PutUint64(v1[3:], 7)
	binary.BigEndian.PutUint64(v1[15:], uint64(time.Now().Add(time.Hour).UnixMilli()))
	v1 = append(v1, "legacy"...)
	rdb.Set(ctx, "env:old", v1, time.Minute)
	got, err = s.Get(ctx, "old")
	if err != nil || got.Kind != remote.KindValue || got.Begin != 0 || got.Tags != nil || string(got.Payload) != "legacy" || got.Token != 7 {
		t.Fatalf("version 1 value = %+v, %v; want an untagged value begun at 0", got, err)
	}

	good := remote.Encode(rec)
	for name, raw := range map[string][]byte{
		"count past the end": append(slices.Clone(good[:32]), 1),
		"zero length":        append(append(slices.Clone(good[:31]), 1), 0),
		"too many":           append(slices.Clone(good[:31]), remote.MaxTags+1),
		"short header":       good[:30],
	} {
		rdb.Set(ctx, "env:bad", raw, time.Minute)
		if got, _ := s.Get(ctx, "bad"); got.Kind != remote.KindCorrupt {
			t.Errorf("%s: Kind = %v; want corrupt", name, got.Kind)
		}
	}
	if !bytes.Equal(remote.Encode(rec)[:3], []byte{0xC7, 2, byte(remote.KindValue)}) {
		t.Error("a value is not written as version 2")
	}
}

// TestTagStamps runs the stamps and the fill's check on a real server: a
// stamp is Redis's TIME, never goes back, and a fill whose load began at or
// before a stamp it checks fails and removes its lease. On a cluster the
// stamps work the same, but the fill does not check them (they live in
// other slots).
func TestTagStamps(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testTagStamps(t, realBackend(t)) })
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.StartCluster(t)
		testTagStamps(t, cl.Client(t))
	})
}

func testTagStamps(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	s, err := remote.New(rdb, remote.Options{Namespace: "st", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.Time(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"t:a", "t:b", "g:grp", "n"}
	st, err := s.StampTags(ctx, ids[:3], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range st {
		if x < before-int64(time.Second/time.Microsecond) { // another master's clock on a cluster
			t.Fatalf("stamp %s = %d, before the time %d read earlier", ids[i], x, before)
		}
	}
	again, err := s.StampTags(ctx, ids[:1], time.Minute)
	if err != nil || again[0] <= st[0] {
		t.Fatalf("second stamp of t:a = %v, %v; want past %d", again, err, st[0])
	}
	read, err := s.TagStamps(ctx, ids)
	if err != nil || read[0] != again[0] || read[1] != st[1] || read[2] != st[2] || read[3] != 0 {
		t.Fatalf("TagStamps = %v, %v; want [%d %d %d 0]", read, err, again[0], st[1], st[2])
	}
	if s.Clustered() {
		return
	}
	stamps := []string{s.TagKey("n"), s.TagKey("t:a")}
	for _, tc := range []struct {
		name  string
		begin int64
		want  bool
	}{{"began before", again[0] - 1, false}, {"began at", again[0], false}, {"began after", again[0] + 1, true}} {
		l, won, _, err := s.Acquire(ctx, "k", time.Minute)
		if err != nil || !won {
			t.Fatalf("%s: Acquire = %v, %v", tc.name, won, err)
		}
		rec := value("v", time.Minute)
		rec.Begin, rec.Tags = tc.begin, []string{"a"}
		res, err := s.FillStamped(ctx, []remote.Fill{{Lease: l, Record: rec, TTL: time.Minute, Stamps: stamps}}, nil)
		if err != nil || res[0].OK != tc.want {
			t.Fatalf("%s: fill = %+v, %v; want OK %v", tc.name, res, err, tc.want)
		}
		got, _ := s.Get(ctx, "k")
		if tc.want && (got.Kind != remote.KindValue || !slices.Equal(res[0].Stamps, []int64{0, again[0]})) {
			t.Fatalf("%s: key holds %v, stamps %v", tc.name, got.Kind, res[0].Stamps)
		}
		if !tc.want && got.Kind != remote.KindMiss {
			t.Fatalf("%s: a vetoed fill left %v; want the lease removed", tc.name, got.Kind)
		}
		if err := s.Unlink(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
}
