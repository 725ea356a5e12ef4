package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
)

// newBusOn starts a bus on rdb and channel, closed at cleanup.
func newBusOn(t *testing.T, rdb redis.UniversalClient, channel string, h bus.Handler, o bus.Options) *bus.Bus {
	t.Helper()
	o.Client, o.Channel, o.Handler = rdb, channel, h
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second // as newBus: a PUBLISH on a loaded machine under -race
	}
	b, err := bus.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// until waits for an event want, skipping the others (losses and
// recoveries a failover may or may not cause).
func (r *recorder) until(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(hangGuard) // a hang guard, not a synchronization
	for {
		select {
		case got := <-r.events:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %q event within %v", want, hangGuard)
		}
	}
}

// delivered publishes a key from a and waits until b's recorder applies it.
// Pub/sub is at-most-once, and while the cluster changes a message can be
// lost on its way between nodes: a key not applied within a few seconds is
// published again, up to a minute (a hang guard).
func delivered(t *testing.T, a *bus.Bus, rb *recorder, key string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		// A publish may fail while the cluster changes; the bus then counts
		// on the receivers' gap detection. Try until one goes through.
		if err := a.Publish(context.Background(), bus.KindKeys, key); err != nil {
			time.Sleep(100 * time.Millisecond) // a bounded retry while the cluster converges
			continue
		}
		if rb.appliesKey(key, 5*time.Second) {
			return
		}
	}
	t.Fatalf("%q was not delivered within a minute", key)
}

// appliesKey waits up to d for the recorder to apply a message of key alone,
// skipping other events, and reports whether it did.
func (r *recorder) appliesKey(key string, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case got := <-r.events:
			if got != "apply" {
				continue
			}
			r.mu.Lock()
			last := r.applied[len(r.applied)-1]
			r.mu.Unlock()
			if len(last.Items) == 1 && last.Items[0] == key {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// TestClusterBus: plain and sharded buses on one cluster deliver a burst
// in order, with no false gap. A manual
// failover of the shard that owns the sharded channel, or a move of its
// slot, ends that subscription from the server's side (SUNSUBSCRIBE),
// which counts as a loss followed by a recovery; killing the master a
// plain subscription sits on is a loss too, and the bus comes back on the
// promoted replica. Messages flow again after each.
func TestClusterBus(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	const plain, sharded = "test:bus", "test:sbus"
	ra, rb, rc, rd := newRecorder(), newRecorder(), newRecorder(), newRecorder()
	fast := bus.Options{Heartbeat: 200 * time.Millisecond}
	a := newBusOn(t, cl.Client(t), plain, ra, fast)
	newBusOn(t, cl.Client(t), plain, rb, fast)
	// Heartbeats too rare to notice anything within the test: only the
	// server's SUNSUBSCRIBE can tell the sharded buses.
	shardedOpts := bus.Options{Sharded: true, Heartbeat: time.Hour}
	c := newBusOn(t, cl.Client(t), sharded, rc, shardedOpts)
	newBusOn(t, cl.Client(t), sharded, rd, shardedOpts)
	for _, r := range []*recorder{ra, rb, rc, rd} {
		r.expect(t, "restored")
	}
	delivered(t, a, rb, "plain-1")
	delivered(t, c, rd, "sharded-1")
	// A burst arrives in order and whole: a cluster relays a message
	// published on one node to the others, so publishing a sender's
	// messages on several nodes would reorder them into false gaps.
	for i := range 300 {
		if err := a.Publish(context.Background(), bus.KindKeys, fmt.Sprint("burst-", i)); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(context.Background(), bus.KindKeys, fmt.Sprint("burst-", i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 300 {
		rb.expect(t, "apply")
		rd.expect(t, "apply")
	}

	owner := cl.MasterOf(t, sharded)
	cl.Failover(t, cl.ReplicaOf(t, owner))
	rd.expect(t, "lost") // the old owner unsubscribed it
	rd.expect(t, "restored")
	delivered(t, c, rd, "sharded-2")
	delivered(t, a, rb, "plain-2")

	// Moving the sharded channel's slot to another master ends the
	// subscription too.
	owner = cl.MasterOf(t, sharded)
	for _, m := range cl.Masters(t) {
		if m != owner {
			cl.MoveSlot(t, cl.Slot(t, sharded), m)
			break
		}
	}
	rd.expect(t, "lost")
	rd.expect(t, "restored")
	delivered(t, c, rd, "sharded-3")

	promoted := cl.KillMaster(t, cl.MasterOf(t, plain))
	rb.until(t, "lost")
	rb.until(t, "restored")
	delivered(t, a, rb, "plain-3")
	if cl.MasterOf(t, plain) != promoted {
		t.Fatal("the plain channel's slot is not served by the promoted replica")
	}
}

// TestSentinelBus: after a Sentinel failover the former primary keeps
// running as a primary for a while, so subscribers left on it hear nothing
// the others publish on the new one, not even their own heartbeats: the
// bus counts that silence as a loss and subscribes again through the
// failover client, on the new primary.
func TestSentinelBus(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	ra, rb := newRecorder(), newRecorder()
	fast := bus.Options{Heartbeat: 200 * time.Millisecond}
	a := newBusOn(t, s.Client(t), "test:bus", ra, fast)
	newBusOn(t, s.Client(t), "test:bus", rb, fast)
	ra.expect(t, "restored")
	rb.expect(t, "restored")
	delivered(t, a, rb, "before")
	s.Failover(t)
	rb.until(t, "lost")
	rb.until(t, "restored")
	delivered(t, a, rb, "after")
}
