package remote

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fills of leases: compare-and-set writes of loaded values, with the
// hand-offs to the nodes that waited for them.

// Fill replaces the lease l with rec for ttl, only while the key still holds
// exactly that lease (compare-and-set). It reports false, and writes nothing,
// when an invalidation removed the lease, another write replaced it, or it
// expired.
func (s *Store) Fill(ctx context.Context, l Lease, rec Record, ttl time.Duration) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.enter(ctx, s.prefix+l.Key)
	if err != nil {
		return false, fmt.Errorf("remote: fill: %w", err)
	}
	n, err := fillScript.Run(ctx, s.rdb, []string{s.prefix + l.Key},
		identity(KindLease, l.Token), encode(rec), pxArg(ttl), "0", s.wakeArg()).Int()
	g.exit(ctx, err)
	if err != nil {
		return false, s.fail("fill", err)
	}
	return n == 1, nil
}

// Replace writes rec over the value old, only while key still holds exactly
// that write (same kind and token): the compare-and-set of an early
// refresh. It reports false, and writes nothing, when the key was
// invalidated, rewritten or expired since old was read.
func (s *Store) Replace(ctx context.Context, key string, old Record, rec Record, ttl time.Duration) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.enter(ctx, s.prefix+key)
	if err != nil {
		return false, fmt.Errorf("remote: replace: %w", err)
	}
	n, err := fillScript.Run(ctx, s.rdb, []string{s.prefix + key},
		recordIdentity(old), encode(rec), pxArg(ttl)).Int()
	g.exit(ctx, err)
	if err != nil {
		return false, s.fail("replace", err)
	}
	return n == 1, nil
}

// Fill is one key of [Store.FillHandOff].
type Fill struct {
	Lease  Lease
	Record Record
	TTL    time.Duration
	// HandOff, if not 0, makes [Store.FillHandOff] write Record as the
	// lease's hand-off too, for that long, whether the fill succeeds or not.
	HandOff time.Duration
	// Stamps, if not empty, are the keys of tag stamps ([Store.TagKey]) the
	// fill checks in its script: it fails, and removes the lease, when one
	// of them is at or after Record.Begin. They must be on the server of
	// the lease's key: never set them on a cluster (see [Store.Clustered]).
	Stamps []string
}

// HandOff is what the holder of a lease leaves, under [Store.HandOffKey],
// for the nodes that waited for it: the value it loaded (a Record of
// KindValue or KindAbsent), or a Record of KindLease when the load ended
// without one. A node that saw the lease began its read before the lease
// was removed, so before any invalidation that removed it: the value is
// its to take even when the fill failed because an invalidation won.
type HandOff struct {
	Lease  Lease
	Record Record
	TTL    time.Duration
}

// HandOffKey returns the key (within the namespace) of lease l's hand-off,
// on the same cluster slot as l.Key; ok is false for a key whose braces
// leave no way to name one there (no hand-off is written or read for it).
// Hand-off keys begin with ":", which no group key does.
func (s *Store) HandOffKey(l Lease) (key string, ok bool) {
	b, ok := s.appendHandOffKey(nil, s.prefix+l.Key, l)
	if !ok {
		return "", false
	}
	return string(b[len(s.prefix):]), true
}

// appendHandOffKey appends the Redis key (with the namespace) of the
// hand-off of l to b; rk is the Redis key of l.Key. See HandOffKey.
func (s *Store) appendHandOffKey(b []byte, rk string, l Lease) ([]byte, bool) {
	tagged := hashTag(rk) != ""
	if !tagged && strings.ContainsAny(rk, "{}") {
		return b, false
	}
	b = append(b, s.prefix...)
	b = append(b, ":handoff:"...)
	b = strconv.AppendUint(b, l.Token, 16)
	if tagged {
		// The inserted part holds no brace: the key keeps its tag.
		b = append(b, ':')
		return append(b, l.Key...), true
	}
	b = append(b, '{')
	b = append(b, rk...)
	return append(b, '}'), true
}

// hashTag returns the part of a Redis key that Redis Cluster hashes when it
// is not the whole key: between the first "{" and the next "}", if not
// empty.
func hashTag(rk string) string {
	i := strings.IndexByte(rk, '{')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(rk[i+1:], '}')
	if j <= 0 {
		return ""
	}
	return rk[i+1 : i+1+j]
}

// FillHandOff runs fills, each a compare-and-set as [Store.Fill] does, in
// one pipeline (the results are in the order of fills), and writes hands,
// and the hand-offs of the fills that ask for one (SET PX under their
// [Store.HandOffKey]), in the same pipeline; with [Options.Wake], each of
// hands is then announced there, as a fill announces its lease. The results are
// those of the fills; a hand-off that cannot be written is not an error
// (the nodes waiting for it take their lease again instead).
func (s *Store) FillHandOff(ctx context.Context, fills []Fill, hands []HandOff) ([]bool, error) {
	res, err := s.FillStamped(ctx, fills, hands)
	if err != nil || res == nil {
		return nil, err
	}
	ok := make([]bool, len(res))
	for i, r := range res {
		ok[i] = r.OK
	}
	return ok, nil
}

