package tiered

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tiercache/tiercache/internal/memsize"
	"github.com/tiercache/tiercache/local"
)

// LoaderFunc loads the value of one id from the source of truth. ctx carries
// the caller's values (not its cancellation) and the cache's LoadTimeout.
// Returning an error caches nothing.
type LoaderFunc[V any] func(ctx context.Context, id string) (V, error)

// GroupOptions configures a [Group]. The zero value of every field is its
// documented default.
type GroupOptions struct {
	// TTL is how long a value lives in Redis (jittered, see
	// [Options.Jitter]). Default: the cache's [Options.TTL].
	TTL time.Duration
	// Codec encodes values for Redis. Default: [JSON].
	Codec Codec
	// NegativeTTL turns on negative caching: when a loader returns an
	// error that wraps [ErrNotFound], that answer is cached in both tiers
	// for NegativeTTL (jittered, through the same lease and
	// compare-and-set as a value), and Fetch returns ErrNotFound from the
	// cache until it expires or is invalidated. Creating a row must then
	// invalidate its id (Group.Invalidate), or readers keep being told it
	// does not exist for up to NegativeTTL. Default: 0, off (ErrNotFound is
	// returned and nothing is cached).
	NegativeTTL time.Duration
	// EarlyRefreshBeta overrides [Options.EarlyRefreshBeta] for this group;
	// 0 keeps the cache's. A negative value turns early refresh off for
	// this group.
	EarlyRefreshBeta float64
	// Tags, if set, must be a func(id string, v V) []string for the group's
	// V (NewGroup fails otherwise): it decides the tags of each value when
	// it is loaded (Fetch, FetchMany, Warm, an early refresh) or written
	// (Set), and the value is invalidated by [Cache.InvalidateTags] of any
	// of them. It may return nil; at most MaxTags tags of 1 to MaxTagLen
	// bytes, else the call that loaded or wrote the value returns an error
	// wrapping ErrBadTag and caches nothing. It must be fast and must not
	// call the cache. Every entry also carries the group's implicit tag
	// ([Group.Clear]) and the namespace's ([Cache.Clear]). Default: nil,
	// no tags of its own.
	Tags any

	// TTLOf, if set, lets each value decide its own TTL (adaptive
	// caching): it is called with the id and the value (a V) whenever a
	// value is written (a load's fill, an early refresh, Set), and its
	// answer replaces TTL for that value; 0 or less keeps TTL, more than
	// MaxTTL is MaxTTL. Jitter applies to its answer as to TTL, in both
	// tiers; the L1 is still capped by [Options.L1TTL]. It is never called
	// on a hit. A cached "not found" has no value: see NegativeTTLOf. It
	// must be cheap and safe for concurrent use. Default: nil, every value
	// lives TTL.
	TTLOf func(id string, v any) time.Duration
	// NegativeTTLOf, if set, lets each "not found" answer decide how long
	// it is cached (adaptive negative caching): it is called with the id
	// and the loader's error (it wraps [ErrNotFound]; ErrNotFound itself
	// for an id a batch loader left out of its map) whenever such an
	// answer is about to be written, and its answer replaces NegativeTTL
	// for it, even when NegativeTTL is 0; 0 or less keeps NegativeTTL (and
	// with NegativeTTL 0, caches nothing), more than MaxTTL is MaxTTL.
	// Jitter applies, in both tiers.
	// It is never called on a hit. It must be cheap and safe for
	// concurrent use. Default: nil, every "not found" lives NegativeTTL.
	NegativeTTLOf func(id string, err error) time.Duration

	// FailSafe turns on fail-safe (see docs/guarantees.md, Expired is not invalidated): both tiers
	// keep a value for FailSafe past its expiry (its Redis key lives TTL +
	// FailSafe; its envelope still says when it expired). A Fetch that
	// finds such an expired value loads as usual; if the loader fails or
	// passes LoadTimeout, the caller gets the expired value and no error
	// (counted as [EventFailSafe]; [Group.FetchInfo] tells it), and no node
	// calls the loader for that id again for FailSafeThrottle: the throttle
	// is a mark in Redis, so the whole fleet holds back, and in the meantime
	// every read is served the expired value. An invalidated value is never
	// a fallback: an invalidation removes it from both tiers, and a
	// fallback is served only after Redis was seen still to hold it once
	// the load failed. Fetch, FetchInfo and FetchMany (per id of the
	// batch) use fallbacks; Get never loads, so
	// an expired value is a miss for it. A cached "not found" is not kept.
	// Default: 0, off.
	FailSafe time.Duration
	// FailSafeThrottle is how long, after a failed load served a fallback,
	// the fleet serves it without calling the loader again. Default:
	// DefaultFailSafeThrottle (5s).
	FailSafeThrottle time.Duration
	// LoadSoftTimeout, with FailSafe, bounds how long a Fetch that holds an
	// expired fallback waits for its load: past it, the caller gets the
	// fallback at once ([EventFailSafe] with no Err) while the load goes on
	// in the background, bounded by LoadTimeout, and fills both tiers
	// through the same compare-and-set; Close waits for it. FetchMany does
	// the same per id: past it, each id of the batch whose expired value
	// may still fall back (Redis holds exactly that write, and no
	// invalidation, flush or tag of it reached the node since the batch's
	// read) gets that value, and the ids without one wait for the batch's
	// load. Default: 0, wait for the load.
	LoadSoftTimeout time.Duration

	// MaxStale turns on bounded staleness after invalidation (see
	// docs/guarantees.md, Bounded staleness). An invalidation of a key of
	// the group, by key (Group.Invalidate, Cache.Invalidate, a template's
	// keys) or by a pattern that matches it (Cache.InvalidatePattern),
	// keeps the value it removes in Redis as a stale envelope for
	// MaxStale, counted from the start of the invalidation call, instead
	// of removing it. A Fetch, FetchInfo or FetchMany that misses L1
	// inside that window and would otherwise wait for a load gets the
	// previous value at once (counted as [EventStale]; FetchInfo's
	// Served.Stale tells it) while exactly one load runs fleet-wide, in
	// the background for the reader that started it, bounded by
	// LoadTimeout, filling both tiers through the lease and
	// compare-and-set as usual. Past the window the rules are strict
	// again. No L1 keeps a stale value: every node, the invalidating one
	// included, drops its L1 entry as in a strict group and finds the
	// stale envelope in Redis (one round trip). A load that began before
	// an invalidation still never installs its result, and is never
	// served as stale. Tags, Clear and a cached "not found" stay strict;
	// Set needs no window (it writes the new value). It needs Redis;
	// without it the group is strict. Default: 0, strict: every read
	// after an invalidation waits for a load.
	MaxStale time.Duration
}

