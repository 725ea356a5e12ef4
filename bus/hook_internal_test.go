package bus

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestClosedBusHookAllocatesNothing: go-redis cannot remove a hook, so every
// bus ever made on a client keeps its kick hook on it; a closed bus's hook
// must cost a command nothing but a few loads. (Before, it allocated once
// per command, so a client shared by caches made and closed in turn grew
// slower with each one.)
func TestClosedBusHookAllocatesNothing(t *testing.T) {
	b := &Bus{kicks: make(chan struct{}, 1)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.waiting.Store(true) // as a closed bus's receive loop leaves it
	b.cancel()
	next := func(context.Context, redis.Cmder) error { return nil }
	h := kickHook{b: b}.ProcessHook(next)
	cmd := redis.NewStatusCmd(context.Background(), "ping")
	if n := testing.AllocsPerRun(100, func() { _ = h(context.Background(), cmd) }); n != 0 {
		t.Fatalf("a closed bus's hook allocates %v times per command; want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = answered(nil) }); n != 0 {
		t.Fatalf("answered(nil) allocates %v times; want 0", n)
	}
}
