package tiered

import "sync"

// wakeTable routes wake notices (see Options.DisableWake) to the lease
// waits of this node: a wait registers the Redis keys it waits on with a
// channel, and a notice for one of them signals that channel, so that the
// wait reads Redis at once instead of at its next poll.
type wakeTable struct {
	mu    sync.Mutex
	waits map[string][]chan struct{} // by Redis key
}

// add registers ch for the Redis keys rkeys.
func (t *wakeTable) add(rkeys []string, ch chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.waits == nil {
		t.waits = make(map[string][]chan struct{})
	}
	for _, k := range rkeys {
		t.waits[k] = append(t.waits[k], ch)
	}
}

// remove unregisters ch from rkeys.
func (t *wakeTable) remove(rkeys []string, ch chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range rkeys {
		chs := t.waits[k]
		for i, c := range chs {
			if c == ch {
				chs = append(chs[:i], chs[i+1:]...)
				break
			}
		}
		if len(chs) == 0 {
			delete(t.waits, k)
		} else {
			t.waits[k] = chs
		}
	}
}

// wake signals the waits registered for rkey; it never blocks (a wait
// that was signalled and has not looked yet needs no second signal).
func (t *wakeTable) wake(rkey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ch := range t.waits[rkey] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// len returns the number of keys waited on, for tests.
func (t *wakeTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.waits)
}
