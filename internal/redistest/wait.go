package redistest

import (
	"context"
	"errors"
	"testing"
	"time"
)

const (
	// pollInterval is how often a wait for servers to converge asks again.
	pollInterval = 20 * time.Millisecond
	// convergeTimeout bounds how long servers may take to agree after a
	// change (a join, a failover, a slot move).
	convergeTimeout = 30 * time.Second
	// adminTimeout bounds one administrative command.
	adminTimeout = 5 * time.Second
)

// errPending is what a condition reports when nothing failed but the
// servers have not converged yet.
var errPending = errors.New("not yet")

// waitUntil calls cond every pollInterval until it returns nil, and fails
// the test with cond's last error when it has not within timeout. It is a
// bounded wait for servers to converge (gossip, elections, replication
// handshakes have their own timers), not a way to order a test's steps.
func waitUntil(t testing.TB, what string, timeout time.Duration, cond func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		err := cond(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s: not reached within %v: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// adminCtx returns a context bounding one administrative command.
func adminCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), adminTimeout)
}
