package remote

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// MarkWaiting reads the keys of leases as [Store.GetMany] does and, on each
// key that still holds its lease, marks that lease as waited for, in the
// same atomic step: the lease's fill or release then publishes a wake
// notice on [Options.Wake]. A caller that listens on that channel before
// it calls MarkWaiting misses no notice: a fill that ran before the mark
// left the value that MarkWaiting returns. The records are in the order of
// leases; one script call per key, pipelined. Every release reads a marked
// lease as the same lease, so a fleet of mixed releases is unaffected.
func (s *Store) MarkWaiting(ctx context.Context, leases []Lease) ([]Record, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	keys := make([]string, len(leases))
	args := make([][]any, len(leases))
	for i, l := range leases {
		keys[i] = l.Key
		args[i] = []any{identity(KindLease, l.Token)}
	}
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("remote: mark waiting: %w", err)
	}
	cmds, err := s.runMany(ctx, waitScript, keys, nil, args, nil)
	g.exitEach(ctx, err, len(keys), func(i int) error { return cmdErr(cmds, i, err) })
	if err != nil {
		return nil, s.fail("mark waiting", err)
	}
	recs := make([]Record, len(keys))
	for i, c := range cmds {
		raw, err := c.Text()
		switch {
		case err == redis.Nil:
		case err != nil:
			return nil, s.fail("mark waiting", err)
		default:
			recs[i] = decode([]byte(raw))
		}
	}
	return recs, nil
}

// Wake returns the wake channel ([Options.Wake]; "" for none).
func (s *Store) Wake() string { return (*s.wake.Load()).(string) }

// SetWake sets the wake channel ([Options.Wake]; "" turns notices off), for
// the calls that begin after it. It is safe to call at any time.
func (s *Store) SetWake(channel string) {
	var w any = channel
	s.wake.Store(&w)
}

// wakeArg is the wake channel as a script argument.
func (s *Store) wakeArg() any { return *s.wake.Load() }

// MaxWakeValue is the largest envelope a wake notice carries: a fill of a
// larger value announces its key only.
const MaxWakeValue = 4096

// ParseWake reads a wake notice: the Redis key (with its namespace) it
// announces and, when the notice came from a fill that succeeded and its
// envelope is at most [MaxWakeValue] bytes, the token of the lease that
// fill replaced and what it wrote (hasRec). A notice that carries a value
// is a NUL byte, the key's length in decimal, ":", the key, the lease's
// identity (the first 11 bytes of its envelope), then the envelope; any
// other is the key alone (a namespace never begins with NUL). The record
// is what a GET of the key right after the fill returned: a node may take
// it only for the lease it waited for, since a notice can reach it after
// later writes. ok is false for a malformed notice.
func ParseWake(payload string) (rkey string, lease uint64, rec Record, hasRec, ok bool) {
	if payload == "" {
		return "", 0, Record{}, false, false
	}
	if payload[0] != 0 {
		return payload, 0, Record{}, false, true
	}
	n, rest, found := strings.Cut(payload[1:], ":")
	klen, err := strconv.Atoi(n)
	// klen > len(rest)-identityLen, not klen+identityLen > len(rest): a
	// forged length near the int maximum would wrap the sum around.
	if !found || err != nil || klen <= 0 || klen > len(rest)-identityLen {
		return "", 0, Record{}, false, false
	}
	id := rest[klen : klen+identityLen]
	if id[0] != magic || Kind(id[2]) != KindLease {
		return "", 0, Record{}, false, false
	}
	lease = binary.BigEndian.Uint64([]byte(id[3:identityLen]))
	return rest[:klen], lease, decode([]byte(rest[klen+identityLen:])), true, true
}
