package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// loadInts is a batch loader whose value of id is len(id), counting calls.
func loadInts(calls *atomic.Int64) tiered.BatchLoaderFunc[int] {
	return func(_ context.Context, ids []string) (map[string]int, error) {
		calls.Add(1)
		m := make(map[string]int, len(ids))
		for _, id := range ids {
			m[id] = len(id)
		}
		return m, nil
	}
}

// TestWarmManyIDs warms 100,000 ids against a real Redis: progress is
// reported in order up to the total, every key is in Redis with a TTL in the
// jitter band (read back with PTTL) spread over the whole band, and a
// second Warm loads nothing.
func TestWarmManyIDs(t *testing.T) {
	rdb := newReal(t)
	ctx := context.Background()
	const n, ttl, j = 100_000, 10_000 * time.Second, 0.5 // a long TTL: the seconds the test takes barely shift the histogram
	// Pipelines of 1,000 scripts take longer than the default RedisTimeout
	// on a loaded machine under -race.
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "warm", Jitter: j, RedisTimeout: 10 * time.Second})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{TTL: ttl})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	var calls atomic.Int64
	var reports []tiered.WarmProgress
	opts := tiered.WarmOptions[int]{
		LoadMany:  loadInts(&calls),
		BatchSize: 1000,
		Progress:  func(p tiered.WarmProgress) { reports = append(reports, p) }, // serialized by Warm
	}
	start := time.Now()
	if err := g.Warm(ctx, ids, opts); err != nil {
		t.Fatalf("Warm: %v", err)
	}
	if len(reports) != n/1000 {
		t.Fatalf("%d progress reports; want one per batch, %d", len(reports), n/1000)
	}
	for i, p := range reports {
		if p.Done != (i+1)*1000 || p.Total != n || p.Failed != 0 {
			t.Fatalf("progress report %d = %+v; want Done %d of %d, 0 failed", i, p, (i+1)*1000, n)
		}
	}
	if calls.Load() != n/1000 {
		t.Fatalf("batch loader calls = %d; want %d", calls.Load(), n/1000)
	}
	checkTTLBand(t, rdb, "warm:k:", ids, ttl, j, start)

	calls.Store(0)
	opts.Progress = nil
	if err := g.Warm(ctx, ids, opts); err != nil || calls.Load() != 0 {
		t.Fatalf("second Warm = %v with %d loads; want nil and none (all cached)", err, calls.Load())
	}
}

// checkTTLBand reads every key's PTTL with pipelines and fails unless each
// lies in the jitter band [ttl*(1-j), ttl] less the time since the keys
// began to be written (since) and the TTLs fill every tenth of the band.
func checkTTLBand(t *testing.T, rdb redis.UniversalClient, prefix string, ids []string, ttl time.Duration, j float64, since time.Time) {
	t.Helper()
	ctx := context.Background()
	const bins = 10
	var hist [bins]int
	for start := 0; start < len(ids); start += 5000 {
		chunk := ids[start:min(start+5000, len(ids))]
		cmds := make([]*redis.DurationCmd, len(chunk))
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				cmds[i] = p.PTTL(ctx, prefix+id)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		lo := lowestTTL(ttl, j, since)
		for i, cmd := range cmds {
			pttl := cmd.Val()
			if pttl > ttl || pttl < lo {
				t.Fatalf("PTTL of %s%s = %v; want in [%v, %v]", prefix, chunk[i], pttl, lo, ttl)
			}
			b := int(float64(pttl-(ttl-time.Duration(float64(ttl)*j))) / (float64(ttl) * j) * bins)
			hist[min(max(b, 0), bins-1)]++
		}
	}
	for b, count := range hist {
		if count < len(ids)/bins/2 { // uniform: each tenth expects len/10
			t.Fatalf("TTL band %d of %d holds %d keys: %v; want about %d", b, bins, count, hist, len(ids)/bins)
		}
	}
	t.Logf("TTL histogram over the band: %v", hist)
}

