package remote_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/tiercache/tiercache/remote"
)

// TestBreakersOpenCount: BreakersOpen counts the endpoints whose breaker
// refuses calls now. An endpoint that opened and that no call reaches any
// more (a master a failover replaced) stops counting once its cool-down
// ends, instead of counting forever for lack of a probe.
func TestBreakersOpenCount(t *testing.T) {
	fc := newFakeCluster(t, "ns")
	bs := newBreakerStore(t, fc.rdb, remote.Options{Namespace: "ns", BreakerFailures: 2, BreakerCooldown: time.Second})
	ctx := context.Background()
	if _, err := bs.GetMany(ctx, []string{fc.aKey[0], fc.bKey[0]}); err != nil {
		t.Fatal(err)
	}
	if n := bs.BreakersOpen(); n != 0 {
		t.Fatalf("BreakersOpen() with both masters answering = %d; want 0", n)
	}
	fc.b.SetError(loading)
	for range 2 {
		_, _ = bs.Get(ctx, fc.bKey[0])
	}
	bs.expect(t, fc.epB, true)
	if n := bs.BreakersOpen(); n != 1 {
		t.Fatalf("BreakersOpen() with b open = %d; want 1", n)
	}
	bs.cool(time.Second)
	if n := bs.BreakersOpen(); n != 0 {
		t.Fatalf("BreakersOpen() after b's cool-down, no call since = %d; want 0", n)
	}
	if _, err := bs.Get(ctx, fc.bKey[0]); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("probe of b = %v; want b's error", err)
	}
	if n := bs.BreakersOpen(); n != 1 {
		t.Fatalf("BreakersOpen() after a failed probe = %d; want 1", n)
	}
	fc.b.SetError("")
	bs.cool(time.Second)
	if _, err := bs.Get(ctx, fc.bKey[0]); err != nil {
		t.Fatalf("probe of b after it recovered = %v", err)
	}
	bs.expect(t, fc.epB, false)
	if n := bs.BreakersOpen(); n != 0 {
		t.Fatalf("BreakersOpen() after b closed = %d; want 0", n)
	}
}

// TestBreakersOpenOneEndpoint: the count of a single server, and 0 with
// the breakers off.
func TestBreakersOpenOneEndpoint(t *testing.T) {
	m := miniredis.RunT(t)
	bs := newBreakerStore(t, miniClient(t, m), remote.Options{BreakerFailures: 1, BreakerCooldown: time.Second})
	ctx := context.Background()
	m.SetError(loading)
	_, _ = bs.Get(ctx, "k")
	if n := bs.BreakersOpen(); n != 1 {
		t.Fatalf("BreakersOpen() with the server's breaker open = %d; want 1", n)
	}
	off, err := remote.New(miniClient(t, m), remote.Options{DisableBreaker: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = off.Get(ctx, "k")
	if n := off.BreakersOpen(); n != 0 {
		t.Fatalf("BreakersOpen() with the breakers off = %d; want 0", n)
	}
}
