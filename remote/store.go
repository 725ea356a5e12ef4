package remote

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by every call on a closed [Store].
var ErrClosed = errors.New("remote: store closed")

// Options configures a [Store]. The zero value of every field is its
// documented default.
type Options struct {
	// Namespace prefixes every key: key k is stored as "Namespace:k". It must
	// be 1 to 64 bytes of [A-Za-z0-9_.-]. Default: "tiercache".
	Namespace string
	// Timeout bounds every Redis call (it is applied with
	// context.WithTimeout; go-redis honours it on sockets only with
	// ContextTimeoutEnabled). Default: 250ms.
	Timeout time.Duration

	// BreakerFailures is how many consecutive failed calls to one Redis
	// endpoint open its circuit breaker. While a breaker is open, calls that
	// need its endpoint fail at once with an error wrapping ErrBreakerOpen,
	// without touching the network; after BreakerCooldown one call goes
	// through as a probe: its success closes the breaker, its failure opens
	// it for another cool-down. A failure is a network error, a timeout
	// (Timeout included), or a server that cannot serve (LOADING, BUSY,
	// MASTERDOWN, CLUSTERDOWN, max clients); not a miss, not another reply
	// error (NOSCRIPT, WRONGTYPE...), and not the end of the caller's own
	// ctx. See [Store] for what an endpoint is. Default: 5.
	BreakerFailures int
	// BreakerCooldown is how long an open breaker refuses calls before it
	// lets a probe through. Default: 1s.
	BreakerCooldown time.Duration
	// DisableBreaker turns the circuit breakers off: every call goes to
	// Redis and waits for its own failure.
	DisableBreaker bool
	// OnBreaker, if set, is called when the breaker of endpoint opens (open
	// true; err is the failure that opened it) and when it closes after a
	// successful probe (open false, err nil); not when a failed probe opens
	// it again. Calls for one endpoint come in the order of the changes,
	// synchronously from the call that caused the change, with that
	// breaker's changes held back until it returns: it must be quick and
	// must not wait for calls to the Store. Default: nil.
	OnBreaker func(endpoint string, open bool, err error)
	// WaitReplicas, when positive, makes Set, Unlink and DeletePattern wait
	// until that many replicas of every master they wrote to have
	// acknowledged the writes (WAIT, sent on the connection that wrote), and
	// return an error wrapping [ErrNotReplicated] when fewer do within
	// WaitTimeout. Redis replicates asynchronously: without it, a failover
	// can lose a write that was acknowledged. It needs a *redis.Client
	// (a failover client included) or a *redis.ClusterClient. Default: 0,
	// no waiting.
	WaitReplicas int
	// WaitTimeout bounds each WAIT; every call that waits may take Timeout
	// plus WaitTimeout. Default: Timeout.
	WaitTimeout time.Duration
	// Wake, if set, is the pub/sub channel of wake notices: the scripts
	// of [Store.Fill], [Store.FillHandOff], [Store.FillStamped],
	// [Store.Release] and [Store.ReleaseMany] publish there, from inside
	// Redis, the key (with its namespace) of a lease that a node marked as
	// waited for ([Store.MarkWaiting]) when they fill or release it, and
	// of every lease a fill finds gone. A fill whose lease nobody waits
	// for publishes nothing and costs no more. It must not be a sharded
	// channel (a script cannot SPUBLISH to another slot), and the Redis
	// user must be allowed to PUBLISH there (a refused PUBLISH fails the
	// script); [Store.SetWake] sets it later, once that is known. Default:
	// none; waiting nodes learn of fills by polling.
	Wake string
}

// DefaultNamespace is the namespace of a [Store] whose Options leave it empty.
const DefaultNamespace = "tiercache"

// DefaultTimeout is the per-call timeout of a [Store] whose Options leave it
// zero.
const DefaultTimeout = 250 * time.Millisecond

