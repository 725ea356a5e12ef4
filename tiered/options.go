package tiered

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/local"
	"github.com/tiercache/tiercache/remote"
)

// Defaults of [Options] and [GroupOptions].
const (
	DefaultNamespace     = remote.DefaultNamespace
	DefaultL1MaxBytes    = 64 << 20
	DefaultTTL           = 10 * time.Minute
	DefaultL1TTL         = time.Minute
	DefaultJitter        = 0.1
	DefaultLoadTimeout   = 5 * time.Second
	DefaultRedisTimeout  = remote.DefaultTimeout
	DefaultDegradedL1TTL = time.Second
	DefaultHeartbeat     = time.Second
)

// MinLeaseTTL is the shortest Options.LeaseTTL: Redis keeps TTLs in whole
// milliseconds, and a lease is renewed every LeaseTTL/3.
const MinLeaseTTL = 10 * time.Millisecond

// MaxTTL is the longest duration that any field of [Options] or
// [GroupOptions] accepts, and the longest TTL an answer of
// GroupOptions.TTLOf or NegativeTTLOf gives (a longer answer counts as
// MaxTTL). Expiries
// are kept as nanoseconds since 1970 in an int64: a longer TTL would wrap
// around, and the value would be written already expired.
const MaxTTL = 100 * 365 * 24 * time.Hour

// Defaults of the Redis circuit breaker fields of [Options].
const (
	DefaultBreakerFailures = remote.DefaultBreakerFailures
	DefaultBreakerCooldown = remote.DefaultBreakerCooldown
)

