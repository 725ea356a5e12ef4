package remote_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/redistest"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	// A go-redis pool whose dial failed (a killed cluster node) retries on
	// a goroutine that notices Close only after its one-second sleep.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}
