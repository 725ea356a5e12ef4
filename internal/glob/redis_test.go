package glob_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/glob"
	"github.com/tiercache/tiercache/internal/redistest"
)

// keysMatch asks the server whether key matches pattern: it sets key in the
// (otherwise empty) database, runs KEYS pattern, and deletes key again.
func keysMatch(tb testing.TB, rdb *redis.Client, pattern, key string) bool {
	tb.Helper()
	ctx := context.Background()
	if err := rdb.Set(ctx, key, "1", 0).Err(); err != nil {
		tb.Fatalf("SET %q: %v", short(key), err)
	}
	got, err := rdb.Keys(ctx, pattern).Result()
	if err != nil {
		tb.Fatalf("KEYS %q: %v", short(pattern), err)
	}
	if err := rdb.Del(ctx, key).Err(); err != nil {
		tb.Fatalf("DEL %q: %v", short(key), err)
	}
	return slices.Contains(got, key)
}

func TestCasesAgainstRedis(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	for _, tc := range matchCases {
		if got := keysMatch(t, rdb, tc.pattern, tc.s); got != tc.want {
			t.Errorf("KEYS %q with key %q: matched = %v; the table says %v",
				short(tc.pattern), short(tc.s), got, tc.want)
		}
	}
}

// randomAlphabet is what random keys and patterns are made of: every byte
// that is special in a pattern, a few letters, NUL and bytes >= 0x80 (which
// sort below NUL in a signed-char range).
const randomAlphabet = "*?[]^-\\abc\x00\x7f\x80\xc3\xff"

func randomString(r *rand.Rand, maxLen int) string {
	b := make([]byte, r.IntN(maxLen+1))
	for i := range b {
		b[i] = randomAlphabet[r.IntN(len(randomAlphabet))]
	}
	return string(b)
}

// TestRandomAgainstRedis fills a fresh database with random keys and, for
// many random patterns, compares the keys Redis's KEYS returns with the keys
// Match accepts.
func TestRandomAgainstRedis(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))

	keys := map[string]bool{}
	for len(keys) < 500 {
		keys[randomString(r, 6)] = true
	}
	pipe := rdb.Pipeline()
	for k := range keys {
		pipe.Set(ctx, k, "1", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("SET keys: %v", err)
	}

	patterns := make([]string, 4000)
	for i := range patterns {
		patterns[i] = randomString(r, 8)
	}
	for k := range keys { // and every key escaped, which must match only itself
		patterns = append(patterns, glob.Escape(k))
	}
	cmds := make([]*redis.StringSliceCmd, len(patterns))
	for i, p := range patterns {
		cmds[i] = pipe.Keys(ctx, p)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	for i, p := range patterns {
		compareKeys(t, p, keys, cmds[i].Val())
	}
}

// compareKeys reports every key on which Match or Compile(p).Match disagrees
// with Redis's answer, got.
func compareKeys(t *testing.T, p string, keys map[string]bool, got []string) {
	t.Helper()
	byRedis := make(map[string]bool, len(got))
	for _, k := range got {
		byRedis[k] = true
	}
	m := glob.Compile(p)
	for k := range keys {
		if want := byRedis[k]; glob.Match(p, k) != want || m.Match(k) != want {
			t.Errorf("Match(%q, %q) = %v, Compile(%q).Match(%q) = %v; KEYS says %v",
				p, k, glob.Match(p, k), p, k, m.Match(k), want)
		}
	}
}

// TestScanAgainstRedis checks that SCAN ... MATCH, walked from cursor 0 until
// it returns 0, agrees with Match as KEYS does.
func TestScanAgainstRedis(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	keys := map[string]bool{"": true}
	for len(keys) < 300 {
		keys[randomString(r, 5)] = true
	}
	for k := range keys {
		if err := rdb.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatalf("SET %q: %v", k, err)
		}
	}
	for _, p := range []string{"*", "**", "", "a*", "[a-\xff]*", "*[^]", "\\", "[a-]*", "*\x00*"} {
		compareKeys(t, p, keys, scanAll(t, rdb, p))
	}
}

func scanAll(t *testing.T, rdb *redis.Client, pattern string) []string {
	t.Helper()
	var all []string
	var cursor uint64
	for {
		// Not rdb.Scan: it leaves out MATCH when the pattern is "".
		cmd := redis.NewScanCmd(context.Background(), nil, "scan", cursor, "match", pattern, "count", 100)
		_ = rdb.Process(context.Background(), cmd)
		keys, next, err := cmd.Result()
		if err != nil {
			t.Fatalf("SCAN %d MATCH %q: %v", cursor, pattern, err)
		}
		all = append(all, keys...)
		if cursor = next; cursor == 0 {
			return all
		}
	}
}

// FuzzMatchAgainstRedis uses a real redis-server (one per fuzzing process) as
// the oracle: for each input it sets the key, checks that KEYS pattern returns
// it if and only if Match says so, and deletes it. Without -fuzz it runs the
// seed corpus (the short rows of the edge-case table).
func FuzzMatchAgainstRedis(f *testing.F) {
	for _, tc := range matchCases {
		if len(tc.pattern)+len(tc.s) < 200 {
			f.Add(tc.pattern, tc.s)
		}
	}
	rdb := redistest.Start(f).Client(f)
	f.Fuzz(func(t *testing.T, pattern, key string) {
		want := keysMatch(t, rdb, pattern, key)
		if got := glob.Match(pattern, key); got != want {
			t.Errorf("Match(%q, %q) = %v; KEYS says %v", pattern, key, got, want)
		}
		if got := glob.Compile(pattern).Match(key); got != want {
			t.Errorf("Compile(%q).Match(%q) = %v; KEYS says %v", pattern, key, got, want)
		}
	})
}
