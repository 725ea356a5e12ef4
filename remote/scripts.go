package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Every script touches one key (KEYS[1]), so each runs on the key's own
// node of a cluster; only the fill may name tag stamps too, and never on a
// cluster. ARGV[1] is always the identity (the first 11
// envelope bytes) of the write the caller expects the key to hold.

// acquireSrc returns the key's current string, or takes the lease
// (ARGV[1] = lease envelope, ARGV[2] = PX) and returns nil: reading and
// taking are one atomic step. It stands in for SET NX PX GET on servers
// older than Redis 7.0.
const acquireSrc = `
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`

// acquireAtSrc is acquireSrc that, when it takes the lease, returns the
// server's TIME in microseconds (an integer) instead of nil: the Redis
// time at which a load that holds the lease begins, read in the round trip
// that took the lease (see [Store.AcquireAt]). A key that holds a string
// returns it, as acquireSrc does.
const acquireAtSrc = `
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local t = redis.call('TIME')
return tonumber(t[1]) * 1000000 + tonumber(t[2])
`

// fillSrc replaces the key with ARGV[2] (PX ARGV[3]) only while it holds
// the lease whose identity is ARGV[1], and returns 1. When KEYS[2:] name
// tag stamps (see [Store.StampTags]), it fills only while none of them is
// at or after ARGV[4], the Redis time at which the load began, and then
// returns {1, the stamps (0 for none)...}; a load that began before one
// of its tags was invalidated removes its lease instead and returns 2.
// The stamps are on the same server (never on a cluster).
//
// ARGV[5], if given and not empty, is the wake channel (see
// [Options.Wake]): a fill of a lease that a node marked as waited for
// (waitSrc), and every fill that finds its lease gone, publishes the key
// there, so that the waiting nodes look at once instead of at their next
// poll; a fill that succeeds sends the value too, when its envelope is at
// most 4096 bytes (see [ParseWake]), so that they need not read it.
// ARGV[4] is then "0" when there are no stamps. Each script
// publishes before it writes: a PUBLISH that an ACL refuses ends the script
// before it changed anything, and the notice reaches no one before the
// script ends (Redis runs the waiters' next read after it).
const fillSrc = `local s, bi, wi = 2, 4, 5` + fillBody

// fillHandSrc is fillSrc with a hand-off: it first sets KEYS[2], the
// lease's hand-off key (on the key's slot), to ARGV[2] with PX ARGV[4],
// whatever the fill then does, as a SET beside the fill in one pipeline
// would; then it is fillSrc with the tag stamps in KEYS[3:], the load's
// begin in ARGV[5] and the wake channel in ARGV[6]. One call instead of a
// pipeline of two commands, for the fill of a single read.
const fillHandSrc = `redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
local s, bi, wi = 3, 5, 6` + fillBody

// fillBody is the fill of fillSrc and fillHandSrc, after they set s, the
// index of the first stamp in KEYS, and bi and wi, the indexes of the
// load's begin and of the wake channel in ARGV.
const fillBody = `
local v = redis.call('GET', KEYS[1])
local w = ARGV[wi]
if w == '' then w = nil end
if not v or string.sub(v, 1, 11) ~= ARGV[1] then
  if w then redis.call('PUBLISH', w, KEYS[1]) end
  return 0
end
if w and string.byte(v, 15) == 0 then w = nil end
local out = 1
if #KEYS >= s then
  local b = tonumber(ARGV[bi])
  out = {1}
  for i = s, #KEYS do
    local t = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
    if t > 0 and t >= b then
      if w then redis.call('PUBLISH', w, KEYS[1]) end
      redis.call('DEL', KEYS[1])
      return 2
    end
    out[i - s + 2] = t
  end
end
if w then
  if #ARGV[2] <= 4096 then
    redis.call('PUBLISH', w, '\0' .. #KEYS[1] .. ':' .. KEYS[1] .. ARGV[1] .. ARGV[2])
  else
    redis.call('PUBLISH', w, KEYS[1])
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return out
`

