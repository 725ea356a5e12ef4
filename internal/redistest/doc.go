// Package redistest starts real redis-server processes for tests, on free
// loopback ports, and puts a fault-injecting TCP proxy in front of them.
//
// A test that needs Redis calls [Start]; when the redis-server binary is
// missing the test is skipped with a clear message, unless the environment
// sets TIERCACHE_REQUIRE_REDIS=1 (as CI does), in which case it fails.
// Servers never touch the Redis a machine may already run on port 6379.
package redistest
