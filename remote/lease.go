package remote

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is the right to fill one key, held by the node that took it until it
// fills, releases, or the lease expires.
type Lease struct {
	Key   string
	Token uint64
	// Taken, if not 0, is the Redis TIME (unix microseconds) of the key's
	// server right after the lease was taken, read in the same step
	// ([Store.AcquireAt]): a time before the holder's load begins. 0 when
	// the taking did not read it.
	Taken int64
}

// Acquire takes the lease on key for ttl in one atomic step (SET NX PX GET
// on Redis 7.0 and later, a script that reads then sets on older servers):
// either the key was missing and the caller now holds the lease (won), or
// the key holds something and Acquire returns it (a value filled meanwhile,
// another node's lease, a foreign or corrupt envelope) without changing it.
// It is a read too: on a key that holds a value it costs what a GET does.
// Like AcquireMany, a failed call releases the lease it may have taken.
func (s *Store) Acquire(ctx context.Context, key string, ttl time.Duration) (Lease, bool, Record, error) {
	if !s.noSetGet.Load() {
		l, won, rec, err := s.acquireOne(ctx, key, ttl)
		if err == nil || !oldServer(err) {
			return l, won, rec, err
		}
		s.noSetGet.Store(true) // a server older than 7.0: NX and GET do not combine
	}
	acq, err := s.AcquireMany(ctx, []string{key}, ttl)
	if err != nil {
		return Lease{}, false, Record{}, fmt.Errorf("remote: acquire: %w", err)
	}
	return acq[0].Lease, acq[0].Won, acq[0].Found, nil
}

// acquireOne is Acquire as one SET NX PX GET, without a pipeline. A
// syntax error (an old server) is returned as it is, for Acquire to fall
// back.
func (s *Store) acquireOne(ctx context.Context, key string, ttl time.Duration) (Lease, bool, Record, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rkey := s.prefix + key
	g, err := s.enter(ctx, rkey)
	if err != nil {
		return Lease{}, false, Record{}, fmt.Errorf("remote: acquire: %w", err)
	}
	l, env := newLease(key, ttl)
	cmd := redis.NewStringCmd(ctx, "set", rkey, env, "px", pxArg(ttl), "nx", "get")
	_ = s.rdb.Process(ctx, cmd)
	raw, err := cmd.Bytes()
	g.exit(ctx, err)
	switch {
	case err == redis.Nil:
		return l, true, Record{}, nil
	case oldServer(err):
		return Lease{}, false, Record{}, err
	case err != nil:
		s.abandon(ctx, []Acquired{{Lease: l}})
		return Lease{}, false, Record{}, s.fail("acquire", err)
	}
	rec := decode(raw)
	if ownLease(rec, l.Token) {
		return l, true, Record{}, nil // our own lease, taken by an earlier send
	}
	return Lease{}, false, rec, nil
}

// newLease returns a new lease on key and its envelope, expiring after
// ttl.
func newLease(key string, ttl time.Duration) (Lease, []byte) {
	l := Lease{Key: key, Token: NewToken()}
	return l, encode(Record{Kind: KindLease, Token: l.Token, Expire: time.Now().Add(ttl).UnixMilli()})
}

// ownLease reports whether rec, what a lease taking found, is the lease
// token itself: a client that sent the taking again after a failed
// connection finds the lease its first send took.
func ownLease(rec Record, token uint64) bool {
	return rec.Kind == KindLease && rec.Token == token
}

// oldServer reports whether err is the syntax error a server older than
// Redis 7.0 answers to SET with both NX and GET. (redis.HasErrorPrefix
// strips a leading "ERR " before it compares.)
func oldServer(err error) bool { return redis.HasErrorPrefix(err, "syntax error") }

// LeaseByScript reports whether the store takes leases with a script,
// because the server rejected SET NX GET (Redis older than 7.0; known
// after the first lease taking). A lease taking is then dearer than a GET.
func (s *Store) LeaseByScript() bool { return s.noSetGet.Load() }

// Acquired is the outcome of one key of [Store.AcquireMany].
type Acquired struct {
	Lease Lease  // the lease taken, when Won
	Won   bool   // the caller holds the lease
	Found Record // what the key held when not Won
}

