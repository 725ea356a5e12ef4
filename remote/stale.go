package remote

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// staleSrc is the invalidation of one key of a group with a MaxStale
// window (KEYS[1]; ARGV[1] the stale header, ARGV[2] its PX, ARGV[3] the
// invalidating node's time in unix ms). What the key holds decides:
//
//   - a value not past its expiry becomes a stale envelope (ARGV[1]
//     followed by the value's envelope) for PX ARGV[2]: returns 1;
//   - a stale envelope stays as it is, with the window of the
//     invalidation that made it (a value is stale from its first
//     invalidation on): returns 2;
//   - a lease that carries a stale envelope (taken over it) is replaced by
//     that envelope for what is left of its window, so that the load under
//     the lease does not fill: returns 3;
//   - anything else (a plain lease, an expired value, a "not found", bytes
//     of another release) is unlinked, as in a group without MaxStale:
//     returns 0.
//
// Numbers are read from the envelopes' big-endian bytes; unix
// milliseconds fit in a Lua number exactly.
const staleSrc = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local function ms(s, i)
  local n = 0
  for j = i, i + 7 do n = n * 256 + string.byte(s, j) end
  return n
end
local now = tonumber(ARGV[3])
if #v >= 23 and string.byte(v, 1) == 199 then
  local ver, kind = string.byte(v, 2), string.byte(v, 3)
  if ver == 2 and kind == 1 and ms(v, 16) > now then
    redis.call('SET', KEYS[1], ARGV[1] .. v, 'PX', ARGV[2])
    return 1
  end
  if ver == 3 and kind == 4 then return 2 end
  if ver == 1 and kind == 3 and #v >= 46 and string.byte(v, 25) == 3 and string.byte(v, 26) == 4 then
    local left = ms(v, 39) - now
    if left > 0 then
      redis.call('SET', KEYS[1], string.sub(v, 24), 'PX', left)
      return 3
    end
  end
end
redis.call('UNLINK', KEYS[1])
return 0
`

// MarkStale invalidates keys of a group with a MaxStale window that ends
// at end (unix ms; now is the invalidating node's time, unix ms): each key
// that holds a value keeps it as a stale envelope ([KindStale]) until end,
// in place of the value, so that a reader inside the window may serve it
// while one node reloads. A key that held a lease loses it, as with
// [Store.Unlink]: the load under it does not fill. See staleSrc for every
// case. Each key is one script call (EVAL, so that a pipeline never meets
// NOSCRIPT), pipelined; with WaitReplicas, it then waits for the replicas
// as Unlink does. A window already over (end <= now) is an Unlink.
func (s *Store) MarkStale(ctx context.Context, keys []string, end, now int64) error {
	if end <= now {
		return s.Unlink(ctx, keys...)
	}
	px := strconv.FormatInt(end-now, 10)
	at := strconv.FormatInt(now, 10)
	add := func(ctx context.Context, p redis.Pipeliner, rkey string) redis.Cmder {
		return p.Eval(ctx, staleSrc, []string{rkey}, staleHeader(NewToken(), end), px, at)
	}
	if err := s.guardedWrite(ctx, keys, add); err != nil {
		return s.fail("mark stale", err)
	}
	return nil
}

// InvalidateIn is [Store.UnlinkIn] for keys of groups with and without a
// MaxStale window at once: ends[i] is the end of keys[i]'s window (unix
// ms; now is the invalidating node's time), and a key whose window is
// already over (ends[i] <= now, a strict group's 0 included) is unlinked,
// any other marked stale as [Store.MarkStale] does. The commands go in p
// behind one entry of the breaker, so that they are all added or all
// refused, and the function to call once p ran, while ctx is still live,
// returns their outcome and charges it to the breaker. It is only for a
// client that [Store.Pipelines] accepts.
func (s *Store) InvalidateIn(ctx context.Context, p redis.Pipeliner, keys []string, ends []int64, now int64) func() error {
	at := strconv.FormatInt(now, 10)
	return s.writeIn(ctx, p, keys, "invalidate", func(ctx context.Context, p redis.Pipeliner, i int, rkey string) redis.Cmder {
		if ends[i] <= now {
			return p.Unlink(ctx, rkey)
		}
		return p.Eval(ctx, staleSrc, []string{rkey}, staleHeader(NewToken(), ends[i]), strconv.FormatInt(ends[i]-now, 10), at)
	})
}
