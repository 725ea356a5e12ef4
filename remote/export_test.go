package remote

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// UseLeaseScript makes s take leases with the script that stands in for SET
// NX PX GET on servers older than Redis 7.0.
func UseLeaseScript(s *Store) { s.noSetGet.Store(true) }

// AcquireWithTokens is AcquireMany with the lease tokens chosen by the
// test, so that it can send the same acquisition twice.
func AcquireWithTokens(ctx context.Context, s *Store, keys []string, ttl time.Duration, tokens []uint64) ([]Acquired, error) {
	return s.acquireMany(ctx, keys, ttl, tokens)
}

// ScriptSHAs returns the SHA1 of every script a Store runs.
func ScriptSHAs() []string {
	out := make([]string, len(scriptSources))
	for i, src := range scriptSources {
		out[i] = redis.NewScript(src).Hash()
	}
	return out
}

// SetSkipWait makes a store with WaitReplicas leave WAIT out of its
// writes.
func SetSkipWait(s *Store, on bool) { s.skipWait = on }
