package redistest

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrInjected is the error of a pipeline that a [FailHook] failed.
var ErrInjected = errors.New("redistest: injected pipeline failure")

// FailHook is a go-redis hook (add it with AddHook) that fails pipelines
// when a test asks, for faults a proxy cannot place precisely: a pipeline
// that never reached the server, or one the server ran whose replies were
// lost. Single commands and dials pass through. Its methods are safe for
// concurrent use.
type FailHook struct {
	mu   sync.Mutex // protects the fields below
	n    int        // pipelines still to fail
	sent bool       // send them to the server before failing them
}

// FailPipelines makes the next n pipelines fail with ErrInjected. With
// sent, each is first sent and run by the server (its replies are then
// dropped, as when a connection breaks after the server answered);
// otherwise none of its commands reaches the server.
func (h *FailHook) FailPipelines(n int, sent bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n, h.sent = n, sent
}

// Pending returns how many of the pipelines asked to fail have not come yet.
func (h *FailHook) Pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// take reports whether this pipeline fails, and whether it is sent first.
func (h *FailHook) take() (fail, sent bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return false, false
	}
	h.n--
	return true, h.sent
}

// DialHook implements redis.Hook: dials pass through.
func (*FailHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook implements redis.Hook: single commands pass through.
func (*FailHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { return next(ctx, cmd) }
}

// ProcessPipelineHook implements redis.Hook: it fails the pipelines asked
// for, setting ErrInjected on each of their commands.
func (h *FailHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		fail, sent := h.take()
		if !fail {
			return next(ctx, cmds)
		}
		if sent {
			_ = next(ctx, cmds) // the server runs them; the replies are lost
		}
		for _, c := range cmds {
			c.SetErr(ErrInjected)
		}
		return ErrInjected
	}
}
