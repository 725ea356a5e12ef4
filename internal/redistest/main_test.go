package redistest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/redistest"
)

func TestMain(m *testing.M) {
	redistest.QuietRedisLog()
	goleak.VerifyTestMain(m)
}
