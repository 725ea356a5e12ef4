package remote

import "github.com/redis/go-redis/v9"

// Every script touches exactly one key (KEYS[1]), so each runs on the key's
// own node of a cluster. ARGV[1] is always the identity (the first 11
// envelope bytes) of the write the caller expects the key to hold.

// acquireScript returns the key's current string, or takes the lease
// (ARGV[1] = lease envelope, ARGV[2] = PX) and returns nil: reading and
// taking are one atomic step. It stands in for SET NX PX GET on servers
// older than Redis 7.0.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
`)

// fillScript replaces the key with ARGV[2] (PX ARGV[3]) only while it holds
// the lease whose identity is ARGV[1].
var fillScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 11) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`)

// releaseScript deletes the key only while it holds the lease ARGV[1].
var releaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 11) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// renewScript extends the lease ARGV[1] to PX ARGV[2] only while the key
// still holds it.
var renewScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 11) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// discardScript deletes the key only while it holds exactly ARGV[1]: a
// corrupt value is removed, never someone else's newer one.
var discardScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)
