package local_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const testMaxCost = 1 << 20 // small: the tests make many caches

// newCache returns a cache on a manual clock reading t0, closed when the
// test ends.
func newCache(t testing.TB, o local.Options) (*local.Cache[string], *local.ManualClock) {
	t.Helper()
	clk := local.NewManualClock(t0)
	if o.MaxCost == 0 {
		o.MaxCost = testMaxCost
	}
	if o.Clock == nil {
		o.Clock = clk
	}
	c, err := local.New[string](o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, clk
}

// splitColon puts a key's prefix boundary after its first ":".
func splitColon(key string) int { return strings.IndexByte(key, ':') + 1 }

func item(v string, ttl time.Duration) local.Item[string] {
	return local.Item[string]{Value: v, Cost: int64(max(len(v), 1)), Expire: t0.Add(ttl).UnixNano()}
}

func get(c *local.Cache[string], key string) (string, bool) {
	e, ok := c.Get(key)
	if !ok {
		return "", false
	}
	return e.Value, true
}

// checkExact applies the pending Sets, then checks the index against what
// Ristretto holds: the index points each key at exactly the entry
// Ristretto holds for it that is not dead, and at nothing else; Len counts
// the index, and the ordered sets hold the index's keys.
func checkExact(t *testing.T, c *local.Cache[string]) {
	t.Helper()
	c.Wait()
	live := map[string]*local.Entry[string]{}
	for _, e := range local.Stored(c) {
		if !local.Dead(e) {
			live[e.Key] = e
		}
	}
	var keys []string
	for k, e := range c.All() {
		keys = append(keys, k)
		switch {
		case local.Dead(e):
			t.Errorf("the index holds %q with a dead entry", k)
		case live[k] != e:
			t.Errorf("the index holds %q at %p; Ristretto holds %p", k, e, live[k])
		}
	}
	if n := len(keys); n != len(live) || c.Len() != n {
		t.Errorf("the index holds %d entries (Len %d); Ristretto holds %d live ones", n, c.Len(), len(live))
	}
	ord := local.OrderedKeys(c)
	slices.Sort(keys)
	slices.Sort(ord)
	if !slices.Equal(ord, keys) {
		t.Errorf("the ordered sets hold %d keys, the index %d: they differ", len(ord), len(keys))
	}
}

// blocker holds Ristretto's goroutine inside OnReject, so that the Sets
// made meanwhile queue up and are applied together, in order, on release:
// it makes Ristretto's interleavings deterministic.
type blocker struct {
	held, release chan struct{}
	mu            sync.Mutex // protects rejected
	rejected      []string
}

const blockKey = "\x00block"

func newBlocker() *blocker {
	return &blocker{held: make(chan struct{}), release: make(chan struct{}, 1)}
}

// onReject is the cache's OnReject hook.
func (b *blocker) onReject(key string) {
	if key == blockKey {
		b.held <- struct{}{}
		<-b.release
		return
	}
	b.mu.Lock()
	b.rejected = append(b.rejected, key)
	b.mu.Unlock()
}

// hold returns once Ristretto's goroutine is held: a Set costlier than
// maxCost is always rejected.
func (b *blocker) hold(t *testing.T, c *local.Cache[string], maxCost int64) {
	t.Helper()
	t.Cleanup(b.free) // a failed test must not leave Close waiting on the hook
	c.Set(blockKey, local.Item[string]{Cost: maxCost + 1, Expire: t0.Add(time.Hour).UnixNano()})
	<-b.held
}

func (b *blocker) free() {
	select {
	case b.release <- struct{}{}:
	default:
	}
}

func (b *blocker) rejects() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.rejected...)
}
