package tiered_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// TestJitterBand reads back with PTTL, from a real server, the TTLs that
// Fetch, FetchMany and Set wrote: every one lies in [TTL*(1-j), TTL], and
// they spread over the whole band.
func TestJitterBand(t *testing.T) {
	rdb := newReal(t)
	ctx := context.Background()
	const ttl, j, n = 10_000 * time.Second, 0.5, 300 // a long TTL: the seconds the test takes barely shift the histogram
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "jit", Jitter: j})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{TTL: ttl})
	load := func(_ context.Context, id string) (int, error) { return len(id), nil }
	start := time.Now()
	var many []string
	for i := 0; i < n; i++ {
		id := fmt.Sprint(i)
		switch i % 3 {
		case 0:
			if _, err := g.Fetch(ctx, id, load); err != nil {
				t.Fatal(err)
			}
		case 1:
			many = append(many, id)
		case 2:
			if err := g.Set(ctx, id, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err := g.FetchMany(ctx, many, func(_ context.Context, ids []string) (map[string]int, error) {
		m := map[string]int{}
		for _, id := range ids {
			m[id] = len(id)
		}
		return m, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const bins = 10
	var hist [bins]int
	for i := 0; i < n; i++ {
		pttl := rdb.PTTL(ctx, fmt.Sprintf("jit:k:%d", i)).Val()
		if lo := lowestTTL(ttl, j, start); pttl > ttl || pttl < lo {
			t.Fatalf("PTTL of key %d = %v; want in [%v, %v]", i, pttl, lo, ttl)
		}
		b := int(float64(pttl-ttl/2) / float64(ttl/2) * bins)
		hist[min(max(b, 0), bins-1)]++
	}
	for b, count := range hist {
		if count == 0 { // each bin expects n/bins = 30: an empty one means no spread
			t.Fatalf("no TTL in band %d of %d: %v", b, bins, hist)
		}
	}
	t.Logf("TTL histogram over [%v, %v]: %v", ttl/2, ttl, hist)
}

// lowestTTL is the lowest PTTL that a key written since start with a TTL
// drawn from the jitter band [ttl*(1-j), ttl] can show now: the band's
// low end less the time since start, measured when it is called (after
// the PTTL was read), so that the bound holds however slow the machine.
// Redis keeps TTLs in whole milliseconds and rounds PTTL, hence the 2ms.
func lowestTTL(ttl time.Duration, j float64, start time.Time) time.Duration {
	return time.Duration(float64(ttl)*(1-j)) - time.Since(start) - 2*time.Millisecond
}

func TestDisableJitter(t *testing.T) {
	rdb, m := newMini(t)
	c := newCache(t, tiered.Options{Redis: rdb, Namespace: "nj", DisableJitter: true})
	g := newGroup[int](t, c, "k", tiered.GroupOptions{TTL: time.Minute})
	for i := 0; i < 20; i++ {
		if err := g.Set(context.Background(), fmt.Sprint(i), i); err != nil {
			t.Fatal(err)
		}
		if got := m.TTL(fmt.Sprintf("nj:k:%d", i)); got != time.Minute {
			t.Fatalf("TTL = %v; want exactly 1m", got)
		}
	}
}
