package tiered_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

func init() {
	failSafeCases["SoftTimeoutPanicLogged"] = failSafeSoftTimeoutPanicLogged
}

// logLines is an io.Writer that hands each log line to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // the test reads what it waits for; the rest may go
	}
	return len(p), nil
}

// failSafeSoftTimeoutPanicLogged: a Fetch whose soft timeout served the
// fallback leaves its load to go on; when that loader then panics, no
// caller is left to receive the panic, and the cache logs it as it logs
// any loader's panic.
func failSafeSoftTimeoutPanicLogged(t *testing.T, rdb redis.UniversalClient) {
	lines := make(logLines, 64)
	logTo := func(o *tiered.Options) { o.Logger = slog.New(slog.NewTextHandler(lines, nil)) }
	r := newFSRigWith(t, rdb, 1, tiered.GroupOptions{LoadSoftTimeout: time.Hour}, logTo)
	fire := make(chan time.Time, 1)
	tiered.SetSoftTimer(r.caches[0], func(time.Duration) *time.Timer {
		tm := time.NewTimer(time.Hour)
		tm.C = fire
		return tm
	})
	r.cached("sp")
	entered, release := make(chan struct{}), make(chan struct{})
	boom := func(context.Context, string) (string, error) {
		close(entered)
		<-release
		panic("late boom")
	}
	got := make(chan string, 1)
	go func() {
		v, fb, err := r.fetch(0, "sp", boom)
		if err != nil || !fb {
			t.Errorf("soft timeout: fallback %v, %v; want true, nil", fb, err)
		}
		got <- v
	}()
	<-entered
	fire <- time.Now()
	if v := <-got; v != "v1" {
		t.Fatalf("soft timeout served %q; want the fallback v1", v)
	}
	close(release)
	watch := time.After(softWatch)
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, "loader panicked") && strings.Contains(l, "late boom") {
				return
			}
		case <-watch:
			t.Fatalf("the panic of a load past its soft timeout was not logged within %v", softWatch)
		}
	}
}
