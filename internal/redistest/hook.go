package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrInjected is the error of a pipeline that a [FailHook] failed.
var ErrInjected = errors.New("redistest: injected pipeline failure")

// FailHook is a go-redis hook (add it with AddHook) that fails pipelines
// when a test asks, for faults a proxy cannot place precisely: a pipeline
// that never reached the server, or one the server ran whose replies were
// lost; and the same for single commands. Dials pass through. Its methods
// are safe for concurrent use.
type FailHook struct {
	mu    sync.Mutex // protects pipes and cmds
	pipes failures
	cmds  failures
}

// failures is what is left of one FailHook order.
type failures struct {
	n    int  // calls still to fail
	sent bool // send them to the server before failing them
}

// FailPipelines makes the next n pipelines fail with ErrInjected. With
// sent, each is first sent and run by the server (its replies are then
// dropped, as when a connection breaks after the server answered);
// otherwise none of its commands reaches the server.
func (h *FailHook) FailPipelines(n int, sent bool) { h.order(&h.pipes, n, sent) }

// FailCommands is FailPipelines for single commands (not in a pipeline).
func (h *FailHook) FailCommands(n int, sent bool) { h.order(&h.cmds, n, sent) }

func (h *FailHook) order(f *failures, n int, sent bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*f = failures{n: n, sent: sent}
}

// Pending returns how many of the pipelines and commands asked to fail
// have not come yet.
func (h *FailHook) Pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pipes.n + h.cmds.n
}

// take reports whether the next call of f's kind fails, and whether it is
// sent first.
func (h *FailHook) take(f *failures) (fail, sent bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.n == 0 {
		return false, false
	}
	f.n--
	return true, f.sent
}

// DialHook implements redis.Hook: dials pass through.
func (*FailHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook implements redis.Hook: it fails the single commands asked
// for.
func (h *FailHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		fail, sent := h.take(&h.cmds)
		if !fail {
			return next(ctx, cmd)
		}
		if sent {
			_ = next(ctx, cmd) // the server runs it; the reply is lost
		}
		cmd.SetErr(ErrInjected)
		return ErrInjected
	}
}

// ProcessPipelineHook implements redis.Hook: it fails the pipelines asked
// for, setting ErrInjected on each of their commands.
func (h *FailHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		fail, sent := h.take(&h.pipes)
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

// OldServerHook is a go-redis hook (add it with AddHook) that makes a
// client see a server older than Redis 7.0, which rejects SET with both NX
// and GET: such a command, alone or in a pipeline, fails with "ERR syntax
// error" without reaching the server. Everything else passes through.
type OldServerHook struct {
	mu       sync.Mutex // protects rejected
	rejected int
}

// Rejected returns how many SET NX GET commands the hook rejected.
func (h *OldServerHook) Rejected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rejected
}

// replyError is an error reply, as go-redis reports it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

const syntaxError = replyError("ERR syntax error")

// setNXGet reports whether cmd is a SET with both NX and GET.
func setNXGet(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) == 0 || !strings.EqualFold(fmt.Sprint(args[0]), "set") {
		return false
	}
	var nx, get bool
	for _, a := range args[3:] {
		switch strings.ToLower(fmt.Sprint(a)) {
		case "nx":
			nx = true
		case "get":
			get = true
		}
	}
	return nx && get
}

// reject fails cmd if it is a SET NX GET, and reports whether it did.
func (h *OldServerHook) reject(cmd redis.Cmder) bool {
	if !setNXGet(cmd) {
		return false
	}
	h.mu.Lock()
	h.rejected++
	h.mu.Unlock()
	cmd.SetErr(syntaxError)
	return true
}

// DialHook implements redis.Hook: dials pass through.
func (*OldServerHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook implements redis.Hook.
func (h *OldServerHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.reject(cmd) {
			return syntaxError
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook: the SET NX GETs of a
// pipeline fail, the other commands run, and the pipeline returns the
// first error, as go-redis does.
func (h *OldServerHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var rest []redis.Cmder
		for _, c := range cmds {
			if !h.reject(c) {
				rest = append(rest, c)
			}
		}
		var err error
		if len(rest) > 0 {
			err = next(ctx, rest)
		}
		for _, c := range cmds {
			if e := c.Err(); e != nil {
				return e
			}
		}
		return err
	}
}