// DefaultFailSafeThrottle is the default of GroupOptions.FailSafeThrottle.
const DefaultFailSafeThrottle = 5 * time.Second

// Group is a typed view of a [Cache]: the values of one kind under one key
// prefix, like the decorator's key_prefix. The value of id in the group
// named name is kept under the key name+":"+id (the name with every ":" and
// "%" percent-encoded, so that no two (name, id) pairs share a key; the id
// is kept as it is). A Group is safe for concurrent use.
//
// Values served from L1 are shared by every caller that reads them: treat
// them as read-only.
type Group[V any] struct {
	l1     *local.Cache[any] // the cache's, kept here so that a hit follows one pointer less
	rec    Recorder          // the cache's
	c      *Cache
	name   string
	prefix string // the encoded name and ":"
	pfx    local.Prefix
	ttl    time.Duration
	negTTL time.Duration                     // 0: no negative caching
	ttlOf  func(string, any) time.Duration   // GroupOptions.TTLOf; nil: every value lives ttl
	negOf  func(string, error) time.Duration // GroupOptions.NegativeTTLOf; nil: every "not found" lives negTTL
	beta   float64                           // early refresh; 0: off
	codec  Codec
	tagFn  func(id string, v V) []string // nil: no tags
	fs     failSafe
	// maxStale is GroupOptions.MaxStale (0: strict); only the slow paths
	// read it.
	maxStale time.Duration
	st       counters
	loads    loadTime // how long this group's loads take, to pace lease waits
}

