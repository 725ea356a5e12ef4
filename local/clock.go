package local

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is the cheap clock entries are checked against: Now returns unix
// nanoseconds. It is read on every hit, so it must be fast and safe for
// concurrent use. The cache reads a [TickingClock] with one atomic load,
// without calling Now.
type Clock interface {
	Now() int64
}

// DefaultResolution is the resolution of a [TickingClock] made with 0.
const DefaultResolution = time.Millisecond

// TickingClock is a [Clock] that one goroutine sets to time.Now every
// resolution, so that reading it is one atomic load, never a wall-clock
// read. It lags real time by up to its resolution (more if its goroutine
// is starved): a caller computing an expiry that must not be overrun
// subtracts [TickingClock.Resolution] from it. It is safe for concurrent
// use.
type TickingClock struct {
	now  atomic.Int64
	res  time.Duration
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewTickingClock starts a clock of the given resolution (0 or less means
// [DefaultResolution]). The caller must Stop it.
func NewTickingClock(resolution time.Duration) *TickingClock {
	if resolution <= 0 {
		resolution = DefaultResolution
	}
	c := &TickingClock{res: resolution, stop: make(chan struct{}), done: make(chan struct{})}
	c.now.Store(time.Now().UnixNano())
	go c.run()
	return c
}

func (c *TickingClock) run() {
	defer close(c.done)
	t := time.NewTicker(c.res)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.now.Store(now.UnixNano())
		}
	}
}

// Now returns the time of the last tick, in unix nanoseconds.
func (c *TickingClock) Now() int64 { return c.now.Load() }

// Resolution returns the clock's tick: how far it may lag real time.
func (c *TickingClock) Resolution() time.Duration { return c.res }

// Stop stops the clock's goroutine and waits for it to end; Now keeps
// returning the last tick. It is idempotent.
func (c *TickingClock) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

// addressedClock is a clock whose time the cache may load directly,
// saving an interface call per hit.
type addressedClock interface{ nowAddr() *atomic.Int64 }

func (c *TickingClock) nowAddr() *atomic.Int64 { return &c.now }
