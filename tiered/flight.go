package tiered

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// PanicError is what every caller waiting on a load receives, as a panic,
// when the loader panicked: the value it panicked with and the loader
// goroutine's stack. The process never crashes from the loader's goroutine;
// each waiting caller re-panics on its own goroutine.
type PanicError struct {
	Value any
	Stack []byte
}

// Error describes the panic.
func (p *PanicError) Error() string {
	return fmt.Sprintf("tiered: loader panicked: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns the panic value when it is an error.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// errGoexit is the result of a load whose loader called runtime.Goexit.
var errGoexit = errors.New("tiered: loader called runtime.Goexit")

// flight is one load in progress; its fields are written once, before done
// is closed.
type flight struct {
	done  chan struct{}
	val   any
	err   error
	panic *PanicError
}

// flights collapses concurrent loads of one key into one. Unlike x/sync's
// singleflight, every caller waits on its own ctx, the load runs on its own
// goroutine whatever happens to the callers, and a panic is handed to the
// callers instead of being re-thrown on a goroutine nobody can recover.
type flights struct {
	mu      sync.Mutex // protects m and closed
	m       map[string]*flight
	closed  bool
	running sync.WaitGroup // loads in progress, waited for by close

	// onPanic, if set, is told of every loader panic, whether or not a
	// caller is still waiting to receive it.
	onPanic func(key string, p *PanicError)

	// noForget makes forget do nothing, so that a test can show it
	// catches the stale reads forget prevents; nothing else may set it.
	noForget atomic.Bool
}

// join returns the load of key in progress and joined = true, or registers
// a new one that the caller leads (joined = false): the leader must then
// call either start or finish exactly once.
func (f *flights) join(key string) (fl *flight, joined bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, false, ErrClosed
	}
	if fl, joined = f.m[key]; joined {
		return fl, true, nil
	}
	if f.m == nil {
		f.m = make(map[string]*flight)
	}
	fl = &flight{done: make(chan struct{})}
	f.m[key] = fl
	f.running.Add(1)
	return fl, false, nil
}

// start runs fn on a new goroutine as the rest of the load fl leads.
func (f *flights) start(key string, fl *flight, fn func() (any, error)) {
	go f.run(key, fl, fn)
}

// finish ends the load fl with an outcome the leader already has.
func (f *flights) finish(key string, fl *flight, v any, err error) {
	fl.val, fl.err = v, err
	f.end(key, fl)
}

func (f *flights) end(key string, fl *flight) {
	f.mu.Lock()
	if f.m[key] == fl { // not forgotten and replaced by a newer load
		delete(f.m, key)
	}
	f.mu.Unlock()
	close(fl.done)
	f.running.Done()
}

// forget detaches the loads in progress of keys and of the keys that
// match accepts (match may be nil): callers that come after an
// invalidation then start a new load instead of joining one that began
// before it and may return the old value. A detached load goes on for the
// callers it has, and cannot fill (the invalidation vetoes its fill).
func (f *flights) forget(keys []string, match func(string) bool) {
	if f.noForget.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.m, k)
	}
	if match != nil {
		for k := range f.m {
			if match(k) {
				delete(f.m, k)
			}
		}
	}
}

// wait returns the outcome of the load, or ctx.Err() as soon as ctx is done
// (the load goes on for the others). If the loader panicked, wait panics
// with the *PanicError.
func (fl *flight) wait(ctx context.Context) (any, error) {
	select {
	case <-fl.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if fl.panic != nil {
		panic(fl.panic)
	}
	return fl.val, fl.err
}

// run calls fn and publishes its outcome; a panic in fn is recovered and
// published as a *PanicError.
func (f *flights) run(key string, fl *flight, fn func() (any, error)) {
	returned := false
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				fl.panic = &PanicError{Value: r, Stack: debug.Stack()}
				if f.onPanic != nil {
					f.onPanic(key, fl.panic)
				}
			} else {
				fl.err = errGoexit
			}
		}
		f.end(key, fl)
	}()
	fl.val, fl.err = fn()
	returned = true
}

// close makes later calls of do return ErrClosed and waits for the loads in
// progress to end.
func (f *flights) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.running.Wait()
}