// warmRace warms ids 1..4 with one batch whose loader reads the database
// and then blocks; meanwhile the test updates ids 2 and 3 in the database,
// invalidates 2 (Delete) and writes 3 (Set), then lets the load finish. It
// returns what Redis and this node's L1 hold for 2 and 3 afterwards.
func warmRace(t *testing.T, rdb redis.UniversalClient, noCAS bool) (l2, l1 map[string]string) {
	t.Helper()
	ctx := context.Background()
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "warmrace"})
	tiered.SetNoCAS(c, noCAS)
	g := newGroup[string](t, c, "post", tiered.GroupOptions{})
	var mu sync.Mutex
	db := map[string]string{"1": "v1", "2": "v1", "3": "v1", "4": "v1"}
	read, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- g.Warm(ctx, []string{"1", "2", "3", "4"}, tiered.WarmOptions[string]{
			LoadMany: func(_ context.Context, ids []string) (map[string]string, error) {
				mu.Lock()
				out := map[string]string{}
				for _, id := range ids {
					out[id] = db[id]
				}
				mu.Unlock()
				close(read) // the hook: the test acts while the load holds old values
				<-release
				return out, nil
			},
		})
	}()
	<-read
	mu.Lock()
	db["2"], db["3"] = "v2", "v2"
	mu.Unlock()
	if err := g.Invalidate(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	if err := g.Set(ctx, "3", "v2"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Warm: %v", err)
	}
	c.WaitL1()
	l2, l1 = map[string]string{}, map[string]string{}
	for _, id := range []string{"2", "3"} {
		if v, ok := g.Peek(id); ok {
			l1[id] = v
		}
		raw, err := rdb.Get(ctx, "warmrace:post:"+id).Result()
		switch {
		case err != nil:
		case strings.HasSuffix(raw, `"v1"`): // the envelope ends with the JSON payload
			l2[id] = "v1"
		case strings.HasSuffix(raw, `"v2"`):
			l2[id] = "v2"
		default:
			l2[id] = "other"
		}
	}
	return l2, l1
}

// TestWarmInvalidationWins: an invalidation or a write issued while a
// warming load holds old values wins, in Redis and in L1; with the
// compare-and-set switched off the same interleaving installs the old
// values, so the test catches the bug.
func TestWarmInvalidationWins(t *testing.T) {
	for _, backend := range []string{"miniredis", "redis"} {
		newClient := func(t *testing.T) redis.UniversalClient {
			if backend == "redis" {
				return newReal(t)
			}
			r, _ := newMini(t)
			return r
		}
		t.Run(backend, func(t *testing.T) {
			l2, l1 := warmRace(t, newClient(t), false)
			if l2["2"] != "" || l1["2"] != "" {
				t.Errorf("invalidated id 2 holds %q in Redis, %q in L1; want nothing", l2["2"], l1["2"])
			}
			if l2["3"] != "v2" || l1["3"] == "v1" {
				t.Errorf("id 3 written during warming holds %q in Redis, %q in L1; want v2, never v1", l2["3"], l1["3"])
			}
		})
		t.Run(backend+"/unprotected", func(t *testing.T) {
			l2, l1 := warmRace(t, newClient(t), true)
			if l2["2"] != "v1" || l2["3"] != "v1" || l1["2"] != "v1" {
				t.Errorf("without compare-and-set the old values should win: Redis %v, L1 %v", l2, l1)
			}
		})
	}
}

var errDB = errors.New("database unavailable")

func TestWarmPartialFailure(t *testing.T) {
	rdb, m := newMini(t)
	ctx := context.Background()
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "wp"})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{})
	ids := []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "3"}
	var last tiered.WarmProgress
	err := g.Warm(ctx, ids, tiered.WarmOptions[int]{
		Load: func(_ context.Context, id string) (int, error) {
			if id == "4" || id == "9" {
				return 0, fmt.Errorf("load %s: %w", id, errDB)
			}
			return strconv.Atoi(id)
		},
		BatchSize:   3,
		Concurrency: 2,
		Progress:    func(p tiered.WarmProgress) { last = p },
	})
	var we *tiered.WarmError
	if !errors.As(err, &we) || !errors.Is(err, errDB) {
		t.Fatalf("Warm = %v; want a *WarmError wrapping errDB", err)
	}
	if fmt.Sprint(we.Failed) != "[4 9]" || !strings.Contains(err.Error(), "4, 9") {
		t.Fatalf("Failed = %v, error %q; want [4 9] named", we.Failed, err)
	}
	if last != (tiered.WarmProgress{Done: 10, Total: 10, Failed: 2}) {
		t.Fatalf("last progress = %+v; want 10 of 10 done, 2 failed", last)
	}
	for i := 1; i <= 10; i++ {
		if got, want := m.Exists(fmt.Sprintf("wp:k:%d", i)), i != 4 && i != 9; got != want {
			t.Errorf("key of id %d in Redis: %v; want %v", i, got, want)
		}
	}

	// A batch loader's error fails its whole batch, and only it.
	err = g.Warm(ctx, []string{"a", "b", "c", "d"}, tiered.WarmOptions[int]{
		LoadMany: func(_ context.Context, ids []string) (map[string]int, error) {
			if ids[0] == "c" {
				return nil, errDB
			}
			return map[string]int{ids[0]: 1, ids[1]: 1}, nil
		},
		BatchSize:   2,
		Concurrency: 1,
	})
	if !errors.As(err, &we) || fmt.Sprint(we.Failed) != "[c d]" || !errors.Is(err, errDB) {
		t.Fatalf("Warm = %v; want c and d failed with errDB", err)
	}
	if !m.Exists("wp:k:a") || m.Exists("wp:k:c") {
		t.Fatal("the successful batch must be written and the failed one not")
	}
}

