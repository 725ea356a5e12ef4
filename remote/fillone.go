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

// fillArgs holds the arguments of one fill's script call in one
// allocation: the argument slice points to its fields, since go-redis
// writes a *string and an *int64 as it writes a string and an integer,
// and boxing a pointer allocates nothing where boxing a string or an
// integer allocates.
type fillArgs struct {
	argv   [14]any
	rkey   string
	hkey   string
	stamps [4]string // the stamp keys, when there are at most four
	id     identityArg
	env    bytesArg
	px     int64
	handPx int64
	begin  int64
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
	a := &fillArgs{rkey: s.prefix + f.Lease.Key}
	g, err := s.enter(ctx, a.rkey)
	if err != nil {
		return nil, fmt.Errorf("remote: fill: %w", err)
	}
	// The other keys, built in one string: the hand-off's, then the stamps'.
	var kb [192]byte
	keys := kb[:0]
	if hand && f.HandOff > 0 {
		keys, hand = s.appendHandOffKey(keys, a.rkey, f.Lease)
	} else {
		hand = false
	}
	ends := make([]int, 0, 8)
	ends = append(ends, len(keys))
	for _, k := range f.Stamps {
		keys = append(append(keys, s.prefix...), k...)
		ends = append(ends, len(keys))
	}
	all := string(keys)
	sha, src := fillSHA, fillSrc
	nkeys := 1 + len(f.Stamps)
	if hand {
		sha, src = fillHandSHA, fillHandSrc
		nkeys++
	}
	argv := append(a.argv[:0], "evalsha", sha, nkeys, &a.rkey)
	if hand {
		a.hkey = all[:ends[0]]
		argv = append(argv, &a.hkey)
	}
	for i := range f.Stamps {
		k := all[ends[i]:ends[i+1]]
		if i < len(a.stamps) {
			a.stamps[i] = k
			argv = append(argv, &a.stamps[i])
		} else {
			argv = append(argv, k)
		}
	}
	// ARGV: the lease's identity, the record, its PX, [the hand-off's PX],
	// the load's begin (0 without stamps), the wake channel.
	putIdentity((*[identityLen]byte)(&a.id), KindLease, f.Lease.Token)
	a.env = encode(f.Record)
	a.px = pxDuration(f.TTL).Milliseconds()
	argv = append(argv, &a.id, &a.env, &a.px)
	if hand {
		a.handPx = pxDuration(f.HandOff).Milliseconds()
		argv = append(argv, &a.handPx)
	}
	if len(f.Stamps) > 0 {
		a.begin = f.Record.Begin
	}
	argv = append(argv, &a.begin, s.wakeArg())
	c := s.runScript(ctx, argv, src)
	g.exit(ctx, c.Err())
	out, err := filledOf(c)
	if err != nil {
		return nil, s.fail("fill", err)
	}
	return []Filled{out}, nil
}

// bytesArg is a command argument that go-redis writes as its bytes (an
// encoding.BinaryMarshaler), boxed as a pointer to where it is held.
type bytesArg []byte

func (b *bytesArg) MarshalBinary() ([]byte, error) { return *b, nil }
func (b *bytesArg) String() string                 { return string(*b) }

// identityArg is a write's identity as a command argument (see bytesArg).
type identityArg [identityLen]byte

func (b *identityArg) MarshalBinary() ([]byte, error) { return b[:], nil }
func (b *identityArg) String() string                 { return string(b[:]) }

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
