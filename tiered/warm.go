package tiered

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Defaults of [WarmOptions].
const (
	DefaultWarmBatch       = 100
	DefaultWarmConcurrency = 4
)

// WarmOptions configures [Group.Warm]. Exactly one of Load and LoadMany
// must be set; the zero value of every other field is its documented
// default.
type WarmOptions[V any] struct {
	// Load loads one id. The ids of a batch are loaded one after the
	// other, so BatchSize loads must fit in the cache's LoadTimeout; an
	// error fails that id only, but for one wrapping ErrNotFound: that id
	// does not exist, and counts as done. In Stats and events, a batch's Load calls
	// count as one loader call, as a LoadMany call would: an id whose Load
	// failed is reported in the WarmError, not in LoadErrors.
	Load LoaderFunc[V]
	// LoadMany loads a batch of ids in one call, as for
	// [Group.FetchMany]; an error fails the whole batch, and an id left
	// out of the result does not exist (it counts as done, not failed), as
	// do all of them when the error wraps ErrNotFound.
	LoadMany BatchLoaderFunc[V]
	// BatchSize is how many ids go to one pipeline of Redis calls and one
	// LoadMany call. Default: 100.
	BatchSize int
	// Concurrency is how many batches run at once. Default: 4.
	Concurrency int
	// Progress, if set, is called after every batch with the counts so
	// far. Calls are serialized, with Done growing from one call to the
	// next, and come from Warm's goroutines; Warm waits for the last.
	Progress func(WarmProgress)
}

// WarmProgress is the state of a [Group.Warm] after a batch.
type WarmProgress struct {
	Done   int // ids processed (warmed, already cached, missing from the source, or failed)
	Total  int // distinct ids asked for
	Failed int // ids whose load failed, or whose batch met a Redis failure
}

// WarmError is the error [Group.Warm] returns when some ids were not
// warmed. What was written for the other ids stays.
type WarmError struct {
	Group  string
	Failed []string // the ids that were not warmed, in the order they were asked for
	Errs   []error  // one per failure: an id's load, a batch's load, a Redis failure, ctx
}

// Error names the group, how many ids failed and the first of them.
func (e *WarmError) Error() string {
	const shown = 10
	ids := e.Failed
	more := ""
	if len(ids) > shown {
		more = fmt.Sprintf(" and %d more", len(ids)-shown)
		ids = ids[:shown]
	}
	first := ""
	if len(e.Errs) > 0 {
		first = ": " + e.Errs[0].Error()
	}
	return fmt.Sprintf("tiered: warm %q: %d failed (%s%s)%s", e.Group, len(e.Failed), strings.Join(ids, ", "), more, first)
}

// Unwrap returns every failure, so that errors.Is and errors.As see them.
func (e *WarmError) Unwrap() []error { return e.Errs }

// errWarmRedis marks the ids of a batch during which Redis failed: their
// values may be only in this node's L1, for DegradedL1TTL.
var errWarmRedis = errors.New("tiered: redis failed while warming; values kept in this node's L1 only")

// Warm loads ids into Redis and this node's L1 before traffic asks for
// them, as a start-up step. It runs [Group.FetchMany] over batches of
// BatchSize ids, Concurrency batches at a time: ids already in L1 or
// Redis are left as they are (an id in Redis only is copied into L1), and
// the others are loaded with a lease and filled with a compare-and-set,
// each with its own jittered TTL. So warming never resurrects a value
// invalidated while it ran and never overwrites a newer value, and keys
// warmed together do not expire together.
//
// Warm returns when every batch has ended, or ctx is done (batches not yet
// started are then reported failed with ctx's error). When some ids fail,
// it returns a *[WarmError] naming them; the others stay warmed. An id
// whose batch met a Redis failure is reported failed, since FetchMany
// then keeps values in this node's L1 only (it may name ids that a
// concurrent batch's failure did not affect). A loader panic reaches the
// caller of Warm as a panic with a *[PanicError], after the other batches
// have ended. Empty ids are an error before anything is loaded; duplicate
// ids are warmed once. A batch of expired ids in a group with
// LoadSoftTimeout, or of ids inside a MaxStale window, waits for its load
// like any other: Warm serves no fallback or stale value, so it returns
// the loads' outcome once they have ended.
func (g *Group[V]) Warm(ctx context.Context, ids []string, opts WarmOptions[V]) error {
	if (opts.Load == nil) == (opts.LoadMany == nil) {
		return fmt.Errorf("tiered: warm %q: set exactly one of Load and LoadMany", g.name)
	}
	if opts.BatchSize < 0 || opts.Concurrency < 0 {
		return fmt.Errorf("tiered: warm %q: negative BatchSize or Concurrency", g.name)
	}
	if err := g.c.checkOpen(); err != nil {
		return err
	}
	w := &warm[V]{g: g, opts: opts}
	if err := w.dedupe(ids); err != nil {
		return err
	}
	w.run(ctx)
	if w.panic != nil {
		panic(w.panic)
	}
	if len(w.failed) == 0 {
		return nil
	}
	w.sortFailed()
	return &WarmError{Group: g.name, Failed: w.failed, Errs: w.errs}
}

