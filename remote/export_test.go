package remote

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