// waitSrc reads KEYS[1], as GET does, and marks the lease whose identity
// is ARGV[1], if the key still holds it, as waited for: it sets the last
// byte of the lease's load time, which a lease does not use, to 1 (SETRANGE
// keeps the TTL; every release reads the lease as before). The fill or
// release of a marked lease publishes a wake notice (see fillSrc).
const waitSrc = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 11) == ARGV[1] and string.byte(v, 15) == 0 then
  redis.call('SETRANGE', KEYS[1], 14, '\1')
end
return v
`

// stampSrc records an invalidation of the tag whose stamp is KEYS[1]: it
// sets the stamp to the server's TIME in microseconds (or just after the
// stamp it holds, so that stamps never go back) with PX ARGV[1], and
// returns it.
const stampSrc = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if old and old >= now then now = old + 1 end
local s = string.format('%.0f', now)
redis.call('SET', KEYS[1], s, 'PX', ARGV[1])
return s
`

// releaseSrc deletes the key only while it holds the lease ARGV[1]; a
// lease marked as waited for is announced on the wake channel ARGV[2], if
// given and not empty (see fillSrc).
const releaseSrc = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 11) == ARGV[1] then
  local w = ARGV[2]
  if w and w ~= '' and string.byte(v, 15) ~= 0 then redis.call('PUBLISH', w, KEYS[1]) end
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`

// renewSrc extends the lease ARGV[1] to PX ARGV[2] only while the key
// still holds it.
const renewSrc = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 11) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`

// discardSrc deletes the key only while it holds exactly ARGV[1]: a
// corrupt value is removed, never someone else's newer one.
const discardSrc = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`

// The scripts, by their sources above.
var (
	acquireScript   = redis.NewScript(acquireSrc)
	acquireAtScript = redis.NewScript(acquireAtSrc)
	fillScript      = redis.NewScript(fillSrc)
	fillHandScript  = redis.NewScript(fillHandSrc)
	releaseScript   = redis.NewScript(releaseSrc)
	renewScript     = redis.NewScript(renewSrc)
	discardScript   = redis.NewScript(discardSrc)
	stampScript     = redis.NewScript(stampSrc)
	waitScript      = redis.NewScript(waitSrc)
)

// scriptSources are the sources of every script a Store runs.
var scriptSources = []string{acquireSrc, acquireAtSrc, fillSrc, fillHandSrc, releaseSrc, renewSrc, discardSrc, stampSrc, waitSrc}

// loadScripts loads every script the store runs into the script cache of
// every server of the deployment: each master and replica of a cluster (as
// the cluster is now, masters added since the client started included), or
// the one server of any other client. The store runs scripts by their SHA
// and loads them again by itself where a server answers NOSCRIPT (after a
// restart, a failover to a replica that never had them, a SCRIPT FLUSH);
// calling loadScripts at start-up saves that round trip. It returns the
// errors of the servers it could not load them on, joined.
func (s *Store) loadScripts(ctx context.Context) error {
	load := func(ctx context.Context, c redis.Cmdable) error {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			// Not Script.Load: it reads the SHA from the reply, which a
			// pipeline has not received yet.
			for _, src := range scriptSources {
				p.ScriptLoad(ctx, src)
			}
			return nil
		})
		return err
	}
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		if err := load(ctx, s.rdb); err != nil {
			return fmt.Errorf("remote: load scripts: %w", err)
		}
		return nil
	}
	var (
		mu   sync.Mutex // protects errs
		errs []error
	)
	err := cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
		if err := load(ctx, c); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("remote: load scripts on %s: %w", c.Options().Addr, err))
			mu.Unlock()
		}
		return nil // every node gets its try
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("remote: load scripts: %w", err))
	}
	return errors.Join(errs...)
}