// warm is one Group.Warm call.
type warm[V any] struct {
	g    *Group[V]
	opts WarmOptions[V]
	ids  []string
	pos  map[string]int // an id's index in ids

	progressMu sync.Mutex // serializes Progress calls, taken before mu

	mu     sync.Mutex // protects the fields below
	done   int
	failed []string
	errs   []error
	panic  *PanicError
}

func (w *warm[V]) dedupe(ids []string) error {
	w.pos = make(map[string]int, len(ids))
	for _, id := range ids {
		if id == "" {
			return fmt.Errorf("tiered: warm %q: %w", w.g.name, errEmptyID)
		}
		if _, dup := w.pos[id]; !dup {
			w.pos[id] = len(w.ids)
			w.ids = append(w.ids, id)
		}
	}
	return nil
}

func (w *warm[V]) run(ctx context.Context) {
	size := w.opts.BatchSize
	if size == 0 {
		size = DefaultWarmBatch
	}
	limit := w.opts.Concurrency
	if limit == 0 {
		limit = DefaultWarmConcurrency
	}
	var eg errgroup.Group
	eg.SetLimit(limit)
	for start := 0; start < len(w.ids); start += size {
		chunk := w.ids[start:min(start+size, len(w.ids))]
		if err := ctx.Err(); err != nil {
			w.finish(chunk, err)
			continue
		}
		w.g.c.at(hookWarmQueued)
		eg.Go(func() error {
			if err := ctx.Err(); err != nil {
				w.finish(chunk, err) // cancelled while it waited for a slot
				return nil
			}
			w.batch(ctx, chunk)
			return nil
		})
	}
	_ = eg.Wait()
}

// hookWarmQueued is the point (Cache.at) where Warm hands a batch to its
// pool, which may make it wait for a slot.
const hookWarmQueued = "warm-batch-queued"

// batch warms one chunk of ids, turning a loader panic into w.panic.
func (w *warm[V]) batch(ctx context.Context, ids []string) {
	defer func() {
		if r := recover(); r != nil {
			p, ok := r.(*PanicError)
			if !ok {
				p = &PanicError{Value: r, Stack: debug.Stack()}
			}
			w.mu.Lock()
			if w.panic == nil {
				w.panic = p
			}
			w.mu.Unlock()
			w.finish(ids, fmt.Errorf("loader panicked: %v", r))
		}
	}()
	var perID map[string]error // the failures of Load, by id
	load := w.opts.LoadMany
	if load == nil {
		perID = make(map[string]error)
		load = func(ctx context.Context, ids []string) (map[string]V, error) {
			out := make(map[string]V, len(ids))
			for _, id := range ids {
				v, err := w.opts.Load(ctx, id)
				if err != nil {
					if !errors.Is(err, ErrNotFound) { // not found: it does not exist, as LoadMany leaving it out says
						perID[id] = err
					}
					continue
				}
				out[id] = v
			}
			return out, nil
		}
	}
	redisErrs := w.g.st.redisErrs.Load()
	// Warming waits for its loads, past LoadSoftTimeout: it reports their
	// failures (perID, written by the loader), so it must not return while
	// the loader runs.
	fetch := func(ctx context.Context, ids []string, load BatchLoaderFunc[V]) (map[string]V, error) {
		return w.g.fetchMany(ctx, ids, load, true)
	}
	if w.g.c.noCAS {
		fetch = w.g.fetchWithoutCAS
	}
	_, err := fetch(ctx, ids, load)
	switch {
	case err != nil:
		w.finish(ids, err)
	case w.g.st.redisErrs.Load() != redisErrs:
		w.finish(ids, errWarmRedis)
	default:
		w.finishEach(ids, perID)
	}
}

