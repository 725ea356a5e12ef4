package tiered_test

import (
	"context"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// joinAfterInvalidation starts a load of key 1 on node b that reads v1 and
// blocks; invalidates the key (on b itself, or on a with b applying the
// bus message); then starts a second Fetch on b, lets the first load
// finish, and returns what the second Fetch got.
func joinAfterInvalidation(t *testing.T, remote, noForget bool) string {
	t.Helper()
	rdb, _ := newMini(t)
	ctx := context.Background()
	received := make(chan struct{}, 16)
	b := newCache(t, tiered.Options{Redis: rdb, Namespace: "join", Recorder: tiered.RecorderFunc(func(e tiered.Event) {
		if e.Kind == tiered.EventInvalidationReceived {
			received <- struct{}{}
		}
	})})
	tiered.SetNoForget(b, noForget)
	gb := newGroup[string](t, b, "p", tiered.GroupOptions{})
	a := newCache(t, tiered.Options{Redis: rdb, Namespace: "join"})
	ga := newGroup[string](t, a, "p", tiered.GroupOptions{})

	read, release := make(chan struct{}), make(chan struct{})
	first := make(chan struct{})
	go func() {
		defer close(first)
		_, _ = gb.Fetch(ctx, "1", func(context.Context, string) (string, error) { close(read); <-release; return "v1", nil })
	}()
	<-read
	if remote {
		if err := ga.Invalidate(ctx, "1"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-received: // b applied it: what follows began after
		case <-time.After(10 * time.Second): // a hang guard
			t.Fatal("b never applied the invalidation")
		}
	} else if err := gb.Invalidate(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	second := make(chan string)
	collapsed := b.Stats().Collapsed
	go func() {
		v, _ := gb.Fetch(ctx, "1", func(context.Context, string) (string, error) { return "v2", nil })
		second <- v
	}()
	var v string
	stop := make(chan struct{})
	joined := waitCollapsed(b, collapsed, stop)
	select {
	case v = <-second: // a new load: it did not wait for the first
	case <-joined:
		close(release)
		v = <-second
	}
	close(stop)
	<-joined
	select {
	case <-release:
	default:
		close(release)
	}
	<-first
	return v
}

// waitCollapsed is closed once c counts one more caller joining a load, or
// stop is closed.
func waitCollapsed(c *tiered.Cache, before uint64, stop <-chan struct{}) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for c.Stats().Collapsed == before {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond): // polling a counter, not timing the verdict
			}
		}
	}()
	return ch
}

// TestNoJoinAfterInvalidation: a Fetch that begins after an invalidation
// was applied on its node (issued there, or received from the bus) does not
// join a load that began before it, and so never returns the old value.
// With the protection off, the same interleaving returns it.
func TestNoJoinAfterInvalidation(t *testing.T) {
	for _, remote := range []bool{false, true} {
		name := map[bool]string{false: "local", true: "bus"}[remote]
		t.Run(name, func(t *testing.T) {
			if v := joinAfterInvalidation(t, remote, false); v != "v2" {
				t.Fatalf("Fetch after the invalidation = %q; want v2 from a new load", v)
			}
		})
		t.Run(name+"/unprotected", func(t *testing.T) {
			if v := joinAfterInvalidation(t, remote, true); v != "v1" {
				t.Fatalf("without forgetting flights the Fetch should join the old load and get v1; got %q", v)
			}
		})
	}
}
