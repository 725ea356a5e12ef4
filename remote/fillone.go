package remote

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The fill scripts' SHAs, boxed once: a command's arguments are anys, and
// boxing a string allocates.
var (
	fillSHA     any = fillScript.Hash()
	fillHandSHA any = fillHandScript.Hash()
)

// fillArgs is the arguments of one fill's script call, in one allocation
// (see cmdArgs).
type fillArgs struct {
	cmdArgs
	argvA [14]any
	argsA [10]bytesArg
	bufA  [160]byte
}

// fillOne runs the fill f as one script call: fillSrc, or, with hand and
// when f asks for a hand-off that has a key, fillHandSrc, which writes the
// hand-off in the same call. It builds the command itself, in one
// argument slice, rather than through redis.Script (a miss makes one fill:
// this is its allocation budget), and sends it again as EVAL after
// NOSCRIPT, as redis.Script.Run does.
func (s *Store) fillOne(ctx context.Context, f Fill, hand bool) ([]Filled, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rkey := s.prefix + f.Lease.Key
	g, err := s.enter(ctx, rkey)
	if err != nil {
		return nil, fmt.Errorf("remote: fill: %w", err)
	}
	a := &fillArgs{}
	a.cmdArgs = cmdArgs{argv: a.argvA[:0], args: a.argsA[:0], buf: a.bufA[:0]}
	sha, src := fillSHA, fillSrc
	nkeys := 1 + len(f.Stamps)
	a.script(sha, nkeys) // its SHA and count are set again with a hand-off
	a.key("", rkey)
	if hand && f.HandOff > 0 {
		m := a.mark()
		if a.buf, hand = s.appendHandOffKey(a.buf, rkey, f.Lease); hand {
			a.end(m)
			sha, src = fillHandSHA, fillHandSrc
			nkeys++
			a.argv[1], a.argv[2] = sha, nkeys
		}
	} else {
		hand = false
	}
	for _, k := range f.Stamps {
		a.key(s.prefix, k)
	}
	// ARGV: the lease's identity, the record, its PX, [the hand-off's PX],
	// the load's begin (0 without stamps), the wake channel.
	var id [identityLen]byte
	putIdentity(&id, KindLease, f.Lease.Token)
	m := a.mark()
	a.buf = append(a.buf, id[:]...)
	a.end(m)
	a.bytes(encode(f.Record))
	a.int(pxDuration(f.TTL).Milliseconds())
	if hand {
		a.int(pxDuration(f.HandOff).Milliseconds())
	}
	var begin int64
	if len(f.Stamps) > 0 {
		begin = f.Record.Begin
	}
	a.int(begin)
	a.argv = append(a.argv, s.wakeArg())
	c := s.runScript(ctx, a.argv, src)
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
