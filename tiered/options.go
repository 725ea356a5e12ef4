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

	// L1MaxBytes bounds the L1 by the encoded size of its values.
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
	// DegradedL1TTL is how long an entry loaded while Redis was failing
	// stays in L1: short, so that a value no invalidation can reach is not
	// kept, yet long enough to shield the database during an outage.
	// Default: 1s.
	DegradedL1TTL time.Duration
	// DisableDegradedL1 keeps nothing in L1 that was loaded while Redis was
	// failing.
	DisableDegradedL1 bool

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

	// InvalidateReplicas, when positive, makes every invalidation and every
	// Set wait until that many replicas of each master it wrote to have
	// acknowledged the write (WAIT, on the connection that wrote), and fail
	// otherwise: Invalidate, InvalidatePattern, Delete and Set then return
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

	// Logger receives errors that reads absorb (a failing Redis, a value
	// that does not decode, a loader panic no caller was left to receive).
	// Nothing is logged per hit. Default: discard.
	Logger *slog.Logger
	// Recorder receives every cache event (see [Event]). It is called on
	// the hit path, so it must be cheap and safe for concurrent use.
	// Default: none.
	Recorder Recorder

	// clock replaces the L1's ticking clock; tests set it.
	clock local.Clock
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
	return o, nil
}

// defaultDuration rejects a negative *p and replaces a zero one with def.
func defaultDuration(name string, p *time.Duration, def time.Duration) error {
	if *p < 0 {
		return fmt.Errorf("tiered: negative %s %v", name, *p)
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