func TestWarmRedisDownFails(t *testing.T) {
	rdb, m := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "wd"})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{})
	m.Close()
	var calls atomic.Int64
	err := g.Warm(context.Background(), []string{"1", "2"}, tiered.WarmOptions[int]{LoadMany: loadInts(&calls)})
	var we *tiered.WarmError
	if !errors.As(err, &we) || len(we.Failed) != 2 {
		t.Fatalf("Warm with Redis down = %v; want both ids failed", err)
	}
}

func TestWarmValidatesAndCancels(t *testing.T) {
	c := newCache(t, tiered.Options{})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{})
	ctx := context.Background()
	var calls atomic.Int64
	for name, o := range map[string]tiered.WarmOptions[int]{
		"no loader":      {},
		"two loaders":    {Load: func(context.Context, string) (int, error) { return 0, nil }, LoadMany: loadInts(&calls)},
		"negative batch": {LoadMany: loadInts(&calls), BatchSize: -1},
	} {
		if err := g.Warm(ctx, []string{"1"}, o); err == nil || !strings.HasPrefix(err.Error(), "tiered: ") {
			t.Errorf("Warm(%s) = %v; want a tiered error", name, err)
		}
	}
	if err := g.Warm(ctx, []string{"1", ""}, tiered.WarmOptions[int]{LoadMany: loadInts(&calls)}); err == nil {
		t.Error("Warm with an empty id succeeded")
	}
	if calls.Load() != 0 {
		t.Fatalf("invalid Warm calls loaded %d times", calls.Load())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := g.Warm(cctx, []string{"1", "2", "3"}, tiered.WarmOptions[int]{LoadMany: loadInts(&calls), BatchSize: 1})
	var we *tiered.WarmError
	if !errors.As(err, &we) || len(we.Failed) != 3 || !errors.Is(err, context.Canceled) || calls.Load() != 0 {
		t.Fatalf("Warm(cancelled) = %v after %d loads; want 3 ids failed with context.Canceled, no load", err, calls.Load())
	}
}

func TestWarmLoaderPanicReachesCaller(t *testing.T) {
	c := newCache(t, tiered.Options{})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{})
	var got any
	func() {
		defer func() { got = recover() }()
		_ = g.Warm(context.Background(), []string{"1", "2"}, tiered.WarmOptions[int]{
			Load:      func(context.Context, string) (int, error) { panic("boom") },
			BatchSize: 1,
		})
	}()
	p, ok := got.(*tiered.PanicError)
	if !ok || p.Value != "boom" {
		t.Fatalf("Warm panicked with %#v; want a *PanicError of boom", got)
	}
}

// rawCodec keeps strings as they are: WarmL1 must decode with the group's
// own codec, not JSON.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return []byte(v.(string)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*string) = string(b)
	return nil
}

func TestWarmL1(t *testing.T) {
	rdb := newReal(t)
	ctx := context.Background()
	a := newCache(t, tiered.Options{Redis: rdb, Namespace: "wl1"})
	ga := newGroup[string](t, a, "raw", tiered.GroupOptions{Codec: rawCodec{}})
	ua := newGroup[User](t, a, "user", tiered.GroupOptions{})
	for i := 0; i < 50; i++ {
		if err := ga.Set(ctx, strconv.Itoa(i), "raw "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ua.Set(ctx, "7", User{ID: "7", Name: "Ann"}); err != nil {
		t.Fatal(err)
	}

	b := newCache(t, tiered.Options{Redis: rdb, Namespace: "wl1"})
	gb := newGroup[string](t, b, "raw", tiered.GroupOptions{Codec: rawCodec{}})
	ub := newGroup[User](t, b, "user", tiered.GroupOptions{})
	keys := []string{ub.Key("7"), ub.Key("absent"), "nogroup:1", "raw"}
	for i := 0; i < 50; i++ {
		keys = append(keys, gb.Key(strconv.Itoa(i)))
	}
	found, err := b.WarmL1(ctx, keys)
	if found != 51 {
		t.Fatalf("WarmL1 found %d keys; want 51", found)
	}
	if err == nil || !strings.Contains(err.Error(), `"nogroup:1"`) || !strings.Contains(err.Error(), `"raw"`) {
		t.Fatalf("WarmL1 error = %v; want the keys of no group named", err)
	}
	before := gb.Stats().L2Hits + ub.Stats().L2Hits
	for i := 0; i < 50; i++ {
		if v, ok := gb.Peek(strconv.Itoa(i)); !ok || v != "raw "+strconv.Itoa(i) {
			t.Fatalf("Peek(%d) after WarmL1 = %q, %v; want the raw value from L1", i, v, ok)
		}
	}
	if u, ok := ub.Peek("7"); !ok || u.Name != "Ann" {
		t.Fatalf("Peek(user 7) = %+v, %v", u, ok)
	}
	if after := gb.Stats().L2Hits + ub.Stats().L2Hits; after != before {
		t.Fatalf("reads after WarmL1 went to Redis %d times", after-before)
	}
}
