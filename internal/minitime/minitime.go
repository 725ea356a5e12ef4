// Package minitime keeps an embedded miniredis's clock on the wall clock.
// miniredis expires keys only when told that time passed; the examples and
// the benchmark harness want TTLs, leases and early refresh to behave as on
// Redis, so they let Follow move its clock.
package minitime

import (
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Follow sets m's clock to the wall clock and keeps it there, every tick
// (tick > 0), until the returned stop is called; stop waits for the
// goroutine it started to end and may be called more than once.
func Follow(m *miniredis.Miniredis, tick time.Duration) (stop func()) {
	m.SetTime(time.Now())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				m.SetTime(now)
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}
