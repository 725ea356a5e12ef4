package tiered_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

func init() {
	failSafeCases["FetchManySoftTimeout"] = failSafeFetchManySoftTimeout
	failSafeCases["FetchManySoftWaits"] = failSafeFetchManySoftWaits
	failSafeCases["FetchManySoftNeverInvalidated"] = failSafeFetchManySoftNeverInvalidated
	failSafeCases["FetchManySoftFails"] = failSafeFetchManySoftFails
	failSafeCases["FetchManySoftClose"] = failSafeFetchManySoftClose
}

// softRig is an fsRig of two nodes whose groups have a LoadSoftTimeout
// (and whose loads have no LoadTimeout to speak of);
// node 1's soft timers fire when the test sends on fire, and its hooks
// tell when a batch's soft timeout has served its fallbacks (served) and
// when a run that went on in the background has ended (ended).
type softRig struct {
	*fsRig
	fire   chan time.Time
	served chan struct{}
	ended  chan struct{}
}

func newSoftRig(t *testing.T, rdb redis.UniversalClient, gopts tiered.GroupOptions) *softRig {
	gopts.LoadSoftTimeout = time.Hour
	// LoadTimeout: only the test (or Close) ends a blocked loader; a load
	// that timed out would serve the same fallbacks through the failure
	// path.
	long := func(o *tiered.Options) { o.LoadTimeout = time.Hour }
	r := &softRig{fsRig: newFSRigWith(t, rdb, 2, gopts, long), fire: make(chan time.Time, 1), served: make(chan struct{}, 8), ended: make(chan struct{}, 8)}
	tiered.SetSoftTimer(r.caches[1], func(time.Duration) *time.Timer {
		tm := time.NewTimer(time.Hour)
		tm.C = r.fire // the test decides when the soft timeout passes
		return tm
	})
	tiered.SetHook(r.caches[1], func(p string) {
		switch p {
		case "fail-safe-soft-served":
			r.served <- struct{}{}
		case "stale-loaded":
			r.ended <- struct{}{}
		}
	})
	return r
}

// blocked is a batch loader that tells entered when it runs, then waits
// for release (or its context's end: a failed test's Close ends it) and
// loads every id as value.
type blocked struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlocked() *blocked {
	return &blocked{entered: make(chan struct{}), release: make(chan struct{})}
}

func (b *blocked) load(r *fsRig, value string, err error) tiered.BatchLoaderFunc[string] {
	return func(ctx context.Context, ids []string) (map[string]string, error) {
		r.loads.Add(1)
		b.once.Do(func() { close(b.entered) })
		select {
		case <-b.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, err
		}
		m := make(map[string]string, len(ids))
		for _, id := range ids {
			m[id] = value
		}
		return m, nil
	}
}

// softWatch bounds how long a test waits for what the soft timeout must
// bring about; it only turns a broken soft timeout into a failure instead
// of a hung test, and is never reached when it works.
const softWatch = time.Minute

// within returns what ch delivers, and fails the test if nothing came
// within softWatch.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(softWatch):
		t.Fatalf("%s: still waiting %v after the soft timeout fired", what, softWatch)
	}
	panic("unreachable")
}

type manyResult struct {
	m   map[string]string
	err error
}

// fetchMany runs node i's FetchMany of ids on its own goroutine.
func (r *fsRig) fetchMany(i int, ids []string, load tiered.BatchLoaderFunc[string]) <-chan manyResult {
	ch := make(chan manyResult, 1)
	go func() {
		m, err := r.groups[i].FetchMany(context.Background(), ids, load)
		ch <- manyResult{m, err}
	}()
	return ch
}

