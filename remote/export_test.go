package remote

// UseLeaseScript makes s take leases with the script that stands in for SET
// NX PX GET on servers older than Redis 7.0.
func UseLeaseScript(s *Store) { s.noSetGet.Store(true) }