// Store reads and writes envelopes in one namespace of a Redis deployment. It
// is safe for concurrent use. It does not own the client: Close does not
// close it, and it installs no hook on it.
//
// Every call goes through the circuit breaker of the Redis endpoint it
// needs (see [Options.BreakerFailures]). A *redis.Client is one endpoint,
// named by its Options().Addr ("FailoverClient" for a failover client). A
// *redis.ClusterClient has one endpoint per master, named by the address
// go-redis gives the master's node: a single-key call is guarded by the
// breaker of the master that the client's MasterForKey names for the key
// (by one cluster-wide breaker, named "cluster", when the cluster's layout
// cannot be loaded); a pipeline over keys of several masters needs every
// one of their breakers to admit it, or fails whole without touching any,
// and each master is charged with the outcome of its own keys' commands
// only; [Store.DeletePattern] scans each master under that master's
// breaker. Any other client is one endpoint, named by its type.
type Store struct {
	rdb          redis.UniversalClient
	prefix       string // Namespace + ":"
	timeout      time.Duration
	brk          *breakers // nil with DisableBreaker
	waitReplicas int
	waitTimeout  time.Duration       // 0 without waitReplicas
	noSetGet     atomic.Bool         // the server rejects SET NX GET (Redis < 7.0): take leases with a script
	wake         atomic.Pointer[any] // the wake channel, boxed once ("" for none)

	// skipWait leaves WAIT out while keeping WaitReplicas' per-master
	// writes. Tests set it to show that they catch a write reported
	// replicated that is not; nothing else may.
	skipWait bool
	// keepAbandoned leaves the leases of a failed AcquireMany in place,
	// as they were before abandon; tests set it to show that they catch
	// it.
	keepAbandoned bool
}

// New returns a Store on rdb. It does no I/O.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("remote: nil redis client")
	}
	ns := opts.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("remote: negative timeout %v", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	s := &Store{rdb: rdb, prefix: ns + ":", timeout: opts.Timeout}
	s.SetWake(opts.Wake)
	if err := s.setBreakers(opts); err != nil {
		return nil, err
	}
	if err := s.setWait(opts); err != nil {
		return nil, err
	}
	return s, nil
}

// setWait validates and applies WaitReplicas and WaitTimeout.
func (s *Store) setWait(opts Options) error {
	if opts.WaitReplicas < 0 || opts.WaitTimeout < 0 {
		return fmt.Errorf("remote: negative WaitReplicas %d or WaitTimeout %v", opts.WaitReplicas, opts.WaitTimeout)
	}
	if opts.WaitReplicas == 0 {
		return nil
	}
	switch s.rdb.(type) {
	case *redis.Client, *redis.ClusterClient:
	default:
		return fmt.Errorf("remote: WaitReplicas needs a *redis.Client or a *redis.ClusterClient, not %T", s.rdb)
	}
	s.waitReplicas = opts.WaitReplicas
	s.waitTimeout = opts.WaitTimeout
	if s.waitTimeout == 0 {
		s.waitTimeout = s.timeout
	}
	// WAIT takes whole milliseconds, and 0 would block for ever.
	s.waitTimeout = pxDuration(s.waitTimeout)
	return nil
}

// ValidateNamespace reports whether ns can be a namespace: 1 to 64 bytes of
// [A-Za-z0-9_.-], so that it holds no glob metacharacter and no separator.
func ValidateNamespace(ns string) error {
	if len(ns) == 0 || len(ns) > 64 {
		return fmt.Errorf("remote: namespace %q must be 1 to 64 bytes", ns)
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-'
		if !ok {
			return fmt.Errorf("remote: namespace %q: byte %q not in [A-Za-z0-9_.-]", ns, c)
		}
	}
	return nil
}

// Prefix returns "Namespace:", the prefix of every Redis key of the store.
func (s *Store) Prefix() string { return s.prefix }

// Client returns the client the store uses.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// RedisKey returns the Redis key that holds key.
func (s *Store) RedisKey(key string) string { return s.prefix + key }

// localKey returns the key held in Redis key rkey, and false when rkey is
// not in the namespace.
func (s *Store) localKey(rkey string) (string, bool) {
	return strings.CutPrefix(rkey, s.prefix)
}

// NewToken returns a random non-zero write token.
func NewToken() uint64 {
	for {
		if t := rand.Uint64(); t != 0 {
			return t
		}
	}
}