// NewGroup returns the group named name (the key prefix) of c. The name must
// be non-empty, valid UTF-8 (it labels the group's metrics and log lines)
// and not used by another group of c; on a closed c it is ErrClosed.
func NewGroup[V any](c *Cache, name string, opts GroupOptions) (*Group[V], error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("tiered: empty group name")
	}
	if !utf8.ValidString(name) {
		return nil, fmt.Errorf("tiered: group name %q is not valid UTF-8", name)
	}
	if opts.TTL < 0 || opts.NegativeTTL < 0 || opts.MaxStale < 0 {
		return nil, fmt.Errorf("tiered: group %q: negative TTL %v, NegativeTTL %v or MaxStale %v", name, opts.TTL, opts.NegativeTTL, opts.MaxStale)
	}
	if opts.TTL > MaxTTL || opts.NegativeTTL > MaxTTL || opts.MaxStale > MaxTTL {
		return nil, fmt.Errorf("tiered: group %q: TTL %v, NegativeTTL %v or MaxStale %v is longer than MaxTTL (%v)", name, opts.TTL, opts.NegativeTTL, opts.MaxStale, MaxTTL)
	}
	fs, err := newFailSafe(opts)
	if err != nil {
		return nil, fmt.Errorf("tiered: group %q: %w", name, err)
	}
	beta := c.opts.EarlyRefreshBeta
	switch {
	case opts.EarlyRefreshBeta < 0:
		beta = 0
	case opts.EarlyRefreshBeta > 0:
		if err := checkBeta(opts.EarlyRefreshBeta); err != nil {
			return nil, fmt.Errorf("tiered: group %q: %w", name, err)
		}
		beta = opts.EarlyRefreshBeta
	}
	tagFn, err := tagFunc[V](name, opts.Tags)
	if err != nil {
		return nil, err
	}
	if opts.TTL == 0 {
		opts.TTL = c.opts.TTL
	}
	if opts.Codec == nil {
		opts.Codec = JSON{}
	}
	g := &Group[V]{
		l1: c.l1, rec: c.rec, c: c, name: name, prefix: EncodeName(name) + ":", ttl: opts.TTL,
		negTTL: opts.NegativeTTL, beta: beta, codec: opts.Codec, tagFn: tagFn, ttlOf: opts.TTLOf, fs: fs,
		negOf: opts.NegativeTTLOf, maxStale: opts.MaxStale,
	}
	if c.store == nil {
		g.maxStale = 0 // the window lives in Redis
	}
	if c.l1 != nil {
		g.pfx = c.l1.Prefix(g.prefix)
	}
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	if _, dup := c.groups[name]; dup {
		return nil, fmt.Errorf("tiered: group %q already exists", name)
	}
	c.groups[name] = g
	if g.maxStale > 0 {
		c.addStaleGroup(g.prefix, g.maxStale)
	}
	g.noteLife(max(opts.TTL, opts.NegativeTTL))
	return g, nil
}

// EncodeName returns a group name as it appears in keys: "%" becomes "%25"
// and ":" becomes "%3A", so the first ":" of a key always ends the name.
func EncodeName(name string) string {
	if !strings.ContainsAny(name, "%:") {
		return name
	}
	return strings.NewReplacer("%", "%25", ":", "%3A").Replace(name)
}

// Name returns the group's name.
func (g *Group[V]) Name() string { return g.name }

// Key returns the key (within the namespace) that holds id: the encoded name,
// ":", then id. Patterns match against it.
func (g *Group[V]) Key(id string) string { return g.prefix + id }

// Stats returns the group's counters.
func (g *Group[V]) Stats() Stats { return g.st.snapshot() }

func (g *Group[V]) statsSnapshot() Stats { return g.st.snapshot() }

var (
	errEmptyID   = errors.New("tiered: empty id")
	errNilLoader = errors.New("tiered: nil loader")
)

// Fetch returns the value of id: from L1, else from Redis, else from load,
// whose result is then kept in both tiers. Concurrent Fetches of one id in
// this process share one load; a caller whose ctx ends returns ctx.Err() at
// once while the load goes on for the others. A loader error is returned to
// every caller sharing the load and is not cached; a loader panic reaches
// every caller sharing the load as a panic with a *[PanicError].
//
// A load that began before an invalidation of id (an Invalidate, a Set, an
// InvalidateTags of one of its tags, a Clear) never installs its result,
// in either tier; its callers still receive it. When
// Redis fails, Fetch serves from the loader and returns no error for it
// (unless [Options.FailClosed]).
//
// When another node is loading id, Fetch waits for its value (see
// [Options.LeaseWait]) rather than load it too. A loader that returns an
// error wrapping [ErrNotFound] says that id does not exist: Fetch returns
// that error, and with the group's NegativeTTL the answer is cached (a
// later Fetch returns ErrNotFound without calling the loader). With early
// refresh on, a hit past the value's refresh deadline returns the value at
// once and reloads it in the background.
//
// An L1 hit reads no wall clock, decodes nothing and allocates nothing of
// its own (Ristretto's access buffer, a few bytes a hit amortized),
// provided load itself is not a closure allocated per call.
func (g *Group[V]) Fetch(ctx context.Context, id string, load LoaderFunc[V]) (V, error) {
	if l1 := g.l1; l1 != nil {
		if e, ok := l1.LookupPrefix(g.pfx, id); ok {
			g.l1Hit()
			if e.Refresh != 0 || e.Absent {
				return g.hitSpecial(ctx, e, id, load)
			}
			v, _ := e.Value.(V)
			return v, nil
		}
	}
	return g.fetchSlow(ctx, id, load)
}