// failSafeFetchManySoftTimeout: a FetchMany whose batch holds only expired
// ids returns their fallbacks once the soft timeout fires, while the
// loader is still blocked (the test lets it go only after it saw them);
// the load then goes on in the background, called once, and fills both
// tiers: node 1's L1 and, through Redis, node 0. With the soft timeout
// ignored for FetchMany, the call waits for the load: it returns the
// loaded values.
func failSafeFetchManySoftTimeout(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("softOff=%v", off), func(t *testing.T) {
			r := newSoftRig(t, rdb, tiered.GroupOptions{})
			tiered.SetNoSoftMany(r.caches[1], off)
			a, b := fmt.Sprintf("sa-%v", off), fmt.Sprintf("sb-%v", off)
			r.cached(a)
			r.cached(b)
			base := r.loads.Load()
			ld := newBlocked()
			got := r.fetchMany(1, []string{a, b}, ld.load(r.fsRig, "v2", nil))
			<-ld.entered
			r.fire <- time.Now()
			if off {
				close(ld.release)
				if res := <-got; res.err != nil || res.m[a] != "v2" || res.m[b] != "v2" {
					t.Fatalf("soft timeout ignored: %v, %v; want the loaded v2 for both (the call waited for the load)", res.m, res.err)
				}
				if s := r.groups[1].Stats(); s.FailSafe != 0 {
					t.Fatalf("Stats.FailSafe = %d; want 0", s.FailSafe)
				}
				return
			}
			res := within(t, got, "FetchMany") // the loader is still blocked
			if res.err != nil || res.m[a] != "v1" || res.m[b] != "v1" || len(res.m) != 2 {
				t.Fatalf("soft timeout: %v, %v; want the fallback v1 for both", res.m, res.err)
			}
			if s := r.groups[1].Stats(); s.FailSafe != 2 {
				t.Fatalf("Stats.FailSafe = %d; want 2 (one per fallback)", s.FailSafe)
			}
			close(ld.release)
			<-r.ended // the background load filled and ended
			if calls := r.loads.Load() - base; calls != 1 {
				t.Fatalf("%d loader calls; want 1", calls)
			}
			r.caches[1].WaitL1()
			for _, id := range []string{a, b} {
				if v, ok := r.groups[1].Peek(id); !ok || v != "v2" {
					t.Fatalf("node 1's L1 after the background load: %s = %q, %v; want v2", id, v, ok)
				}
				if v, fb, err := r.fetch(0, id, r.dead); err != nil || v != "v2" || fb {
					t.Fatalf("node 0 after the background load: %s = %q, fallback %v, %v; want v2 from Redis", id, v, fb, err)
				}
			}
			if calls := r.loads.Load() - base; calls != 1 {
				t.Fatalf("%d loader calls after the reads; want 1 (both from the background fill)", calls)
			}
			if s := r.groups[1].Stats(); s.FailSafe != 2 {
				t.Fatalf("Stats.FailSafe = %d after the background fill; want 2", s.FailSafe)
			}
		})
	}
}

// failSafeFetchManySoftWaits: in a batch of an expired id and an id never
// cached, the soft timeout serves the expired id's fallback (counted while
// the loader is blocked) and the other id waits: the call returns once the
// test lets the loader go, with the fallback for the first (the load's
// value came after it) and the loaded value for the second. With the soft
// timeout ignored for FetchMany, both get the loaded value.
func failSafeFetchManySoftWaits(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("softOff=%v", off), func(t *testing.T) {
			r := newSoftRig(t, rdb, tiered.GroupOptions{})
			tiered.SetNoSoftMany(r.caches[1], off)
			old, fresh := fmt.Sprintf("wo-%v", off), fmt.Sprintf("wn-%v", off)
			r.cached(old)
			ld := newBlocked()
			got := r.fetchMany(1, []string{old, fresh}, ld.load(r.fsRig, "v2", nil))
			<-ld.entered
			r.fire <- time.Now()
			if !off {
				within(t, r.served, "the fallback")
				if s := r.groups[1].Stats(); s.FailSafe != 1 {
					t.Fatalf("Stats.FailSafe = %d at the soft timeout; want 1", s.FailSafe)
				}
				select {
				case res := <-got:
					t.Fatalf("FetchMany returned %v, %v while the id without a fallback was still loading", res.m, res.err)
				default:
				}
			}
			close(ld.release)
			res := <-got
			want := "v1"
			if off {
				want = "v2"
			}
			if res.err != nil || res.m[old] != want || res.m[fresh] != "v2" {
				t.Fatalf("FetchMany = %v, %v; want %s: %s, %s: v2", res.m, res.err, old, want, fresh)
			}
		})
	}
}

