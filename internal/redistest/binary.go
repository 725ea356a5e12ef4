package redistest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that turns a missing redis-server
// binary from a skipped test into a failed one, when it is set to "1".
const RequireEnv = "TIERCACHE_REQUIRE_REDIS"

// RequireRedis reports whether the environment requires a real Redis:
// whether TIERCACHE_REQUIRE_REDIS is exactly "1".
func RequireRedis() bool { return os.Getenv(RequireEnv) == "1" }

// Binary returns the path of the redis-server binary found on PATH. When
// there is none it skips the test, or fails it when [RequireRedis] holds;
// either way it does not return then. It must be called from the goroutine
// running the test, like t.Skip.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	switch decide(err == nil, os.Getenv(RequireEnv)) {
	case failTest:
		t.Fatalf("redistest: redis-server not found on PATH (%v) and %s=1; install it (Debian: apt-get install redis-server)", err, RequireEnv)
	case skipTest:
		t.Skipf("redistest: redis-server not found on PATH; skipping (install it, e.g. apt-get install redis-server, and set %s=1 to make this a failure)", RequireEnv)
	}
	return path
}

// verdict is what to do about the redis-server binary.
type verdict int

const (
	useBinary verdict = iota // it was found
	skipTest                 // it is missing and may be
	failTest                 // it is missing and required
)

// decide says what to do given whether the binary was found and the value
// of [RequireEnv].
func decide(found bool, env string) verdict {
	switch {
	case found:
		return useBinary
	case env == "1":
		return failTest
	default:
		return skipTest
	}
}