// AcquireMany is [Store.Acquire] for many keys in one pipeline (one
// single-key command per key, so nothing crosses slots). The results are in
// the order of keys.
//
// A client may send a command again after a connection failed mid-way (a
// cluster client does so for a whole pipeline), so a key found holding the
// very lease this call was taking counts as won.
func (s *Store) AcquireMany(ctx context.Context, keys []string, ttl time.Duration) ([]Acquired, error) {
	tokens := make([]uint64, len(keys))
	for i := range tokens {
		tokens[i] = NewToken()
	}
	return s.acquireMany(ctx, keys, ttl, tokens)
}

// acquireMany is AcquireMany with the lease tokens chosen by the caller.
func (s *Store) acquireMany(ctx context.Context, keys []string, ttl time.Duration, tokens []uint64) ([]Acquired, error) {
	out := make([]Acquired, len(keys))
	envs := make([][]byte, len(keys))
	exp := time.Now().Add(ttl).UnixMilli()
	for i, k := range keys {
		out[i].Lease = Lease{Key: k, Token: tokens[i]}
		envs[i] = encode(Record{Kind: KindLease, Token: out[i].Lease.Token, Expire: exp})
	}
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("remote: acquire many: %w", err)
	}
	var cmds []*redis.Cmd
	if !s.noSetGet.Load() {
		cmds, err = s.setNXGet(ctx, keys, envs, ttl)
		if err != nil && oldServer(err) {
			s.noSetGet.Store(true) // a server older than 7.0: NX and GET do not combine
		}
	}
	if s.noSetGet.Load() {
		args := make([][]any, len(keys))
		for i := range keys {
			args[i] = []any{envs[i], pxArg(ttl)}
		}
		cmds, err = s.runMany(ctx, acquireScript, keys, nil, args, nil)
	}
	g.exitEach(ctx, err, len(keys), func(i int) error { return cmdErr(cmds, i, err) })
	if err != nil {
		s.abandon(ctx, out)
		return nil, s.fail("acquire many", err)
	}
	for i, c := range cmds {
		raw, err := c.Text()
		switch {
		case err == redis.Nil:
			out[i].Won = true
		case err != nil:
			s.abandon(ctx, out)
			return nil, s.fail("acquire many", err)
		default:
			rec := decode([]byte(raw))
			if ownLease(rec, out[i].Lease.Token) {
				out[i].Won = true // our own lease, taken by an earlier send
				continue
			}
			out[i].Lease = Lease{}
			out[i].Found = rec
		}
	}
	return out, nil
}

// abandon releases the leases a failed AcquireMany may have taken (a
// pipeline can fail after Redis ran some of its commands, a timeout
// after it ran all of them), so that other nodes do not wait for a lease
// nobody will fill. The release is a compare-and-delete of this call's
// own tokens: it removes nothing else. It does not observe ctx's
// cancellation and is bounded by the store's Timeout.
func (s *Store) abandon(ctx context.Context, acq []Acquired) {
	if s.keepAbandoned {
		return
	}
	ls := make([]Lease, 0, len(acq))
	for _, a := range acq {
		if a.Lease.Key != "" || a.Lease.Token != 0 {
			ls = append(ls, a.Lease)
		}
	}
	_ = s.ReleaseMany(context.WithoutCancel(ctx), ls) // the lease expires anyway
}

// setNXGet sends SET key env PX ttl NX GET for every key in one pipeline.
// It returns the first reply error too (a syntax error on old servers).
func (s *Store) setNXGet(ctx context.Context, keys []string, envs [][]byte, ttl time.Duration) ([]*redis.Cmd, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	cmds := make([]*redis.Cmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Do(ctx, "set", s.prefix+k, envs[i], "px", pxArg(ttl), "nx", "get")
		}
		return nil
	})
	if err == redis.Nil {
		err = nil
	}
	return cmds, err
}

// Release gives the lease l up (compare-and-delete): the key is removed only
// while it still holds exactly that lease. It reports whether it removed it.
func (s *Store) Release(ctx context.Context, l Lease) (bool, error) {
	return s.leaseOp(ctx, releaseScript, l, "release", s.wakeArg())
}

