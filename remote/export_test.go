package remote

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// UseLeaseScript makes s take leases with the script that stands in for SET
// NX PX GET on servers older than Redis 7.0.
func UseLeaseScript(s *Store) { s.noSetGet.Store(true) }

// BreakerOpen reports whether the breaker of endpoint (an address, as
// OnBreaker names it, or "cluster") refuses calls now. It is false for an
// endpoint the store has not called and with the breakers off.
func BreakerOpen(s *Store, endpoint string) bool {
	if s.brk == nil {
		return false
	}
	if b := s.brk.one; b != nil {
		return b.endpoint == endpoint && b.isOpen()
	}
	if s.brk.fallback.endpoint == endpoint {
		return s.brk.fallback.isOpen()
	}
	if b := (*s.brk.byAddr.Load())[endpoint]; b != nil {
		return b.isOpen()
	}
	return false
}

// SetBreakerClock makes the breakers of s read the time from now
// (nanoseconds on any fixed origin) instead of the monotonic clock.
func SetBreakerClock(s *Store, now func() int64) { s.brk.cfg.now = now }

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

// SetKeepAbandoned makes a failed AcquireMany of s leave the leases it may
// have taken in place.
func SetKeepAbandoned(s *Store, on bool) { s.keepAbandoned = on }

// FillMany is [Store.Fill] for many leases in one pipeline, without
// hand-offs. The results are in the order of fills.
func (s *Store) FillMany(ctx context.Context, fills []Fill) ([]bool, error) {
	return s.FillHandOff(ctx, fills, nil)
}

// LoadScripts loads every script the store runs on every server of the
// deployment (see loadScripts).
func (s *Store) LoadScripts(ctx context.Context) error { return s.loadScripts(ctx) }

// Decode is decode: what a read of raw bytes finds.
func Decode(raw []byte) Record { return decode(raw) }