// ctx bounds one call by the store's Timeout; its cause tells the store's
// own deadline from the caller's (see classify).
func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.timeout, errStoreTimeout)
}

// Get reads key. A missing key is a Record of KindMiss and a nil error; the
// error is non-nil only when Redis could not be asked or answered with an
// error.
func (s *Store) Get(ctx context.Context, key string) (Record, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.enter(ctx, s.prefix+key)
	if err != nil {
		return Record{}, fmt.Errorf("remote: get: %w", err)
	}
	raw, err := s.rdb.Get(ctx, s.prefix+key).Bytes()
	g.exit(ctx, err)
	if err == redis.Nil {
		return Record{}, nil
	}
	if err != nil {
		return Record{}, s.fail("get", err)
	}
	return decode(raw), nil
}

// GetMany reads keys with one pipeline of single-key GETs (on a cluster,
// go-redis sends each node its own part; no multi-key command crosses
// slots). The records are in the order of keys.
func (s *Store) GetMany(ctx context.Context, keys []string) ([]Record, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("remote: get many: %w", err)
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.prefix+k)
		}
		return nil
	})
	g.exitEach(ctx, err, len(keys), func(i int) error { return cmds[i].Err() })
	if err != nil && err != redis.Nil {
		return nil, s.fail("get many", err)
	}
	recs := make([]Record, len(keys))
	for i, c := range cmds {
		raw, err := c.Bytes()
		switch {
		case err == redis.Nil:
		case err != nil:
			return nil, s.fail("get many", err)
		default:
			recs[i] = decode(raw)
		}
	}
	return recs, nil
}

// Set writes rec under key with a TTL of ttl (rounded down to whole
// milliseconds, at least 1ms), in one SET ... PX. It overwrites whatever the
// key held, a lease included: a load in flight then fails its [Store.Fill].
// With WaitReplicas, it then waits for the replicas (see [Options]).
func (s *Store) Set(ctx context.Context, key string, rec Record, ttl time.Duration) error {
	raw, px := encode(rec), pxDuration(ttl)
	err := s.guardedWrite(ctx, []string{key}, func(ctx context.Context, p redis.Pipeliner, rkey string) redis.Cmder {
		return p.Set(ctx, rkey, raw, px)
	})
	if err != nil {
		return s.fail("set", err)
	}
	return nil
}

// Unlink removes keys (leases included) with pipelined single-key UNLINKs:
// none crosses cluster slots. With WaitReplicas, it then waits for the
// replicas of every master it wrote to (see [Options]).
func (s *Store) Unlink(ctx context.Context, keys ...string) error {
	if err := s.guardedWrite(ctx, keys, addUnlink); err != nil {
		return s.fail("unlink", err)
	}
	return nil
}

func addUnlink(ctx context.Context, p redis.Pipeliner, rkey string) redis.Cmder {
	return p.Unlink(ctx, rkey)
}

// Pipelines reports whether [Store.UnlinkIn] can add to another caller's
// pipeline on c: c is the store's own client, a single server's, and the
// store does not wait for replicas (a WAIT would have to come between the
// UNLINKs and what follows them).
func (s *Store) Pipelines(c redis.UniversalClient) bool {
	_, one := s.rdb.(*redis.Client)
	return one && c == s.rdb && s.waitReplicas == 0
}

// UnlinkIn is [Store.Unlink] as commands in p, a pipeline of another
// caller's on the store's client (the bus's, which publishes the
// invalidation after them in the same round trip; see Pipelines). Behind
// the breaker, it adds one UNLINK per key and returns the function to call
// once p ran, while ctx (p's) is still live: it returns their outcome as
// Unlink would and charges it to the breaker (ctx's deadline passed: a
// failure of Redis's; ctx cancelled: neither). When the breaker refuses,
// nothing is added and the function returns the refusal.
func (s *Store) UnlinkIn(ctx context.Context, p redis.Pipeliner, keys []string) func() error {
	return s.writeIn(ctx, p, keys, "unlink", func(ctx context.Context, p redis.Pipeliner, _ int, rkey string) redis.Cmder {
		return p.Unlink(ctx, rkey)
	})
}