// Options configures a [Cache]. The zero value of every field is its
// documented default; [New] copies the struct, so changing it afterwards has
// no effect.
type Options struct {
	// Redis is the shared L2. Any go-redis UniversalClient works: a Client, a
	// ClusterClient, a failover client. The Cache does not own it: Close
	// does not close it. Default: nil, an L1-only cache for one process.
	//
	// Configure the client with ContextTimeoutEnabled: without it go-redis
	// does not apply context deadlines to sockets, so RedisTimeout cannot
	// bound a call to a hung server ([New] logs a warning).
	Redis redis.UniversalClient

	// Namespace prefixes every Redis key ("Namespace:group:id"), so that
	// several applications can share one Redis. 1 to 64 bytes of
	// [A-Za-z0-9_.-]. Default: "tiercache".
	Namespace string

	// L1MaxBytes bounds the L1's share of the Go heap, in bytes. Each
	// entry is charged what it holds: its decoded value (a string or a
	// []byte exactly, with its header; another value by its shallow size
	// plus its encoded length, an estimate that is low for maps and
	// pointer-heavy values), its key, and the entry with its measured
	// share of the index and of Ristretto's bookkeeping (336 bytes; see
	// local.Cache.EntryBytes). The structures the L1 allocates up front
	// (Ristretto's admission counters, an eighth to a quarter of
	// L1MaxBytes, and 0.4 MiB of buffers and stripes) are taken off it
	// first, but never more than half of it: below 1.2 to 1.5 MiB the L1
	// takes more. Measured with values of 16 B to 64 KiB, the L1's heap
	// came within 3% of L1MaxBytes (BenchmarkL1Memory, docs/performance.md, L1 memory).
	// Default: 64 MiB.
	L1MaxBytes int64
	// DisableL1 turns the in-process tier off: every read goes to Redis
	// (which must then be set).
	DisableL1 bool

	// TTL is the time to live of a group that sets none. Default: 10m.
	TTL time.Duration
	// L1TTL caps how long an entry lives in L1, whatever the group's TTL,
	// as a last line against a missed invalidation. It applies only with
	// Redis set (without Redis the L1 is the only tier and entries live for
	// their group's TTL). Default: 1m.
	L1TTL time.Duration
	// Jitter is the fraction of every TTL written (L1, L2) that is drawn at
	// random: a TTL is drawn uniformly from [TTL*(1-Jitter), TTL], so keys
	// written together do not expire together, and no key outlives its
	// configured TTL. It must be in [0, 1). Default: 0.1.
	Jitter float64
	// DisableJitter writes every TTL exactly as configured.
	DisableJitter bool

	// LoadTimeout bounds one loader call; the loader's ctx carries it. A
	// lease in Redis lives LoadTimeout+RedisTimeout, so a node that dies
	// while loading blocks no key for longer. Default: 5s.
	LoadTimeout time.Duration
	// RedisTimeout bounds every Redis call. Default: 250ms.
	RedisTimeout time.Duration
	// FailClosed makes reads return Redis errors instead of absorbing them.
	// By default a read whose Redis call fails (or times out) is served
	// from L1 or the loader and returns no error (fail-open: the error goes
	// to the Logger and the Recorder). With FailClosed, Fetch and
	// FetchMany return it, wrapped, and load nothing: a failure of any
	// Redis call before the loader runs (the read, the lease, the wait for
	// another node's lease) ends the load. Once the loader has run, its
	// value is returned even if writing it to Redis fails.
	FailClosed bool

	// LeaseTTL is how long a lease lives in Redis before it is renewed: a
	// node that dies while loading holds the key for at most this long. A
	// load that runs longer renews its lease every LeaseTTL/3
	// (compare-and-PEXPIRE); a renewal that finds the lease gone counts as
	// a lost lease (Stats.LeasesLost) and the load's result is not cached.
	// Default: LoadTimeout+RedisTimeout, so a load within LoadTimeout
	// never needs a renewal. At least MinLeaseTTL.
	LeaseTTL time.Duration
	// LeaseWait bounds how long a miss that finds another node's lease
	// waits for that node's value (polling Redis with jittered backoff)
	// before it loads the value itself without caching it. When the lease
	// disappears without a value (its holder failed or died), the waiter
	// takes the lease once more and loads as its holder. Default: LeaseTTL,
	// so that a dead holder costs the others one lease expiry and one load,
	// not one load each.
	LeaseWait time.Duration
	// DisableLeaseWait makes a miss that finds another node's lease load at
	// once without caching (the fleet then calls the loader up to once per
	// node per key instead of once).
	DisableLeaseWait bool

	// EarlyRefreshBeta turns on early refresh (XFetch, Vattani et al.,
	// VLDB 2015) for groups that set no beta of their own: each value gets
	// a refresh deadline expiry + loadTime*beta*ln(U), U uniform in (0, 1],
	// drawn when it is cached; the first read past it returns the cached
	// value at once and starts one background reload per key across the
	// fleet. 1 is the paper's choice; larger refreshes earlier. Default: 0,
	// off.
	EarlyRefreshBeta float64
	// DegradedL1TTL is how long an entry loaded while Redis was failing
	// stays in L1: short, so that a value no invalidation can reach is not
	// kept, yet long enough to shield the database during an outage.
	// Default: 1s.
	DegradedL1TTL time.Duration
	// DisableDegradedL1 keeps nothing in L1 that was loaded while Redis was
	// failing.
	DisableDegradedL1 bool
	// TagClockSkew is how far apart the clocks of the Redis servers may be:
	// an entry counts as invalidated by a tag when the tag's stamp plus
	// TagClockSkew is at or after the time its load began (see
	// [Cache.InvalidateTags]). On one server (or a failover pair) there is
	// one clock and 0 is exact; on a Redis Cluster a tag's stamp comes from
	// the clock of the tag's master and a load's start from the clock of
	// its key's master, so a load that began less than the masters' skew
	// before an invalidation could escape it: set this to the bound on that
	// skew (a few milliseconds under NTP). Default: 0.
	TagClockSkew time.Duration

	// BreakerFailures is how many consecutive failed calls to one Redis
	// endpoint (a server; each master of a cluster) open its circuit
	// breaker: for BreakerCooldown, calls that need the endpoint fail at
	// once without touching the network (reads are served from L1 or the
	// loader; writes and invalidations return an error wrapping
	// remote.ErrBreakerOpen and invalidations are retried), then one call
	// probes it and closes the breaker if it succeeds. Network errors,
	// timeouts and a server that cannot serve (LOADING, MASTERDOWN,
	// CLUSTERDOWN...) count; misses and the caller's own cancellation do
	// not. Opens and closes are counted (EventBreakerOpen,
	// EventBreakerClose) and logged. Default: 5.
	BreakerFailures int
	// BreakerCooldown is how long an open breaker refuses calls before it
	// lets a probe through. Default: 1s.
	BreakerCooldown time.Duration
	// DisableBreaker turns the breakers off: every call goes to Redis and
	// waits for its own failure (up to RedisTimeout).
	DisableBreaker bool

	// DisableBus turns the invalidation bus off: other processes' L1 then
	// keep serving an invalidated value for up to L1TTL. Only for a
	// single process that shares its Redis with no other cache process.
	DisableBus bool
	// Heartbeat is how often a node tells the others its last message
	// number over the bus; a lost subscription is detected within three
	// heartbeats at worst (at once on a connection error). Default: 1s.
	Heartbeat time.Duration
	// ShardedPubSub carries the bus over sharded pub/sub (SSUBSCRIBE and
	// SPUBLISH, Redis 7.0+): on a Redis Cluster its messages stay within
	// the shard that owns the channel's slot instead of being broadcast to
	// every node, but a failover of that shard or a move of its slot ends
	// every subscription, so every node flushes its L1 (the bus counts the
	// server's SUNSUBSCRIBE as a lost subscription). Default: false, plain
	// PUBLISH and SUBSCRIBE.
	ShardedPubSub bool
	// DisableWake turns wake notices off. With them (the default whenever
	// the bus is on and not sharded), a node that waits for another
	// node's load marks that node's lease, and the fill's script publishes
	// the key on the namespace's wake channel (WakeChannel) from inside
	// Redis: the waiter returns about one pub/sub delivery after the fill
	// instead of at its next poll. Polling stays, for notices that are
	// lost and for nodes of older releases. A Redis user restricted by an
	// ACL needs PUBLISH on the wake channel as on the bus's ("&NS:tiercache:*"
	// covers both). Default: false.
	DisableWake bool

	// InvalidateReplicas, when positive, makes every invalidation and every
	// Set wait until that many replicas of each master it wrote to have
	// acknowledged the write (WAIT, on the connection that wrote), and fail
	// otherwise: Invalidate, InvalidatePattern and Set then return
	// nil only for a write that a failover to one of those replicas keeps,
	// and a write left unconfirmed is retried in the background like any
	// failed invalidation. Without it, Redis replicates asynchronously and
	// a failover can undo an acknowledged invalidation, so the old value
	// comes back to every node until its TTL. It needs a *redis.Client (a
	// failover client included) or a *redis.ClusterClient. Default: 0, no
	// waiting.
	InvalidateReplicas int
	// InvalidateReplicasTimeout bounds each wait of InvalidateReplicas.
	// Default: RedisTimeout.
	InvalidateReplicasTimeout time.Duration

	// BusKey, if set, authenticates the bus's messages with HMAC-SHA256:
	// this node signs every message under BusKey[0] and applies only
	// messages signed under one of BusKey; any other message (unsigned,
	// badly signed, from a stranger who can publish on the channel) is
	// dropped unread and counted (Stats.BusRejected). To rotate a key
	// without a stop, roll the fleet to [old, new], then to [new, old],
	// then to [new]. Every node of a fleet must run a release that reads
	// signed messages (wire version 2) before any node gets a key. Each key
	// must be at least 16 bytes; use 32 random bytes. Default: none,
	// unsigned messages, and signed ones read without checking.
	BusKey [][]byte

	// Logger receives errors that reads absorb (a failing Redis, a value
	// that does not decode, a loader panic no caller was left to receive).
	// Nothing is logged per hit. Default: discard.
	Logger *slog.Logger
	// Recorder receives every cache event (see [Event]). It is called on
	// the hit path, so it must be cheap and safe for concurrent use.
	// Default: none.
	Recorder Recorder

	// clock replaces the L1's ticking clock, and the wall clock of the
	// expiries the cache computes; tests set it.
	clock local.Clock
	// random replaces the uniform draw of early refresh; tests set it.
	random func() float64
	// patterns holds the test knobs of pattern application.
	patterns patternKnobs
}

