package remote

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fill scripts' SHAs, boxed once: a command's arguments are anys, and
// boxing a string allocates.
var (
	fillSHA     any = fillScript.Hash()
	fillHandSHA any = fillHandScript.Hash()
	zeroArg     any = "0"
)

// fillOne runs the fill f as one script call: fillSrc, or, with hand and
// when f asks for a hand-off that has a key, fillHandSrc, which writes the
// hand-off in the same call. It builds the command itself, in one
// argument slice, rather than through redis.Script (a miss makes one fill:
// this is its allocation budget), and sends it again as EVAL after
// NOSCRIPT, as redis.Script.Run does.
func (s *Store) fillOne(ctx context.Context, f Fill, hand bool) ([]Filled, error) {
	var hkey string
	if hand && f.HandOff > 0 {
		hkey, hand = s.HandOffKey(f.Lease)
	} else {
		hand = false
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rkey := s.prefix + f.Lease.Key
	g, err := s.enter(ctx, rkey)
	if err != nil {
		return nil, fmt.Errorf("remote: fill: %w", err)
	}
	sha, src := fillSHA, fillSrc
	nkeys := 1 + len(f.Stamps)
	if hand {
		sha, src = fillHandSHA, fillHandSrc
		nkeys++
	}
	argv := make([]any, 0, 3+nkeys+6)
	argv = append(argv, "evalsha", sha, nkeys, rkey)
	if hand {
		argv = append(argv, s.prefix+hkey)
	}
	for _, k := range f.Stamps {
		argv = append(argv, s.prefix+k)
	}
	// ARGV: the lease's identity, the record, its PX, [the hand-off's PX],
	// the load's begin ("0" without stamps), the wake channel.
	argv = append(argv, identity(KindLease, f.Lease.Token), encode(f.Record), pxArg(f.TTL))
	if hand {
		argv = append(argv, s.px(&s.pxHand, f.HandOff))
	}
	var begin any = zeroArg
	if len(f.Stamps) > 0 {
		begin = strconv.FormatInt(f.Record.Begin, 10)
	}
	argv = append(argv, begin, s.wakeArg())
	c := s.runScript(ctx, argv, src)
	g.exit(ctx, c.Err())
	out, err := filledOf(c)
	if err != nil {
		return nil, s.fail("fill", err)
	}
	return []Filled{out}, nil
}

// scriptCmd is an EVALSHA or EVAL command of argv ("evalsha", SHA, number
// of keys, keys..., args...) whose first key is its fourth argument, as
// redis.Script makes it: a cluster client sends it to that key's node.
func scriptCmd(ctx context.Context, argv []any) *redis.Cmd {
	c := redis.NewCmd(ctx, argv...)
	c.SetFirstKeyPos(3)
	return c
}

// runScript sends argv, an EVALSHA of src's script, and sends it again as
// an EVAL of src if the server does not have the script (NOSCRIPT).
func (s *Store) runScript(ctx context.Context, argv []any, src string) *redis.Cmd {
	c := scriptCmd(ctx, argv)
	_ = s.rdb.Process(ctx, c)
	if noScript(c.Err()) {
		argv[0], argv[1] = "eval", src
		c = scriptCmd(ctx, argv)
		_ = s.rdb.Process(ctx, c)
	}
	return c
}

// noScript reports whether err is a NOSCRIPT reply. (HasErrorPrefix
// allocates even for a nil error.)
func noScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// pxBox is a PX argument, boxed, for the TTL it stands for.
type pxBox struct {
	ttl time.Duration
	arg any
}

// px returns the PX argument of ttl, boxed, from *last when it was made for
// the same TTL: a lease's and a hand-off's TTLs are the same on every call,
// and formatting and boxing them costs two allocations a call.
func (s *Store) px(last *atomic.Pointer[pxBox], ttl time.Duration) any {
	if b := last.Load(); b != nil && b.ttl == ttl {
		return b.arg
	}
	b := &pxBox{ttl: ttl, arg: pxArg(ttl)}
	last.Store(b)
	return b.arg
}
