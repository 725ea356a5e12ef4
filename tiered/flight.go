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

// flight is one load in progress; its outcome fields are written once,
// before done is closed. done is made only when someone waits (a caller
// that joins, or the leader itself), so that a load nobody waits for (an
// L2 hit without contention) costs no channel; such a flight is recycled.
type flight struct {
	done  chan struct{} // made under flights.mu by the first waiter
	ended bool          // under flights.mu
	val   any
	err   error
	panic *PanicError
}

var flightPool = sync.Pool{New: func() any { return new(flight) }}

// flights collapses concurrent loads of one key into one. Unlike x/sync's
// singleflight, every caller waits on its own ctx, the load runs on its own
// goroutine whatever happens to the callers, and a panic is handed to the
// callers instead of being re-thrown on a goroutine nobody can recover.
type flights struct {
	mu      sync.Mutex // protects m and closed
	m       map[string]*flight
	closed  bool
	running sync.WaitGroup // loads in progress, waited for by close

	// noForget makes forget and forgetMatching do nothing, so that a test
	// can show it catches the stale read they prevent.
	noForget atomic.Bool

	// onPanic, if set, is told of every loader panic, whether or not a
	// caller is still waiting to receive it.
	onPanic func(key string, p *PanicError)
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
		fl.doneLocked()
		return fl, true, nil
	}
	if f.m == nil {
		f.m = make(map[string]*flight)
	}
	fl = flightPool.Get().(*flight)
	*fl = flight{}
	f.m[key] = fl
	f.running.Add(1)
	return fl, false, nil
}

// start runs fn on a new goroutine as the rest of the load fl leads.
func (f *flights) start(key string, fl *flight, fn func() (any, error)) {
	go f.run(key, fl, fn)
}

// lead is start for a load whose leader is a caller with ctx: when ctx
// can never be cancelled (it has no Done channel), the caller would only
// wait for the outcome, so fn runs on its goroutine, which saves the
// goroutine and the hand-over to it (a miss's largest cost after its round
// trips on a busy machine). A panic of fn reaches every waiter as it
// would from a goroutine; a runtime.Goexit in the loader then ends the
// caller's goroutine (the others waiting receive errGoexit), as if it had
// called the loader itself.
func (f *flights) lead(ctx context.Context, key string, fl *flight, fn func() (any, error)) {
	if ctx.Done() == nil {
		f.run(key, fl, fn)
		return
	}
	go f.run(key, fl, fn)
}

// startMany runs fn on a new goroutine as the rest of the loads fls (of
// keys), which one caller leads together. fn calls finish(i, ...) for the
// load fls[i], once each, on its own goroutine; a load fn leaves
// unfinished ends with errNotLoaded, or with fn's panic.
func (f *flights) startMany(keys []string, fls []*flight, fn func(finish func(i int, v any, err error))) {
	go func() {
		ended := make([]bool, len(fls))
		finish := func(i int, v any, err error) {
			if !ended[i] {
				ended[i] = true
				f.finish(keys[i], fls[i], v, err)
			}
		}
		returned := false
		defer func() {
			var pe *PanicError
			err := errNotLoaded
			if !returned {
				if r := recover(); r != nil {
					pe = asPanicError(r)
					if f.onPanic != nil {
						f.onPanic(keys[0], pe)
					}
				} else {
					err = errGoexit
				}
			}
			for i, fl := range fls {
				if !ended[i] {
					ended[i] = true
					fl.panic = pe
					f.finish(keys[i], fl, nil, err)
				}
			}
		}()
		fn(finish)
		returned = true
	}()
}

// errNotLoaded ends a load that its batch left without an outcome.
var errNotLoaded = errors.New("tiered: the batch ended without loading this id")

// finish ends the load fl with an outcome the leader already has.
func (f *flights) finish(key string, fl *flight, v any, err error) {
	fl.val, fl.err = v, err
	f.end(key, fl)
}

func (f *flights) end(key string, fl *flight) {
	f.mu.Lock()
	f.detachLocked(key, fl)
	fl.ended = true
	done := fl.done
	f.mu.Unlock()
	if done != nil {
		close(done)
	}
	f.running.Done()
}

// endUnwaited ends the load fl if nobody waits for it, recycling it, and
// reports whether it did; otherwise the leader must finish it. The leader
// of an L2 hit calls it first, so that an uncontended hit hands its value
// to nobody (and boxes nothing).
func (f *flights) endUnwaited(key string, fl *flight) bool {
	f.mu.Lock()
	if fl.done != nil {
		f.mu.Unlock()
		return false
	}
	f.detachLocked(key, fl)
	f.mu.Unlock()
	f.running.Done()
	flightPool.Put(fl)
	return true
}

// detachLocked removes fl from the map, if it is still there (an
// invalidation may have detached it already). f.mu must be held.
func (f *flights) detachLocked(key string, fl *flight) {
	if f.m[key] == fl {
		delete(f.m, key)
	}
}

// forget detaches the loads of keys in progress: they run on for the
// callers already waiting, but a new caller starts a new load.
func (f *flights) forget(keys []string) {
	if len(keys) == 0 || f.noForget.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		delete(f.m, k)
	}
}

// forgetMatching detaches the loads in progress whose key match accepts.
func (f *flights) forgetMatching(match func(string) bool) {
	if f.noForget.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.m {
		if match(k) {
			delete(f.m, k)
		}
	}
}

// doneLocked returns fl's done channel, making it if needed (closed if the
// load already ended). f.mu must be held.
func (fl *flight) doneLocked() chan struct{} {
	if fl.done == nil {
		fl.done = make(chan struct{})
		if fl.ended {
			close(fl.done)
		}
	}
	return fl.done
}

// doneChan returns the channel closed when fl ends.
func (f *flights) doneChan(fl *flight) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fl.doneLocked()
}

// wait returns the outcome of the load, or ctx.Err() as soon as ctx is done
// (the load goes on for the others). If the loader panicked, wait panics
// with the *PanicError.
func (f *flights) wait(ctx context.Context, fl *flight) (any, error) {
	select {
	case <-f.doneChan(fl):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if fl.panic != nil {
		panic(fl.panic)
	}
	return fl.val, fl.err
}

// asPanicError is the *PanicError of the recovered value r, with this
// goroutine's stack, unless r is one already: a loader that ran on a
// goroutine of its own (see callSoft) carries its own stack across.
func asPanicError(r any) *PanicError {
	if pe, ok := r.(*PanicError); ok {
		return pe
	}
	return &PanicError{Value: r, Stack: debug.Stack()}
}

// run calls fn and publishes its outcome; a panic in fn is recovered and
// published as a *PanicError.
func (f *flights) run(key string, fl *flight, fn func() (any, error)) {
	returned := false
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				fl.panic = asPanicError(r)
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