// failSafeFetchManySoftNeverInvalidated: an id invalidated by another node
// after the batch's read (while its load is blocked) is not served at the
// soft timeout: it waits for the load, while the other expired id of the
// batch is served its fallback. With the fallback checks off, the
// invalidated value is served.
func failSafeFetchManySoftNeverInvalidated(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkOff=%v", off), func(t *testing.T) {
			ctx := context.Background()
			r := newSoftRig(t, rdb, tiered.GroupOptions{})
			tiered.SetNoFallbackCheck(r.caches[1], off)
			kept, inv := fmt.Sprintf("ik-%v", off), fmt.Sprintf("ii-%v", off)
			r.cached(kept)
			r.cached(inv)
			ld := newBlocked()
			got := r.fetchMany(1, []string{kept, inv}, ld.load(r.fsRig, "v2", nil))
			<-ld.entered
			if err := r.groups[0].Invalidate(ctx, inv); err != nil {
				t.Fatal(err)
			}
			r.fire <- time.Now()
			within(t, r.served, "the fallback")
			wantServed := uint64(1)
			if off {
				wantServed = 2
			}
			if s := r.groups[1].Stats(); s.FailSafe != wantServed {
				t.Fatalf("Stats.FailSafe = %d at the soft timeout; want %d", s.FailSafe, wantServed)
			}
			close(ld.release)
			res := <-got
			if off {
				if res.err != nil || res.m[inv] != "v1" {
					t.Fatalf("check off: %v, %v; want the invalidated v1 served", res.m, res.err)
				}
				return
			}
			if res.err != nil || res.m[kept] != "v1" || res.m[inv] != "v2" {
				t.Fatalf("FetchMany = %v, %v; want %s: v1 (fallback), %s: v2 (invalidated: waited for the load)", res.m, res.err, kept, inv)
			}
		})
	}
}

// failSafeFetchManySoftFails: the background load that outlived the
// batch's soft timeout fails: the fallback is not counted again, node 1
// keeps it in L1, and its throttle mark holds node 0 back (its FetchMany
// is served without loading). With the throttle off, node 0 loads.
func failSafeFetchManySoftFails(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("throttleOff=%v", off), func(t *testing.T) {
			r := newSoftRig(t, rdb, tiered.GroupOptions{FailSafeThrottle: time.Hour})
			for _, c := range r.caches {
				tiered.SetNoThrottle(c, off)
			}
			id := fmt.Sprintf("sf-%v", off)
			r.cached(id)
			ld := newBlocked()
			got := r.fetchMany(1, []string{id}, ld.load(r.fsRig, "", errDown))
			<-ld.entered
			r.fire <- time.Now()
			if res := within(t, got, "FetchMany"); res.err != nil || res.m[id] != "v1" {
				t.Fatalf("soft timeout: %v, %v; want the fallback v1", res.m, res.err)
			}
			close(ld.release)
			<-r.ended
			if s := r.groups[1].Stats(); s.FailSafe != 1 {
				t.Fatalf("Stats.FailSafe = %d after the background failure; want 1", s.FailSafe)
			}
			base := r.loads.Load()
			res, err := r.groups[0].FetchMany(context.Background(), []string{id}, r.deadMany)
			if err != nil || res[id] != "v1" {
				t.Fatalf("node 0's FetchMany = %v, %v; want the fallback v1", res, err)
			}
			calls := r.loads.Load() - base
			if off {
				if calls != 1 {
					t.Fatalf("throttle off: %d loader calls on node 0; want 1", calls)
				}
				return
			}
			if calls != 0 {
				t.Fatalf("%d loader calls on node 0 within the throttle; want 0", calls)
			}
			r.caches[1].WaitL1()
			if v, ok := r.groups[1].Peek(id); !ok || v != "v1" {
				t.Fatalf("node 1's L1 during the throttle: %q, %v; want the fallback v1 kept", v, ok)
			}
		})
	}
}

