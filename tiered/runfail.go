package tiered

import "fmt"

// What a run does when Redis fails or Close cuts it short.

// failed handles a failed Redis call of the run: with FailClosed the ids
// get the error and failed returns none; otherwise it records the failure
// and returns ids, to be loaded without filling. A call cut short by Close
// is not a Redis failure: the ids get ErrClosed.
func (r *run[V]) failed(op string, ids []string, err error) []string {
	g := r.g
	if r.ctx.Err() != nil {
		r.closed(ids)
		return nil
	}
	if g.c.opts.FailClosed {
		r.fail(op, ids, err)
		return nil
	}
	key := ""
	if len(ids) == 1 {
		key = g.Key(ids[0])
	}
	g.c.redisFailed(&g.st, g.name, op, key, err)
	return ids
}

// closed delivers ErrClosed to ids: Close ended the run.
func (r *run[V]) closed(ids []string) {
	for _, id := range ids {
		r.done(id, *new(V), ErrClosed)
	}
}

// fail delivers the failed Redis call err to ids.
func (r *run[V]) fail(op string, ids []string, err error) {
	r.g.record(Event{Kind: EventRedisError, Err: err})
	err = fmt.Errorf("tiered: redis %s: %w", op, err)
	for _, id := range ids {
		r.done(id, *new(V), err)
	}
}

// redisFailed is failed for a call before the run took any lease: the ids
// left are loaded and kept in L1 for DegradedL1TTL only.
func (r *run[V]) redisFailed(op string, ids []string, err error) {
	if ids = r.failed(op, ids, err); len(ids) > 0 {
		r.loadL1Only(ids, true)
	}
}
