package tiered_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// failSafeFailureOneRoundTrip: once a reload under the lock has failed, the
// check that Redis still holds the expired value (a GET of the key) and
// the throttle mark that replaces the lock (a script on the lock's key)
// are in flight together, so the caller waits one round trip for its
// fallback, not two. A hook holds the GET until the script has been sent.
// With SetSerialFailure the script goes only once the GET returned, so it
// is never sent while the GET is held, which shows the test catches it;
// the fallback and the mark are the same either way.
func failSafeFailureOneRoundTrip(t *testing.T, rdb redis.UniversalClient) {
	for _, serial := range []bool{false, true} {
		t.Run(fmt.Sprintf("serial=%v", serial), func(t *testing.T) {
			ctx := context.Background()
			id := fmt.Sprintf("rt-%v", serial)
			hook := &overlapHook{key: "fs:k:" + id, lock: "fs:%!refresh:k:" + id, sent: make(chan struct{})}
			rdb.AddHook(hook)
			r := newFSRig(t, rdb, 1, tiered.GroupOptions{})
			tiered.SetSerialFailure(r.caches[0], serial)
			r.cached(id)
			// Held that long only when the script cannot come: serially it
			// waits for the GET, whatever the machine's load.
			hook.patience = 10 * time.Second
			if serial {
				hook.patience = 200 * time.Millisecond
			}
			dead := func(ctx context.Context, id string) (string, error) {
				hook.armed.Store(true)
				return r.dead(ctx, id)
			}
			v, fb, err := r.fetch(0, id, dead)
			if err != nil || v != "v1" || !fb {
				t.Fatalf("expired, loader down: %q, fallback %v, %v; want v1, true, nil", v, fb, err)
			}
			if n, _ := rdb.Exists(ctx, hook.lock).Result(); n != 1 {
				t.Fatalf("the throttle mark is missing (EXISTS %s = %d)", hook.lock, n)
			}
			overlapped, gets := hook.result()
			if gets != 1 {
				t.Fatalf("%d GETs of the key after the load; want 1", gets)
			}
			if overlapped == serial {
				t.Fatalf("script sent while the GET was held: %v; want %v", overlapped, !serial)
			}
		})
	}
}

// overlapHook holds the first GET of key, once armed, until a script on
// lock was sent (at most patience), and records whether it was.
type overlapHook struct {
	key, lock  string
	patience   time.Duration
	armed      atomic.Bool
	sent       chan struct{}
	once       sync.Once
	mu         sync.Mutex
	gets       int
	overlapped bool
}

func (h *overlapHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *overlapHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.armed.Load() {
			args := cmd.Args()
			name := strings.ToLower(fmt.Sprint(args[0]))
			switch {
			case (name == "evalsha" || name == "eval") && len(args) > 3 && fmt.Sprint(args[3]) == h.lock:
				h.once.Do(func() { close(h.sent) })
			case name == "get" && len(args) > 1 && fmt.Sprint(args[1]) == h.key:
				h.mu.Lock()
				h.gets++
				first := h.gets == 1
				h.mu.Unlock()
				if first {
					select {
					case <-h.sent:
						h.mu.Lock()
						h.overlapped = true
						h.mu.Unlock()
					case <-time.After(h.patience):
					}
				}
			}
		}
		return next(ctx, cmd)
	}
}

func (h *overlapHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *overlapHook) result() (overlapped bool, gets int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.overlapped, h.gets
}