// fetchWithoutCAS is what warming does without leases and compare-and-set
// fills (load, then a plain write), kept only so that tests can show what
// goes wrong without them (Cache.noCAS).
func (g *Group[V]) fetchWithoutCAS(ctx context.Context, ids []string, load BatchLoaderFunc[V]) (map[string]V, error) {
	vals, err := load(ctx, ids)
	if err != nil {
		return nil, err
	}
	for id, v := range vals {
		if err := g.Set(ctx, id, v); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

// finish ends a batch whose ids all share one outcome (err nil: all warmed).
func (w *warm[V]) finish(ids []string, err error) {
	w.progressMu.Lock()
	defer w.progressMu.Unlock()
	w.mu.Lock()
	w.done += len(ids)
	if err != nil {
		w.failed = append(w.failed, ids...)
		w.errs = append(w.errs, fmt.Errorf("ids %s: %w", idList(ids), err))
	}
	w.report()
}

// finishEach ends a batch whose ids failed one by one (perID).
func (w *warm[V]) finishEach(ids []string, perID map[string]error) {
	w.progressMu.Lock()
	defer w.progressMu.Unlock()
	w.mu.Lock()
	w.done += len(ids)
	for _, id := range ids {
		if err, ok := perID[id]; ok {
			w.failed = append(w.failed, id)
			w.errs = append(w.errs, fmt.Errorf("id %q: %w", id, err))
		}
	}
	w.report()
}

// report releases w.mu, then calls Progress with the counts it held;
// progressMu, held by the caller, keeps the calls in order.
func (w *warm[V]) report() {
	p := WarmProgress{Done: w.done, Total: len(w.ids), Failed: len(w.failed)}
	w.mu.Unlock()
	if w.opts.Progress != nil {
		w.opts.Progress(p)
	}
}

func (w *warm[V]) sortFailed() {
	slices.SortFunc(w.failed, func(a, b string) int { return cmp.Compare(w.pos[a], w.pos[b]) })
}

// idList names ids, eliding the middle of a long list.
func idList(ids []string) string {
	if len(ids) <= 4 {
		return fmt.Sprintf("%q", ids)
	}
	return fmt.Sprintf("[%q %q ... %q] (%d ids)", ids[0], ids[1], ids[len(ids)-1], len(ids))
}

// warmL1Batch is how many keys one pipeline of [Cache.WarmL1] reads.
const warmL1Batch = 1000

// WarmL1 copies keys (as [Group.Key] returns them) from Redis into this
// node's L1, so that a fresh process does not send its first burst of
// traffic to Redis one key at a time. Each key is decoded with the codec
// of its group, which must have been created on c; keys of no such group
// are reported in the error and skipped. Keys are read with pipelines of
// single-key GETs (on a cluster, each node gets its own part), and put in
// L1 only if no invalidation of the key happened since the read began.
//
// WarmL1 first waits for the bus subscription ([Cache.WaitBus]): until it
// is confirmed L1 keeps entries for DegradedL1TTL only, and confirming it
// flushes L1. It returns once the entries are visible to reads, with the
// number of keys found in Redis (L1 may still refuse some: it is
// advisory). Without Redis or without L1 it does nothing. A Redis failure
// ends it with the error.
func (c *Cache) WarmL1(ctx context.Context, keys []string) (int, error) {
	if err := c.checkOpen(); err != nil {
		return 0, err
	}
	if c.l1 == nil || c.store == nil || len(keys) == 0 {
		return 0, nil
	}
	if err := c.WaitBus(ctx); err != nil {
		return 0, fmt.Errorf("tiered: warm L1: %w", err)
	}
	byGroup, unknown := c.keysByGroup(keys)
	var errs []error
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("tiered: warm L1: keys of no group of this cache: %s", idList(unknown)))
	}
	found := 0
	for g, gkeys := range byGroup {
		for start := 0; start < len(gkeys); start += warmL1Batch {
			n, err := g.warmL1(ctx, gkeys[start:min(start+warmL1Batch, len(gkeys))])
			found += n
			if err != nil {
				c.WaitL1()
				return found, errors.Join(append(errs, fmt.Errorf("tiered: warm L1: %w", err))...)
			}
		}
	}
	c.WaitL1()
	return found, errors.Join(errs...)
}

// keysByGroup sorts keys by the group that holds them.
func (c *Cache) keysByGroup(keys []string) (map[groupStats][]string, []string) {
	c.groupsMu.Lock()
	prefixes := make(map[string]groupStats, len(c.groups))
	for name, g := range c.groups {
		prefixes[EncodeName(name)] = g
	}
	c.groupsMu.Unlock()
	out := make(map[groupStats][]string)
	var unknown []string
	for _, k := range keys {
		i := strings.IndexByte(k, ':')
		g, ok := prefixes[k[:max(i, 0)]]
		if i < 0 || i == len(k)-1 || !ok {
			unknown = append(unknown, k)
			continue
		}
		out[g] = append(out[g], k)
	}
	return out, unknown
}

// warmL1 reads keys of g from Redis with one pipeline and puts the values
// in L1 (unless invalidated since the read began). It returns how many
// keys held a value.
func (g *Group[V]) warmL1(ctx context.Context, keys []string) (int, error) {
	tok := g.c.begin()
	recs, err := g.c.store.GetMany(ctx, keys)
	if err != nil {
		g.record(Event{Kind: EventRedisError, Err: err})
		return 0, err
	}
	n := 0
	for i, rec := range recs {
		if _, st := g.fromRecord(ctx, keys[i], rec, tok, nil); st == foundValue || st == foundAbsent {
			n++
		}
	}
	return n, nil
}