// Filled is the outcome of one fill of [Store.FillStamped].
type Filled struct {
	OK bool // the value was written
	// Stamps are the stamps the fill's script read, in the order of its
	// Fill.Stamps (0 for none), when OK.
	Stamps []int64
}

// FillStamped is [Store.FillHandOff] that also returns the tag stamps each
// fill checked. A single fill without hand-offs is one script call, not a
// pipeline.
func (s *Store) FillStamped(ctx context.Context, fills []Fill, hands []HandOff) ([]Filled, error) {
	if len(fills) == 1 && len(hands) == 0 {
		// A single read's fill: one script call, its hand-off included.
		return s.fillOne(ctx, fills[0], true)
	}
	keys := make([]string, len(fills))
	args := make([][]any, len(fills))
	var more [][]string // the tag stamps each fill checks, if any does
	var also []int      // the fills whose record is their hand-off too
	for i, f := range fills {
		keys[i] = f.Lease.Key
		begin := "0"
		if len(f.Stamps) > 0 {
			if more == nil {
				more = make([][]string, len(fills))
			}
			more[i] = f.Stamps
			begin = strconv.FormatInt(f.Record.Begin, 10)
		}
		args[i] = []any{identity(KindLease, f.Lease.Token), encode(f.Record), pxArg(f.TTL), begin, s.wakeArg()}
		if f.HandOff > 0 {
			also = append(also, i)
		}
	}
	// The hand-offs given apart may live on other slots than the fills:
	// their keys go through the breakers too, after the fills' keys, so
	// guarded[len(keys)+i] is the key of sets[i] for the first of them.
	guarded := slices.Clip(keys)
	type set struct {
		key string
		raw any
		ttl time.Duration
	}
	var sets []set
	var woken []string // the leases of hands, announced on the wake channel
	wakeCh := s.Wake()
	for _, h := range hands {
		if k, ok := s.HandOffKey(h.Lease); ok {
			guarded = append(guarded, k)
			sets = append(sets, set{k, encode(h.Record), h.TTL})
			if wakeCh != "" {
				woken = append(woken, s.prefix+h.Lease.Key)
			}
		}
	}
	for _, i := range also { // on their fills' slots
		if k, ok := s.HandOffKey(fills[i].Lease); ok {
			sets = append(sets, set{k, args[i][1], fills[i].HandOff})
		}
	}
	if len(keys) == 0 && len(sets) == 0 {
		return nil, nil
	}
	if len(fills) == 1 && len(sets) == 0 {
		return s.fillOne(ctx, fills[0], false)
	}
	setCmds := make([]*redis.StatusCmd, len(sets))
	var extra func(context.Context, redis.Pipeliner)
	if len(sets) > 0 {
		extra = func(ctx context.Context, p redis.Pipeliner) {
			for i, st := range sets {
				setCmds[i] = p.Set(ctx, s.prefix+st.key, st.raw, pxDuration(st.ttl))
			}
			// After the hand-offs: a node that waits for one of these
			// leases looks at once and finds its hand-off. Each PUBLISH
			// names its key as the message, which a cluster client routes
			// by: it goes to the key's master, after the hand-off's SET
			// on the same connection, rather than to any node.
			for _, k := range woken {
				c := redis.NewIntCmd(ctx, "publish", wakeCh, k)
				c.SetFirstKeyPos(2)
				_ = p.Process(ctx, c)
			}
		}
	}
	g, err := s.enterOn(ctx, s.rdb, guarded)
	if err != nil {
		return nil, fmt.Errorf("remote: fill many: %w", err)
	}
	cmds, err := s.runMany(ctx, fillScript, keys, more, args, extra)
	g.exitEach(ctx, err, len(guarded), func(i int) error {
		if i < len(keys) {
			return cmdErr(cmds, i, err)
		}
		if c := setCmds[i-len(keys)]; c != nil {
			return c.Err()
		}
		return err
	})
	if err != nil {
		return nil, s.fail("fill many", err)
	}
	out := make([]Filled, len(fills))
	for i, c := range cmds {
		if out[i], err = filledOf(c); err != nil {
			return nil, s.fail("fill many", err)
		}
	}
	return out, nil
}

// filledOf reads the reply of one fill script.
func filledOf(c *redis.Cmd) (Filled, error) {
	v, err := c.Result()
	if err != nil {
		return Filled{}, err
	}
	switch v := v.(type) {
	case int64:
		return Filled{OK: v == 1}, nil
	case []any:
		f := Filled{OK: true, Stamps: make([]int64, 0, len(v))}
		for _, x := range v[1:] {
			n, ok := x.(int64)
			if !ok {
				return Filled{}, fmt.Errorf("fill: stamp %v is a %T", x, x)
			}
			f.Stamps = append(f.Stamps, n)
		}
		return f, nil
	}
	return Filled{}, fmt.Errorf("fill: reply %v is a %T", v, v)
}
