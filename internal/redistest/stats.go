package redistest

import "context"

// Stats is a snapshot of a proxy's connection counts.
type Stats struct {
	// Conns is the number of open proxied connections: accepted, connected
	// to the target, and neither closed by either side nor reset.
	Conns int
	// Accepted is the number of connections accepted so far, including the
	// ones closed at once because the proxy was cut or the target was down.
	Accepted int
}

// Stats returns the proxy's current counts.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.statsLocked()
}

func (p *Proxy) statsLocked() Stats {
	return Stats{Conns: len(p.conns), Accepted: p.accepted}
}

// Conns returns the number of open proxied connections (see [Stats]).
func (p *Proxy) Conns() int { return p.Stats().Conns }

// Accepted returns the number of connections accepted so far (see [Stats]).
func (p *Proxy) Accepted() int { return p.Stats().Accepted }

// Wait blocks until cond holds for the proxy's [Stats], and returns nil;
// or until ctx is done, and returns ctx.Err(); or until the proxy is
// closed with cond still false, and returns [ErrClosed]. It calls cond,
// outside any lock, once at first and again after every change of the
// proxy's state, never concurrently; cond must not block. Waiting is
// driven by notifications, not by polling.
func (p *Proxy) Wait(ctx context.Context, cond func(Stats) bool) error {
	for {
		p.mu.Lock()
		st, changed, closed := p.statsLocked(), p.changed, p.closed
		p.mu.Unlock()
		if cond(st) {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitConns blocks until at least n proxied connections are open, as
// [Proxy.Wait] does.
func (p *Proxy) WaitConns(ctx context.Context, n int) error {
	return p.Wait(ctx, func(s Stats) bool { return s.Conns >= n })
}