// patternKnobs let tests watch pattern application and restore earlier
// behaviours, to show what the current ones prevent.
type patternKnobs struct {
	inline    bool                 // apply received patterns on the bus's goroutine, before later keys
	unbounded bool                 // no work budget
	budget    int64                // if set, the work budget in glob steps
	hook      func(pattern string) // called as each pattern's application begins
}

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if err := remote.ValidateNamespace(o.Namespace); err != nil {
		return o, fmt.Errorf("tiered: %w", err)
	}
	if o.DisableL1 && o.Redis == nil {
		return o, errors.New("tiered: DisableL1 with no Redis leaves no tier")
	}
	durs := []struct {
		name string
		p    *time.Duration
		def  time.Duration
	}{
		{"TTL", &o.TTL, DefaultTTL},
		{"L1TTL", &o.L1TTL, DefaultL1TTL},
		{"LoadTimeout", &o.LoadTimeout, DefaultLoadTimeout},
		{"RedisTimeout", &o.RedisTimeout, DefaultRedisTimeout},
		{"DegradedL1TTL", &o.DegradedL1TTL, DefaultDegradedL1TTL},
		{"Heartbeat", &o.Heartbeat, DefaultHeartbeat},
	}
	for _, d := range durs {
		if err := defaultDuration(d.name, d.p, d.def); err != nil {
			return o, err
		}
	}
	if o.InvalidateReplicas < 0 || o.InvalidateReplicasTimeout < 0 {
		return o, fmt.Errorf("tiered: negative InvalidateReplicas %d or InvalidateReplicasTimeout %v", o.InvalidateReplicas, o.InvalidateReplicasTimeout)
	}
	if o.TagClockSkew < 0 {
		return o, fmt.Errorf("tiered: negative TagClockSkew %v", o.TagClockSkew)
	}
	if o.LeaseTTL < 0 || o.LeaseWait < 0 {
		return o, fmt.Errorf("tiered: negative LeaseTTL %v or LeaseWait %v", o.LeaseTTL, o.LeaseWait)
	}
	if o.LeaseTTL > MaxTTL || o.LeaseWait > MaxTTL || o.TagClockSkew > MaxTTL || o.InvalidateReplicasTimeout > MaxTTL {
		return o, fmt.Errorf("tiered: LeaseTTL %v, LeaseWait %v, TagClockSkew %v or InvalidateReplicasTimeout %v is longer than MaxTTL (%v)",
			o.LeaseTTL, o.LeaseWait, o.TagClockSkew, o.InvalidateReplicasTimeout, MaxTTL)
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = o.LoadTimeout + o.RedisTimeout
	}
	if o.LeaseTTL < MinLeaseTTL {
		return o, fmt.Errorf("tiered: LeaseTTL %v is below the minimum of %v", o.LeaseTTL, MinLeaseTTL)
	}
	if o.LeaseWait == 0 {
		o.LeaseWait = o.LeaseTTL
	}
	if err := checkBeta(o.EarlyRefreshBeta); err != nil {
		return o, err
	}
	if o.L1MaxBytes < 0 {
		return o, fmt.Errorf("tiered: negative L1MaxBytes %d", o.L1MaxBytes)
	}
	if o.L1MaxBytes == 0 {
		o.L1MaxBytes = DefaultL1MaxBytes
	}
	if math.IsNaN(o.Jitter) || o.Jitter < 0 || o.Jitter >= 1 {
		return o, fmt.Errorf("tiered: Jitter %v not in [0, 1)", o.Jitter)
	}
	if o.Jitter == 0 {
		o.Jitter = DefaultJitter
	}
	if o.DisableJitter {
		o.Jitter = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := o.breakerDefaults(); err != nil {
		return o, err
	}
	return o, nil
}

