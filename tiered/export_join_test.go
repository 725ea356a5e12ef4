package tiered

// SetNoForget makes invalidations leave the loads in flight joinable (true),
// so that a test can show it catches the stale reads that follows.
func SetNoForget(c *Cache, off bool) { c.flights.noForget.Store(off) }
