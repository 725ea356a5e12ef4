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
	mu    sync.Mutex // protects items
	items []invalidation
	wake  chan struct{}
}

func newRetryQueue() *retryQueue { return &retryQueue{wake: make(chan struct{}, 1)} }

// add queues inv until now+ttl: after that, every value it was meant to
// remove has expired anyway.
func (q *retryQueue) add(inv invalidation, ttl time.Duration) (dropped bool) {
	inv.deadline = time.Now().Add(ttl)
	q.mu.Lock()
	if len(q.items) >= maxRetries {
		q.items = q.items[1:]
		dropped = true
	}
	q.items = append(q.items, inv)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped
}

func (q *retryQueue) take() []invalidation {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

func (q *retryQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
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
			c.log.Warn("tiered: giving up an invalidation: the values it removes have expired", "keys", inv.keys, "patterns", inv.patterns)
			continue
		}
		ctx, cancel := context.WithTimeout(c.closing, c.opts.RedisTimeout*4)
		err := c.invalidate(ctx, inv, false)
		cancel()
		if err != nil {
			c.requeue(inv)
			continue
		}
		c.stats.record(c.rec, Event{Kind: EventInvalidationRetried})
	}
	return c.retries.len() == 0
}

func (c *Cache) requeue(inv invalidation) {
	c.retries.mu.Lock()
	c.retries.items = append(c.retries.items, inv)
	c.retries.mu.Unlock()
}

// PendingInvalidations returns how many failed invalidations wait for a
// background retry.
func (c *Cache) PendingInvalidations() int { return c.retries.len() }