// breakerDefaults validates the breaker fields of o and fills in their
// defaults.
func (o *Options) breakerDefaults() error {
	if o.BreakerFailures < 0 {
		return fmt.Errorf("tiered: negative BreakerFailures %d", o.BreakerFailures)
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = DefaultBreakerFailures
	}
	return defaultDuration("BreakerCooldown", &o.BreakerCooldown, DefaultBreakerCooldown)
}

// checkBeta rejects an early-refresh beta that is negative or not a number.
func checkBeta(b float64) error {
	if math.IsNaN(b) || math.IsInf(b, 0) || b < 0 {
		return fmt.Errorf("tiered: EarlyRefreshBeta %v: want a finite number >= 0", b)
	}
	return nil
}

// defaultDuration rejects a negative *p or one longer than MaxTTL, and
// replaces a zero one with def.
func defaultDuration(name string, p *time.Duration, def time.Duration) error {
	if *p < 0 {
		return fmt.Errorf("tiered: negative %s %v", name, *p)
	}
	if *p > MaxTTL {
		return fmt.Errorf("tiered: %s %v is longer than MaxTTL (%v)", name, *p, MaxTTL)
	}
	if *p == 0 {
		*p = def
	}
	return nil
}

// contextTimeouts reports whether rdb applies context deadlines to its
// sockets, and whether it could tell.
func contextTimeouts(rdb redis.UniversalClient) (enabled, known bool) {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled, true
	}
	return false, false
}