// Renew extends the lease l to ttl from now, only while the key still holds
// it. False means the lease is lost: the fill will fail.
func (s *Store) Renew(ctx context.Context, l Lease, ttl time.Duration) (bool, error) {
	return s.leaseOp(ctx, renewScript, l, "renew", pxArg(ttl))
}

func (s *Store) leaseOp(ctx context.Context, sc *redis.Script, l Lease, op string, extra ...any) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.enter(ctx, s.prefix+l.Key)
	if err != nil {
		return false, fmt.Errorf("remote: %s: %w", op, err)
	}
	args := append([]any{identity(KindLease, l.Token)}, extra...)
	n, err := sc.Run(ctx, s.rdb, []string{s.prefix + l.Key}, args...).Int()
	g.exit(ctx, err)
	if err != nil {
		return false, s.fail(op, err)
	}
	return n == 1, nil
}

// runMany runs sc once per key in one pipeline of EVALSHAs (with the
// keys more[i], if more is not nil, after keys[i]), after the
// commands extra (if not nil) queues, which are sent once and whose replies
// are not looked at. The commands
// come back with an error too, for the breakers to see each key's outcome.
// A script inside a pipeline is not retried after NOSCRIPT (a restarted or
// newly promoted server, or a master added to a cluster, has an empty
// script cache), so the calls that report NOSCRIPT, and only those (the
// others ran), are sent once more after loadScripts has loaded
// every script on every node.
func (s *Store) runMany(ctx context.Context, sc *redis.Script, keys []string, more [][]string, args [][]any, extra func(context.Context, redis.Pipeliner)) ([]*redis.Cmd, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	cmds := make([]*redis.Cmd, len(keys))
	todo := make([]int, len(keys))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; ; attempt++ {
		if err := s.pipeScript(ctx, sc, keys, more, args, todo, cmds, extra); err != nil {
			return cmds, err
		}
		extra = nil
		todo = todo[:0]
		for i, c := range cmds {
			if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
				todo = append(todo, i)
			}
		}
		if len(todo) == 0 || attempt == 1 {
			return cmds, nil
		}
		// A node that cannot be reached fails its own calls again below.
		_ = s.loadScripts(ctx)
	}
}

// pipeScript sends sc for the keys at the indexes todo, storing each call in
// cmds. It returns an error only when the pipeline itself failed (a
// connection error), not for a call's own error reply.
func (s *Store) pipeScript(ctx context.Context, sc *redis.Script, keys []string, more [][]string, args [][]any, todo []int, cmds []*redis.Cmd, extra func(context.Context, redis.Pipeliner)) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if extra != nil {
			extra(ctx, p)
		}
		for _, i := range todo {
			ks := []string{s.prefix + keys[i]}
			if more != nil {
				for _, k := range more[i] {
					ks = append(ks, s.prefix+k)
				}
			}
			cmds[i] = sc.EvalSha(ctx, p, ks, args[i]...)
		}
		return nil
	})
	if err == nil || err == redis.Nil {
		return nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return nil // a reply error of one call: each cmd carries its own
	}
	return err
}

func pxArg(ttl time.Duration) string {
	return strconv.FormatInt(pxDuration(ttl).Milliseconds(), 10)
}

// ReleaseMany is [Store.Release] for many leases in one pipeline.
func (s *Store) ReleaseMany(ctx context.Context, leases []Lease) error {
	if len(leases) == 0 {
		return nil
	}
	keys := make([]string, len(leases))
	args := make([][]any, len(leases))
	for i, l := range leases {
		keys[i] = l.Key
		args[i] = []any{identity(KindLease, l.Token), s.wakeArg()}
	}
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return fmt.Errorf("remote: release many: %w", err)
	}
	cmds, err := s.runMany(ctx, releaseScript, keys, nil, args, nil)
	g.exitEach(ctx, err, len(keys), func(i int) error { return cmdErr(cmds, i, err) })
	if err == nil {
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return s.fail("release many", err)
	}
	return nil
}
