package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
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

// failSafeWaiterWoken: node 1 waits for node 0's reload lock with its polls
// switched off (every pause an hour, LeaseWait an hour, no soft timeout),
// so only a wake notice can make it look again. It marks the lock as
// waited for; node 0's load fails, and the throttle mark that replaces the
// lock publishes the lock's key on the wake channel: node 1 reads, finds
// the mark and serves the expired value. With node 1's marking and
// listening switched off, nothing is published (a sentinel published once
// the mark is in Redis arrives first) and node 1 is still waiting.
func failSafeWaiterWoken(t *testing.T, rdb redis.UniversalClient) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("wake off=%v", off), func(t *testing.T) {
			ctx := context.Background()
			id := fmt.Sprintf("woken-%v", off)
			r := newFSRigWith(t, rdb, 2, tiered.GroupOptions{}, func(o *tiered.Options) { o.LeaseWait = time.Hour })
			tiered.SetPollPause(r.caches[1], time.Hour)
			tiered.SetNoWakeWait(r.caches[1], off)
			lockKey := "fs:%!refresh:k:" + id
			sub := rdb.Subscribe(ctx, tiered.WakeChannel("fs"))
			t.Cleanup(func() { sub.Close() })
			if _, err := sub.Receive(ctx); err != nil { // the confirmation
				t.Fatal(err)
			}
			r.cached(id)
			guard, cancel := context.WithTimeout(ctx, 30*time.Second) // a hang guard only
			defer cancel()
			started, release := make(chan struct{}), make(chan struct{})
			gated := func(ctx context.Context, id string) (string, error) {
				close(started)
				<-release
				return r.dead(ctx, id)
			}
			aDone := make(chan error, 1)
			go func() {
				_, _, err := r.fetch(0, id, gated)
				aDone <- err
			}()
			<-started
			type result struct {
				v   string
				fb  bool
				err error
			}
			bctx, bcancel := context.WithCancel(guard)
			defer bcancel()
			bDone := make(chan result, 1)
			go func() {
				v, s, err := r.groups[1].FetchInfo(bctx, id, r.dead)
				bDone <- result{v, s.Fallback, err}
			}()
			<-r.busy // node 1 found node 0's lock
			if !off {
				waitUntil(t, "node 1 marked the lock", func() bool {
					return rdb.GetRange(ctx, lockKey, 14, 14).Val() == "\x01"
				})
			}
			close(release)
			if err := <-aDone; err != nil {
				t.Fatalf("node 0: %v; want its fallback", err)
			}
			if off {
				waitUntil(t, "the throttle mark is in Redis", func() bool {
					v := rdb.Get(ctx, lockKey).Val()
					return len(v) > 2 && v[2] == byte(remote.KindAbsent)
				})
				if err := rdb.Publish(ctx, tiered.WakeChannel("fs"), "sentinel").Err(); err != nil {
					t.Fatal(err)
				}
			}
			msg, err := sub.ReceiveMessage(guard)
			if err != nil {
				t.Fatal(err)
			}
			if off {
				if msg.Payload != "sentinel" {
					t.Fatalf("published %q with no node marked as waiting", msg.Payload)
				}
				select {
				case res := <-bDone:
					t.Fatalf("node 1 returned %q, %v with its polls off and no notice", res.v, res.err)
				default:
				}
				return
			}
			if key, _, _, _, ok := remote.ParseWake(msg.Payload); !ok || key != lockKey {
				t.Fatalf("the first wake notice is %q (key %q); want the lock's key %q", msg.Payload, key, lockKey)
			}
			select {
			case res := <-bDone:
				if res.err != nil || res.v != "v1" || !res.fb {
					t.Fatalf("node 1: %q, fallback %v, %v; want v1, true, nil", res.v, res.fb, res.err)
				}
			case <-guard.Done():
				t.Fatal("node 1 still waits 30s after the notice")
			}
			if n := r.loads.Load(); n != 2 {
				t.Fatalf("%d loads; want 2 (the first fill, node 0's failed reload)", n)
			}
		})
	}
}

// failSafeNoMarkWithoutFallback: node 0's reload of an expired id fails
// after node 1 replaced the value (an invalidation, then a fill of v2):
// node 0 serves no fallback, and since its throttle mark went out beside
// the check that found the value gone, it removes the mark again. Once v2
// expires, node 1 reloads it. With the mark left in place (SetKeepFailedMark)
// node 1 serves the expired v2 as a fallback without calling its loader,
// which shows the test catches that.
func failSafeNoMarkWithoutFallback(t *testing.T, rdb redis.UniversalClient) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepMark=%v", keep), func(t *testing.T) {
			ctx := context.Background()
			id := fmt.Sprintf("nomark-%v", keep)
			r := newFSRig(t, rdb, 2, tiered.GroupOptions{})
			tiered.SetKeepFailedMark(r.caches[0], keep)
			r.cached(id)
			started, release := make(chan struct{}), make(chan struct{})
			gated := func(ctx context.Context, id string) (string, error) {
				close(started)
				<-release
				return r.dead(ctx, id)
			}
			type result struct {
				v   string
				fb  bool
				err error
			}
			done := make(chan result, 1)
			go func() {
				v, fb, err := r.fetch(0, id, gated)
				done <- result{v, fb, err}
			}()
			<-started
			if err := r.groups[1].Invalidate(ctx, id); err != nil {
				t.Fatal(err)
			}
			if v, _, err := r.fetch(1, id, r.ok("v2")); err != nil || v != "v2" {
				t.Fatalf("node 1's fill = %q, %v", v, err)
			}
			close(release)
			if res := <-done; !errors.Is(res.err, errDown) || res.fb {
				t.Fatalf("node 0: %q, fallback %v, %v; want the loader's error, no fallback", res.v, res.fb, res.err)
			}
			for _, c := range r.caches {
				c.WaitL1()
			}
			r.clk.Add(fsTTL + time.Second) // v2 expires
			before := r.loads.Load()
			v, fb, err := r.fetch(1, id, r.ok("v3"))
			if keep {
				if err != nil || v != "v2" || !fb || r.loads.Load() != before {
					t.Fatalf("mark kept: %q, fallback %v, %v, %d loads; want the expired v2 served by the throttle, no load", v, fb, err, r.loads.Load()-before)
				}
				return
			}
			if err != nil || v != "v3" || fb {
				t.Fatalf("after v2 expired: %q, fallback %v, %v; want v3 from a reload", v, fb, err)
			}
		})
	}
}
