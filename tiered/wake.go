package tiered

import (
	"sync"

	"github.com/tiercache/tiercache/remote"
)

// wakeTable routes wake notices (see Options.DisableWake) to the lease
// waits of this node: a wait registers the Redis keys it waits on with a
// channel, and a notice for one of them goes to that channel, so that the
// wait settles at once (the notice of a fill carries what it wrote, when
// small) or reads Redis at once instead of at its next poll.
type wakeTable struct {
	mu sync.Mutex
	// keyOnly drops the values notices carry (set with a BusKey: a notice
	// is not signed, so it may only make a wait read Redis).
	keyOnly bool
	waits   map[string][]chan wakeNote // by Redis key
}

// wakeNote is one wake notice: the Redis key it announces and, if has,
// the lease a fill replaced and what it wrote there (what a GET right
// after that fill returned; a wait takes it only for the lease it waits
// for: the notice may reach it after later writes of the key).
type wakeNote struct {
	rkey  string
	lease uint64 // the lease the fill replaced (with has)
	rec   remote.Record
	has   bool
}

// add registers ch for the Redis keys rkeys.
func (t *wakeTable) add(rkeys []string, ch chan wakeNote) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.waits == nil {
		t.waits = make(map[string][]chan wakeNote)
	}
	for _, k := range rkeys {
		t.waits[k] = append(t.waits[k], ch)
	}
}

// remove unregisters ch from rkeys.
func (t *wakeTable) remove(rkeys []string, ch chan wakeNote) {
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

// wake hands the notice payload to the waits registered for its key. It
// never blocks: a wait whose channel is full has notices it has not looked
// at yet, and reads Redis when it does.
func (t *wakeTable) wake(payload string) {
	rkey, lease, rec, has, ok := remote.ParseWake(payload)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := wakeNote{rkey: rkey, lease: lease, rec: rec, has: has && !t.keyOnly}
	for _, ch := range t.waits[rkey] {
		select {
		case ch <- n:
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
