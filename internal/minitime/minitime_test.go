package minitime_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/minitime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestFollowExpiresKeys: a key with a TTL expires by itself once the clock
// follows the wall clock, and stop ends the goroutine (goleak checks).
func TestFollowExpiresKeys(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	stop := minitime.Follow(m, time.Millisecond)
	defer stop()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 20*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second) // a hang guard
	for m.Exists("k") {
		if time.Now().After(deadline) {
			t.Fatal("the key never expired: the clock does not follow")
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	stop() // a second call returns too
}
