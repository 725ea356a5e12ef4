package remote_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

const (
	benchUsers = 10000 // keys post:user_<u>_<p>: 10,000 users
	benchPosts = 100   // x 100 posts = 1,000,000 keys
)

// BenchmarkDeletePattern1M measures a pattern invalidation in a namespace
// of 1,000,000 keys on one redis-server, on a cluster of 3 masters (each
// with a replica), and on that cluster with WaitReplicas 1: the time, and
// the commands the servers received per invalidation (SCAN, UNLINK, WAIT,
// from INFO commandstats summed over the masters). Two patterns: one user's
// 100 keys (SCAN still walks the whole keyspace of every master, sending
// back only the keys of the literal prefix) and every key.
//
// It fills 1,000,000 keys per deployment, so it runs only with
// TIERCACHE_BENCH_1M=1:
//
//	TIERCACHE_BENCH_1M=1 go test -run '^$' -bench DeletePattern1M -benchtime 3x ./remote/
func BenchmarkDeletePattern1M(b *testing.B) {
	if os.Getenv("TIERCACHE_BENCH_1M") != "1" {
		b.Skip("set TIERCACHE_BENCH_1M=1 to run: it fills 1,000,000 keys per deployment")
	}
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		c := srv.Client(b)
		benchPatterns(b, c, []*redis.Client{c}, remote.Options{})
	})
	cl := redistest.StartCluster(b)
	masters := func() []*redis.Client {
		var out []*redis.Client
		for _, m := range cl.Masters(b) {
			out = append(out, m.Admin())
		}
		return out
	}()
	b.Run("cluster", func(b *testing.B) {
		benchPatterns(b, cl.Client(b), masters, remote.Options{})
	})
	b.Run("cluster-wait1", func(b *testing.B) {
		benchPatterns(b, cl.Client(b), masters, remote.Options{WaitReplicas: 1, WaitTimeout: 5 * time.Second})
	})
}

func benchPatterns(b *testing.B, rdb redis.UniversalClient, masters []*redis.Client, o remote.Options) {
	o.Namespace = "bench"
	s, err := remote.New(rdb, o)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	fill(b, rdb, nil)
	for _, p := range []struct {
		name, pattern string
		users         []int // the users whose keys the pattern removes
	}{
		{"100-of-1M", "post:user_42_*", []int{42}},
		{"all-1M", "post:*", nil},
	} {
		b.Run(p.name, func(b *testing.B) {
			want := benchUsers * benchPosts
			if p.users != nil {
				want = len(p.users) * benchPosts
			}
			var stats map[string]int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				fill(b, rdb, p.users)
				resetStats(b, masters)
				b.StartTimer()
				n, err := s.DeletePattern(ctx, p.pattern)
				b.StopTimer()
				if err != nil || n != want {
					b.Fatalf("DeletePattern(%q) = %d, %v; want %d", p.pattern, n, err, want)
				}
				for k, v := range commandStats(b, masters) {
					if stats == nil {
						stats = map[string]int64{}
					}
					stats[k] += v
				}
			}
			for _, cmd := range []string{"scan", "unlink", "wait"} {
				b.ReportMetric(float64(stats[cmd])/float64(b.N), cmd+"s/op")
			}
		})
	}
}

// fill writes the keys of users (nil: every user) that are missing, in
// pipelines of single-key SETs.
func fill(b *testing.B, rdb redis.UniversalClient, users []int) {
	ctx := context.Background()
	if users == nil {
		for u := range benchUsers {
			users = append(users, u)
		}
	}
	const batch = 20000
	var keys []string
	flush := func() {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.SetNX(ctx, k, "v", 0)
			}
			return nil
		})
		if err != nil {
			b.Fatalf("filling keys: %v", err)
		}
		keys = keys[:0]
	}
	for _, u := range users {
		for p := range benchPosts {
			keys = append(keys, fmt.Sprintf("bench:post:user_%d_%d", u, p))
			if len(keys) == batch {
				flush()
			}
		}
	}
	if len(keys) > 0 {
		flush()
	}
}

func resetStats(b *testing.B, masters []*redis.Client) {
	for _, m := range masters {
		if err := m.ConfigResetStat(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// commandStats returns the calls of every command the masters received
// since their last CONFIG RESETSTAT, summed, by command name.
func commandStats(b *testing.B, masters []*redis.Client) map[string]int64 {
	out := map[string]int64{}
	for _, m := range masters {
		info, err := m.Info(context.Background(), "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		for line := range strings.Lines(info) {
			name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
			if !ok {
				continue
			}
			calls, _, _ := strings.Cut(rest, ",")
			n, _ := strconv.ParseInt(calls, 10, 64)
			out[name] += n
		}
	}
	return out
}