// closeWatch is how long failSafeFetchManySoftClose holds the loader
// after Close cancelled it, to see whether Close returns meanwhile.
const closeWatch = 2 * time.Second

// failSafeFetchManySoftClose: Close while a batch's background load (past
// its soft timeout) is blocked cancels the loader and waits for the run to
// end (goleak in TestMain checks nothing is left). With the background
// run left uncounted, Close returns while the loader is still blocked.
func failSafeFetchManySoftClose(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("waitOff=%v", off), func(t *testing.T) {
			r := newSoftRig(t, rdb, tiered.GroupOptions{})
			tiered.SetNoBackgroundWait(r.caches[1], off)
			id := fmt.Sprintf("sc-%v", off)
			r.cached(id)
			entered, cancelled, letGo := make(chan struct{}), make(chan struct{}), make(chan struct{})
			hang := func(ctx context.Context, _ []string) (map[string]string, error) {
				close(entered)
				<-ctx.Done()
				close(cancelled)
				<-letGo
				return nil, ctx.Err()
			}
			got := r.fetchMany(1, []string{id}, hang)
			<-entered
			r.fire <- time.Now()
			if res := within(t, got, "FetchMany"); res.err != nil || res.m[id] != "v1" {
				t.Fatalf("soft timeout: %v, %v; want the fallback v1", res.m, res.err)
			}
			closed := make(chan struct{})
			go func() {
				r.caches[1].Close()
				close(closed)
			}()
			<-cancelled
			if off {
				<-closed // Close did not wait for the blocked loader
				select {
				case <-r.ended:
					t.Fatal("the background run ended while its loader was blocked")
				default:
				}
				close(letGo)
				<-r.ended
				return
			}
			// Close cannot return while the loader is blocked: the watch
			// gives a Close that does not wait the time to return (a few
			// hundred milliseconds under -race), and never fails one that
			// does wait.
			select {
			case <-closed:
				t.Fatal("Close returned while the background load was still blocked")
			case <-time.After(closeWatch):
			}
			close(letGo)
			<-closed
			select {
			case <-r.ended:
			default:
				t.Fatal("Close returned before the background run ended")
			}
		})
	}
}

func init() {
	failSafeCases["FetchManySoftPanic"] = failSafeFetchManySoftPanic
}

// failSafeFetchManySoftPanic: the batch's loader runs on a goroutine of
// its own when a soft timeout may fire; its panic still reaches the
// caller as a *PanicError before the soft timeout, and after it (the
// caller already had its fallback) it ends the background run without
// taking the process down.
func failSafeFetchManySoftPanic(t *testing.T, rdb redis.UniversalClient) {
	r := newSoftRig(t, rdb, tiered.GroupOptions{})
	r.cached("p1")
	r.cached("p2")
	boom := func(context.Context, []string) (map[string]string, error) { panic("boom") }
	caught := make(chan any, 1)
	go func() {
		defer func() { caught <- recover() }()
		_, _ = r.groups[1].FetchMany(context.Background(), []string{"p1"}, boom)
	}()
	if pe, ok := (<-caught).(*tiered.PanicError); !ok || pe.Value != "boom" {
		t.Fatalf("a panicking batch loader: the caller recovered %v; want a *PanicError of boom", pe)
	}
	release := make(chan struct{})
	late := func(context.Context, []string) (map[string]string, error) { <-release; panic("late") }
	got := r.fetchMany(1, []string{"p2"}, late)
	r.fire <- time.Now()
	if res := within(t, got, "FetchMany"); res.err != nil || res.m["p2"] != "v1" {
		t.Fatalf("soft timeout: %v, %v; want the fallback v1", res.m, res.err)
	}
	close(release)
	<-r.ended
}
