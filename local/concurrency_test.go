package local_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiercache/tiercache/local"
)

// TestConcurrentNoStaleFill runs loads (Begin, read a version, SetIf),
// local writes, deletes, patterns, flushes, clock moves and degraded
// toggles together, on a cache small enough to evict. Each key has a
// version, bumped by every write or invalidation of it just before the
// cache call (as L2 changes before L1 is told). A read racing an
// invalidation may see either side, so only the end state is checked:
// whatever is served is the latest version, and the index is exact.
func TestConcurrentNoStaleFill(t *testing.T) {
	c, clk := newCache(t, local.Options{MaxCost: 100, Split: splitColon})
	st := &stress{c: c, clk: clk}
	for i := range st.keys {
		st.keys[i] = fmt.Sprintf("%c:%d", 'a'+i%4, i)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 3000 {
				st.step(r)
			}
		})
	}
	wg.Wait()
	c.ClearDegraded()
	for i, k := range st.keys {
		if v, ok := get(c, k); ok && v != strconv.FormatInt(st.vers[i].Load(), 10) {
			t.Errorf("Get(%q) = %s; the latest version is %d", k, v, st.vers[i].Load())
		}
	}
	checkExact(t, c)
}

const stressKeys = 64

type stress struct {
	c    *local.Cache[string]
	clk  *local.ManualClock
	keys [stressKeys]string
	vers [stressKeys]atomic.Int64
	mus  [stressKeys]sync.Mutex // serialize the writes of a key, as L2 does
}

func (st *stress) val(v int64) local.Item[string] {
	return item(strconv.FormatInt(v, 10), time.Hour)
}

// step does one random operation.
func (st *stress) step(r *rand.Rand) {
	c, i := st.c, r.IntN(stressKeys)
	switch r.IntN(24) {
	case 0:
		st.mus[i].Lock()
		st.vers[i].Add(1)
		c.Delete(st.keys[i])
		st.mus[i].Unlock()
	case 1:
		st.mus[i].Lock()
		c.Set(st.keys[i], st.val(st.vers[i].Add(1)))
		st.mus[i].Unlock()
	case 2:
		st.deletePrefix(st.keys[i][:2])
	case 3:
		if r.IntN(8) == 0 {
			c.Flush()
		}
	case 4:
		st.clk.Add(time.Millisecond)
	case 5:
		if r.IntN(2) == 0 {
			c.SetDegraded(time.Duration(r.IntN(3)) * time.Millisecond)
		} else {
			c.ClearDegraded()
		}
	default:
		tok := c.Begin()
		v := st.vers[i].Load() // the load reads L2 after taking its token
		c.LookupPrefix(c.Prefix(st.keys[i][:2]), st.keys[i][2:])
		c.SetIf(st.keys[i], tok, st.val(v))
	}
}

// deletePrefix invalidates every key that starts with prefix by pattern,
// holding their locks (in order) around the version bumps and the call.
func (st *stress) deletePrefix(prefix string) {
	var held []int
	for i, k := range st.keys {
		if strings.HasPrefix(k, prefix) {
			st.mus[i].Lock()
			st.vers[i].Add(1)
			held = append(held, i)
		}
	}
	st.c.DeleteMatching(prefix, func(k string) bool { return strings.HasPrefix(k, prefix) })
	for _, i := range held {
		st.mus[i].Unlock()
	}
}

// TestCloseDuringWrites: writes, deletes, patterns and Waits racing Close
// neither panic nor deadlock, and do nothing once it is done.
func TestCloseDuringWrites(t *testing.T) {
	c, err := local.New[string](local.Options{MaxCost: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint("k", (g*7+i)%50)
				switch i % 5 {
				case 0:
					c.Delete(k)
				case 1:
					c.DeleteMatching("k1", func(k string) bool { return strings.HasPrefix(k, "k1") })
				case 2:
					c.Wait()
				default:
					c.SetIf(k, c.Begin(), item("v", time.Hour))
					c.Set(k, item("v", time.Hour))
				}
			}
		})
	}
	c.Close()
	wg.Wait()
	if n := c.Len(); n != 0 {
		t.Errorf("Len after Close and the writes = %d; want 0", n)
	}
}

func TestCloseIsIdempotentAndLaterCallsAreSafe(t *testing.T) {
	c, err := local.New[string](local.Options{}) // its own ticking clock
	if err != nil {
		t.Fatal(err)
	}
	c.Set("k", local.Item[string]{Value: "v", Cost: 1, Expire: time.Now().Add(time.Hour).UnixNano()})
	c.Wait()
	if _, ok := c.Get("k"); !ok {
		t.Fatal("Get before Close missed")
	}
	c.Close()
	c.Close()
	if _, ok := c.Get("k"); ok {
		t.Error("Get after Close hit")
	}
	if _, ok := c.LookupPrefix(c.Prefix(""), "k"); ok {
		t.Error("LookupPrefix after Close hit")
	}
	c.Set("k", item("v", time.Minute))
	if c.SetIf("k", c.Begin(), item("v", time.Minute)) {
		t.Error("SetIf after Close reported an install")
	}
	if n := c.Delete("k"); n != 0 {
		t.Errorf("Delete after Close removed %d", n)
	}
	if n := c.DeleteMatching("", func(string) bool { return true }); n != 0 {
		t.Errorf("DeleteMatching after Close removed %d", n)
	}
	c.Flush()
	c.SetDegraded(time.Second)
	c.ClearDegraded()
	c.Wait()
	if n := c.Len(); n != 0 {
		t.Errorf("Len after Close = %d; want 0", n)
	}
}

func TestCloseLeavesAGivenClockRunning(t *testing.T) {
	clk := local.NewTickingClock(0)
	defer clk.Stop()
	c, err := local.New[string](local.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	clk.Stop() // would hang had Close stopped it some other way; goleak checks the rest
}