// writeIn is UnlinkIn's body for any single-key write add makes (given
// the key's index and its Redis key): the commands go in p, behind one
// entry of the breaker, and the function it returns, called once p ran and
// while ctx is live, returns their outcome (op names them in the error) and
// charges it to the breaker.
func (s *Store) writeIn(ctx context.Context, p redis.Pipeliner, keys []string, op string, add func(context.Context, redis.Pipeliner, int, string) redis.Cmder) func() error {
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return func() error { return s.fail(op, err) }
	}
	cmds := make([]redis.Cmder, len(keys))
	for i, k := range keys {
		cmds[i] = add(ctx, p, i, s.prefix+k)
	}
	return func() error {
		var err error
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
		cctx := ctx
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			cctx = context.Background() // Redis did not answer in time: classify the error alone
		}
		g.exit(cctx, err)
		if err != nil {
			return s.fail(op, err)
		}
		return nil
	}
}

// guardedWrite is write behind the breakers of the endpoints of keys: it is
// refused when one of them is open, and each endpoint is charged with the
// outcome of its own keys' writes only (as GetMany does), so that a master
// that fails does not open the breaker of a master that answered.
func (s *Store) guardedWrite(ctx context.Context, keys []string, add adder) error {
	if len(keys) == 0 {
		return nil
	}
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return err
	}
	keyErrs, err := s.write(ctx, keys, add)
	g.exitEach(ctx, err, len(keys), func(i int) error { return keyErrs[i] })
	return err
}

// Discard removes key only while it still holds exactly rec.Raw (a
// compare-and-delete): a corrupt value goes, a newer value stays. It reports
// whether it removed the key.
func (s *Store) Discard(ctx context.Context, key string, rec Record) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.enter(ctx, s.prefix+key)
	if err != nil {
		return false, fmt.Errorf("remote: discard: %w", err)
	}
	n, err := discardScript.Run(ctx, s.rdb, []string{s.prefix + key}, rec.Raw).Int()
	g.exit(ctx, err)
	if err != nil {
		return false, s.fail("discard", err)
	}
	return n == 1, nil
}

// pxDuration rounds d down to whole milliseconds, at least 1ms (go-redis
// sends PX for a duration that is a whole number of milliseconds).
func pxDuration(d time.Duration) time.Duration {
	d = d.Truncate(time.Millisecond)
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}

// fail returns err as the error of operation op, and makes a cluster
// client reload the cluster's layout in the background. go-redis follows
// a MOVED by itself, but after a master dies it keeps sending that
// master's slots to the dead address until its next reload (every 60s by
// default); a failed call is the sign to look again. go-redis runs at most
// one reload at a time.
func (s *Store) fail(op string, err error) error {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
	return fmt.Errorf("remote: %s: %w", op, err)
}

// GetManyLifetimes is GetMany that also returns how long each of the
// first n keys has left to live (PTTL, in the same pipeline): -1 (1ns
// negative) for a key without a TTL, -2 for a missing key, as Redis
// answers.
func (s *Store) GetManyLifetimes(ctx context.Context, keys []string, n int) ([]Record, []time.Duration, error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("remote: get many: %w", err)
	}
	cmds := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, n)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.prefix+k)
			if i < n {
				ttls[i] = p.PTTL(ctx, s.prefix+k)
			}
		}
		return nil
	})
	g.exitEach(ctx, err, len(keys), func(i int) error { return cmds[i].Err() })
	if err != nil && err != redis.Nil {
		return nil, nil, s.fail("get many", err)
	}
	recs := make([]Record, len(keys))
	for i, c := range cmds {
		raw, err := c.Bytes()
		switch {
		case err == redis.Nil:
		case err != nil:
			return nil, nil, s.fail("get many", err)
		default:
			recs[i] = decode(raw)
		}
	}
	left := make([]time.Duration, n)
	for i, c := range ttls {
		if err := c.Err(); err != nil {
			return nil, nil, s.fail("get many", err)
		}
		left[i] = c.Val()
	}
	return recs, left, nil
}
