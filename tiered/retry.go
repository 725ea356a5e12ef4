package tiered

import (
	"context"
	"sync"
	"time"
)

// maxRetries bounds the invalidations waiting for a retry; past it the
// oldest is dropped (and logged).
const maxRetries = 10000

// retryQueue holds invalidations that did not reach Redis or the bus.
type retryQueue struct {
	mu    sync.Mutex // protects items and busy
	items []invalidation
	busy  int // taken by the retry loop and not yet settled
	wake  chan struct{}
}

func newRetryQueue() *retryQueue { return &retryQueue{wake: make(chan struct{}, 1)} }

// add queues inv until now+ttl: after that, every value it was meant to
// remove has expired anyway. It wakes the retry loop.
func (q *retryQueue) add(inv invalidation, ttl time.Duration) (dropped bool) {
	inv.deadline = time.Now().Add(ttl)
	dropped = q.push(inv)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped
}

// push queues inv, dropping the oldest invalidation past maxRetries.
func (q *retryQueue) push(inv invalidation) (dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= maxRetries {
		q.items = q.items[1:]
		dropped = true
	}
	q.items = append(q.items, inv)
	return dropped
}

// queueRetry queues inv for a background retry until ttl has passed,
// logging when the queue is full and the oldest invalidation is dropped.
func (c *Cache) queueRetry(inv invalidation, ttl time.Duration) {
	if c.retries.add(inv, ttl) {
		c.log.Error("tiered: retry queue full; dropped the oldest failed invalidation", "max", maxRetries)
	}
}

// take hands every queued invalidation to the retry loop, which settles
// each with retried or failed.
func (q *retryQueue) take() []invalidation {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	q.busy = len(items)
	return items
}

// settled ends one taken invalidation: done, or queued again (no wake: the
// loop backs off before the next try). It reports whether inv was to be
// queued again but the queue, filled meanwhile by new failures, was full.
func (q *retryQueue) settled(inv invalidation, again bool) (dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.busy--
	if !again {
		return false
	}
	if len(q.items) >= maxRetries {
		return true
	}
	q.items = append(q.items, inv)
	return false
}

// len counts the invalidations waiting, those being retried included.
func (q *retryQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) + q.busy
}

// retryLoop retries queued invalidations with a growing backoff until Close.
func (c *Cache) retryLoop() {
	defer c.bg.Done()
	const first, most = 50 * time.Millisecond, 5 * time.Second
	backoff := first
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-c.closing.Done():
			return
		case <-c.retries.wake:
		case <-timer.C:
		}
		if c.retryOnce() {
			backoff = first
			continue
		}
		timer.Reset(backoff)
		backoff = min(backoff*2, most)
	}
}

// retryOnce tries every queued invalidation once and reports whether the
// queue is empty afterwards.
func (c *Cache) retryOnce() bool {
	now := time.Now()
	for _, inv := range c.retries.take() {
		if now.After(inv.deadline) {
			c.retries.settled(inv, false)
			c.log.Warn("tiered: giving up an invalidation: the values it removes have expired", "keys", inv.keys, "patterns", inv.patterns, "tags", inv.tags)
			continue
		}
		ctx, cancel := context.WithTimeout(c.closing, c.opts.RedisTimeout*4)
		err := c.invalidate(ctx, inv, false)
		cancel()
		if c.retries.settled(inv, err != nil) {
			c.log.Error("tiered: retry queue full; dropped a failed invalidation that failed again", "max", maxRetries,
				"keys", inv.keys, "patterns", inv.patterns, "tags", inv.tags, "err", err)
		}
		if err == nil {
			c.stats.record(c.rec, Event{Kind: EventInvalidationRetried})
		}
	}
	return c.retries.len() == 0
}

// PendingInvalidations returns how many failed invalidations wait for a
// background retry.
func (c *Cache) PendingInvalidations() int { return c.retries.len() }
