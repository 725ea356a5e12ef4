package tiered

import (
	"context"
	"sync"
	"time"

	"github.com/tiercache/tiercache/remote"
)

// The leases a run holds: renewed while a slow load runs, released when
// it fails.

// release gives leases up after a failed load, so the next reader loads at
// once instead of waiting for them to expire.
func (r *run[V]) release(ls []remote.Lease) {
	if len(ls) == 0 || r.g.c.noRelease {
		return
	}
	c := r.g.c
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), c.opts.RedisTimeout)
	defer cancel()
	if err := c.store.ReleaseMany(ctx, ls); err != nil {
		c.redisFailed(&r.g.st, r.g.name, "release", "", err)
	}
}

// renewer extends the leases of a load that runs longer than a third of
// LeaseTTL, every LeaseTTL/3, with a compare-and-PEXPIRE each. A lease
// found gone is lost: counted, logged, and not filled.
type renewer[V any] struct {
	r      *run[V]
	leases map[string]remote.Lease
	mu     sync.Mutex // held while renewing; protects t, stopped, lost
	t      *time.Timer
	done   bool
	lost   map[string]bool
}

func (r *run[V]) renew(leases map[string]remote.Lease) *renewer[V] {
	rn := &renewer[V]{r: r, leases: leases}
	if len(leases) > 0 {
		rn.mu.Lock() // a tick waits for rn.t
		rn.t = time.AfterFunc(r.g.c.opts.LeaseTTL/3, rn.tick)
		rn.mu.Unlock()
	}
	return rn
}

func (rn *renewer[V]) tick() {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.done {
		return
	}
	g, c := rn.r.g, rn.r.g.c
	for id, l := range rn.leases {
		if rn.lost[id] {
			continue
		}
		ok, err := c.store.Renew(rn.r.ctx, l, c.opts.LeaseTTL)
		switch {
		case err != nil:
			c.redisFailed(&g.st, g.name, "renew lease", l.Key, err)
		case ok:
			g.record(Event{Kind: EventLeaseRenewed})
		default:
			if rn.lost == nil {
				rn.lost = make(map[string]bool)
			}
			rn.lost[id] = true
			g.record(Event{Kind: EventLeaseLost})
			c.log.Warn("tiered: a slow load lost its lease; its value will not be cached", "group", g.name, "key", l.Key)
		}
	}
	rn.t.Reset(c.opts.LeaseTTL / 3)
}

// stop ends the renewals (waiting for one in progress) and returns the ids
// whose lease was lost.
func (rn *renewer[V]) stop() map[string]bool {
	if rn.t == nil {
		return nil
	}
	rn.t.Stop()
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.done = true
	return rn.lost
}