// hitSpecial ends an L1 hit on an entry cached as absent or with an early
// refresh deadline.
func (g *Group[V]) hitSpecial(ctx context.Context, e *local.Entry[any], id string, load LoaderFunc[V]) (V, error) {
	v, _ := e.Value.(V)
	if e.Absent {
		return v, ErrNotFound
	}
	if load != nil && e.Refresh <= g.c.l1.Now() && e.ClaimRefresh() {
		g.startRefresh(ctx, g.prefix+id, e.Version, load)
	}
	return v, nil
}

func (g *Group[V]) l1Hit() {
	g.st.l1Hits.inc()
	if r := g.rec; r != nil {
		r.Record(Event{Kind: EventHit, Group: g.name, Tier: TierL1})
	}
}

func (g *Group[V]) record(e Event) {
	e.Group = g.name
	g.st.record(g.c.rec, e)
}

func (g *Group[V]) fetchSlow(ctx context.Context, id string, load LoaderFunc[V]) (V, error) {
	v, _, err := g.fetchSlowInfo(ctx, id, load)
	return v, err
}

func (g *Group[V]) fetchSlowInfo(ctx context.Context, id string, load LoaderFunc[V]) (V, Served, error) {
	var zero V
	if id == "" {
		return zero, Served{}, errEmptyID
	}
	if load == nil {
		return zero, Served{}, errNilLoader
	}
	if g.c.l1 != nil {
		g.record(Event{Kind: EventMiss, Tier: TierL1})
	}
	key := g.prefix + id
	fl, joined, err := g.c.flights.join(key)
	if err != nil {
		return zero, Served{}, err
	}
	if joined {
		g.record(Event{Kind: EventCollapsed})
	} else if v, s, err, done := g.leadL2Read(ctx, key, fl, load); done {
		return v, s, err
	}
	v, err := g.c.flights.wait(ctx, fl)
	if err != nil {
		return zero, Served{}, err
	}
	switch v := v.(type) {
	case fallback[V]:
		return v.v, Served{Fallback: true}, nil
	case staleValue[V]:
		return v.v, Served{Stale: true}, nil
	}
	r, _ := v.(V)
	return r, Served{}, nil
}

// Get returns the value of id from L1 or Redis, without loading it. It
// tells the two kinds of absence apart: an id cached as not existing
// (negative caching, see GroupOptions.NegativeTTL) is [ErrNotFound]; an id
// in no tier is [ErrNotCached]. A Redis failure is returned as an error.
func (g *Group[V]) Get(ctx context.Context, id string) (V, error) {
	var zero V
	if g.c.l1 != nil {
		if e, ok := g.c.l1.LookupPrefix(g.pfx, id); ok {
			g.l1Hit()
			if e.Absent {
				return zero, ErrNotFound
			}
			v, _ := e.Value.(V)
			return v, nil
		}
		g.record(Event{Kind: EventMiss, Tier: TierL1})
	}
	if err := g.c.checkOpen(); err != nil {
		return zero, err
	}
	if id == "" {
		return zero, errEmptyID
	}
	if g.c.store == nil {
		return zero, ErrNotCached
	}
	key := g.prefix + id
	tok := g.c.begin()
	rec, err := g.c.store.Get(ctx, key)
	if err != nil {
		g.record(Event{Kind: EventRedisError, Err: err})
		return zero, fmt.Errorf("tiered: get %q: %w", key, err)
	}
	switch v, st := g.fromRecord(ctx, key, rec, tok, nil); st {
	case foundValue:
		return v, nil
	case foundAbsent:
		return zero, ErrNotFound
	}
	return zero, ErrNotCached
}

func (c *Cache) checkOpen() error {
	if c.closing.Err() != nil {
		return ErrClosed
	}
	return nil
}

// begin records the invalidation state before a load reads Redis.
func (c *Cache) begin() local.Token {
	if c.l1 == nil {
		return local.Token{}
	}
	return c.l1.Begin()
}

// l1Item is the L1 entry of a value of encoded size n that expires in Redis
// at l2Expire (unix ms).
func (c *Cache) l1Item(v any, n int, l2Expire int64) local.Item[any] {
	if c.store == nil {
		return local.Item[any]{Value: v, Cost: cost(v, n), Expire: l2Expire*int64(time.Millisecond) - c.tick}
	}
	return local.Item[any]{Value: v, Cost: cost(v, n), Expire: c.l1Expiry(l2Expire, false)}
}

// cost is the L1 cost of the decoded value v of encoded size n: the heap
// bytes it holds outside its entry (see [Options.L1MaxBytes]); L1 adds the
// key, the entry and the index's share.
func cost(v any, n int) int64 { return max(memsize.Value(v, n), 1) }
