package remote

import (
	"context"
	"fmt"
	"time"
)

// acquireAtSHA is acquireAtScript's SHA, boxed once: an argument of a
// command is an any, and boxing a string allocates.
var acquireAtSHA any = acquireAtScript.Hash()

// AcquireAt is [Store.Acquire] that also reads the server's TIME when it
// takes the lease, in the same round trip: the lease's Taken is then the
// Redis time before the holder's load begins, which a load that checks
// tags needs, without a TIME of its own. It is one script (EVALSHA, EVAL
// after NOSCRIPT) that works on every server version, and a read too: on
// a key that holds a value it returns the value and takes nothing. Like
// Acquire, a failed call releases the lease it may have taken.
//
// The script's replies are a string (what the key held) or an integer (the
// lease was taken), never nil: go-redis spends some twenty allocations
// classifying a nil reply as an error.
func (s *Store) AcquireAt(ctx context.Context, key string, ttl time.Duration) (Lease, bool, Record, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rkey := s.prefix + key
	g, err := s.enter(ctx, rkey)
	if err != nil {
		return Lease{}, false, Record{}, fmt.Errorf("remote: acquire: %w", err)
	}
	l, env := newLease(key, ttl)
	a := &acquireArgs{}
	a.cmdArgs = cmdArgs{argv: a.argvA[:0], args: a.argsA[:0], buf: a.bufA[:0]}
	a.script(acquireAtSHA, 1)
	a.key("", rkey)
	a.bytes(env)
	a.int(pxDuration(ttl).Milliseconds())
	v, err := s.runScript(ctx, a.argv, acquireAtSrc).Result()
	g.exit(ctx, err)
	if err != nil {
		s.abandon(ctx, []Acquired{{Lease: l}})
		return Lease{}, false, Record{}, s.fail("acquire", err)
	}
	switch v := v.(type) {
	case int64:
		l.Taken = v
		return l, true, Record{}, nil
	case string:
		rec := decode([]byte(v))
		if ownLease(rec, l.Token) {
			return l, true, Record{}, nil // our own lease, taken by an earlier send
		}
		return Lease{}, false, rec, nil
	}
	s.abandon(ctx, []Acquired{{Lease: l}})
	return Lease{}, false, Record{}, s.fail("acquire", fmt.Errorf("reply %v is a %T", v, v))
}

// acquireArgs is the arguments of AcquireAt's script call, in one
// allocation (see cmdArgs).
type acquireArgs struct {
	cmdArgs
	argvA [6]any
	argsA [3]bytesArg
	bufA  [64]byte
}
