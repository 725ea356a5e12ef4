package redistest

import (
	"context"
	"os"

	"github.com/redis/go-redis/v9"
)

// LogEnv is the environment variable that, set to "1", keeps go-redis's own
// log lines in test output (see [QuietRedisLog]).
const LogEnv = "TIERCACHE_REDIS_LOG"

// QuietRedisLog sends the log lines of go-redis itself (its package-wide
// logger: "connection pool: failed to dial after 5 attempts", sentinel
// notices) nowhere, unless the environment sets TIERCACHE_REDIS_LOG=1. The
// tests kill, cut and restart servers on purpose, and go-redis logs every
// dial that fails then: lines that read like failures and are not. What a
// test logs itself, and what tiercache logs through its slog.Logger, is
// untouched.
//
// It changes a process-wide setting of go-redis, so only test binaries may
// call it: every TestMain of a package whose tests use go-redis does, and
// [Start] does too. It is safe to call more than once and concurrently.
func QuietRedisLog() {
	if os.Getenv(LogEnv) != "1" {
		redis.SetLogger(discardLog{})
	}
}

// discardLog is a go-redis logger that writes nothing.
type discardLog struct{}

func (discardLog) Printf(context.Context, string, ...any) {}
