package remote_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

// BenchmarkInvalidateTags1M compares, in one run, invalidating by tag with
// invalidating by pattern in a namespace of 1,000,000 tagged values (post
// user_<u>_<p> carries the tags "user_<u>" and "all"), on one
// redis-server and on a cluster of 3 masters: a tag is one stamp
// (StampTags: one script on one master) whatever the number of values it
// reaches, where a pattern SCANs every master's whole keyspace. Reported
// per invalidation: the time, and the commands the masters received.
//
//	TIERCACHE_BENCH_1M=1 go test -run '^$' -bench InvalidateTags1M -count 6 ./remote/ | tee tags.txt
//	benchstat -col /impl tags.txt
func BenchmarkInvalidateTags1M(b *testing.B) {
	if os.Getenv("TIERCACHE_BENCH_1M") != "1" {
		b.Skip("set TIERCACHE_BENCH_1M=1 to run: it fills 1,000,000 keys per deployment")
	}
	b.Run("deploy=redis", func(b *testing.B) {
		c := redistest.Start(b).Client(b)
		benchTags(b, c, []*redis.Client{c})
	})
	b.Run("deploy=cluster", func(b *testing.B) {
		cl := redistest.StartCluster(b)
		var masters []*redis.Client
		for _, m := range cl.Masters(b) {
			masters = append(masters, m.Admin())
		}
		benchTags(b, cl.Client(b), masters)
	})
}

func benchTags(b *testing.B, rdb redis.UniversalClient, masters []*redis.Client) {
	s, err := remote.New(rdb, remote.Options{Namespace: "bench", Timeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	fillTagged(b, rdb, nil)
	for _, tc := range []struct {
		name   string
		run    func() error
		refill []int
	}{
		{"impl=tag/reach=100-of-1M", func() error { _, err := s.StampTags(ctx, []string{"t:user_42"}, time.Hour); return err }, nil},
		{"impl=tag/reach=all-1M", func() error { _, err := s.StampTags(ctx, []string{"t:all"}, time.Hour); return err }, nil},
		{"impl=pattern/reach=100-of-1M", func() error {
			n, err := s.DeletePattern(ctx, "post:user_42_*")
			if err == nil && n != benchPosts {
				err = fmt.Errorf("deleted %d keys; want %d", n, benchPosts)
			}
			return err
		}, []int{42}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			stats := map[string]int64{}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if tc.refill != nil {
					fillTagged(b, rdb, tc.refill)
				}
				resetStats(b, masters)
				b.StartTimer()
				err := tc.run()
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				for k, v := range commandStats(b, masters) {
					stats[k] += v
				}
			}
			for _, cmd := range []string{"scan", "unlink", "evalsha"} {
				b.ReportMetric(float64(stats[cmd])/float64(b.N), cmd+"s/op")
			}
		})
	}
}

// fillTagged writes the tagged values of users (nil: every user), in
// pipelines of single-key SETs.
func fillTagged(b *testing.B, rdb redis.UniversalClient, users []int) {
	ctx := context.Background()
	if users == nil {
		for u := range benchUsers {
			users = append(users, u)
		}
	}
	const batch = 20000
	type kv struct {
		k string
		v []byte
	}
	var kvs []kv
	flush := func() {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, x := range kvs {
				p.Set(ctx, x.k, x.v, 0)
			}
			return nil
		})
		if err != nil {
			b.Fatalf("filling keys: %v", err)
		}
		kvs = kvs[:0]
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	for _, u := range users {
		tags := []string{fmt.Sprint("user_", u), "all"}
		for p := range benchPosts {
			rec := remote.Record{Kind: remote.KindValue, Token: remote.NewToken(), Expire: exp, Begin: 1, Tags: tags, Payload: []byte(`"v"`)}
			kvs = append(kvs, kv{fmt.Sprintf("bench:post:user_%d_%d", u, p), remote.Encode(rec)})
			if len(kvs) == batch {
				flush()
			}
		}
	}
	if len(kvs) > 0 {
		flush()
	}
}
