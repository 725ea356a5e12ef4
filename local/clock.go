package local

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is the cheap clock entries are checked against. Now returns unix
// nanoseconds; it must be safe for concurrent use and fast (it is read on
// every hit).
type Clock interface {
	Now() int64
}

// DefaultResolution is the resolution of a [TickingClock] made with 0.
const DefaultResolution = time.Millisecond

// TickingClock is a [Clock] that one goroutine updates every resolution
// with time.Now, so that reading it is one atomic load, never a wall-clock
// read. It lags real time by at most its resolution: subtract
// [TickingClock.Resolution] from an expiry that must not be overrun.
type TickingClock struct {
	now  atomic.Int64
	res  time.Duration
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewTickingClock starts a clock of the given resolution (0 means
// [DefaultResolution]). Stop stops its goroutine.
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

// Resolution returns how far the clock may lag real time.
func (c *TickingClock) Resolution() time.Duration { return c.res }

// Stop stops the clock's goroutine and waits for it; Now keeps returning
// the last tick. It is idempotent.
func (c *TickingClock) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

// ManualClock is a [Clock] that moves only when told, for tests.
type ManualClock struct{ now atomic.Int64 }

// NewManualClock returns a clock that reads t.
func NewManualClock(t time.Time) *ManualClock {
	c := &ManualClock{}
	c.now.Store(t.UnixNano())
	return c
}

// Now returns the clock's time in unix nanoseconds.
func (c *ManualClock) Now() int64 { return c.now.Load() }

// Add moves the clock by d.
func (c *ManualClock) Add(d time.Duration) { c.now.Add(int64(d)) }

// Set sets the clock to t.
func (c *ManualClock) Set(t time.Time) { c.now.Store(t.UnixNano()) }
