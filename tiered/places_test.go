package tiered_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tiercache/tiercache/tiered"
)

// TestNoStaleFillAtEveryPlace lands an invalidation, issued by node A after
// the database moved from v1 to v2, at each place of node B's read of the
// same key, and checks that v1 ends in no tier on any node once the message
// has arrived. Where a protection is what keeps v1 out (the compare-and-set
// in Redis, the token check in L1), the same case with it switched off on B
// must find v1 (the test catches the bug it guards against).
//
// "before the L2 read" has no such protection to switch off: the old value
// is gone from Redis before B reads it, and B's loader reads v2; the case
// checks that nothing in the read path brings v1 back.
func TestNoStaleFillAtEveryPlace(t *testing.T) {
	places := []struct {
		name      string
		prefill   bool   // Redis holds v1 before B reads (B's read is an L2 hit)
		hook      string // B's hook point the invalidation lands at; "" = during the load
		inFlight  bool   // A's message is held until B's read is over
		protected bool   // a protection can be switched off
	}{
		{name: "before the L2 read", prefill: true, hook: "read"},
		{name: "between the L2 read and L1", prefill: true, hook: "read-done", protected: true},
		{name: "during the load", protected: true},
		{name: "between the L2 fill and L1", hook: "filled", protected: true},
		{name: "while the message is in flight", inFlight: true, protected: true},
	}
	addr := startServer(t)
	for i, p := range places {
		for _, off := range []bool{false, true} {
			if off && !p.protected {
				continue
			}
			name := p.name
			if off {
				name += "/protection off"
			}
			t.Run(name, func(t *testing.T) {
				ns := "places" + string(rune('a'+i))
				if off {
					ns += "off"
				}
				stale := stalePlace(t, addr, ns, p.prefill, p.hook, p.inFlight, off)
				if stale != "" && !off {
					t.Fatalf("v1 survived the invalidation: %s", stale)
				}
				if stale == "" && off {
					t.Fatal("with the protection off, v1 should have survived: the test cannot see the bug")
				}
			})
		}
	}
}

// stalePlace runs one case and describes where v1 survived ("" if nowhere).
func stalePlace(t *testing.T, addr, ns string, prefill bool, hook string, inFlight, off bool) string {
	ctx := context.Background()
	a := newFleetNode(t, addr, tiered.Options{Namespace: ns})
	b := newFleetNode(t, addr, tiered.Options{Namespace: ns})
	var db atomic.Value
	db.Store("v1")
	load := func(context.Context, string) (string, error) { return db.Load().(string), nil }
	if prefill {
		if _, err := a.group.Fetch(ctx, "1", load); err != nil {
			t.Fatal(err)
		}
		// A's L1 holds v1 too: the invalidation must clear it.
		a.cache.WaitL1()
	}
	tiered.SetNoCAS(b.cache, off)

	// invalidate moves the database to v2 and invalidates through A; unless
	// the message is held, it returns once B applied it.
	invalidate := func() {
		db.Store("v2")
		if err := a.group.Invalidate(ctx, "1"); err != nil {
			t.Error(err)
		}
		if !inFlight {
			b.expect(t, tiered.EventInvalidationReceived)
		}
	}
	var once sync.Once
	if hook != "" {
		tiered.SetHook(b.cache, func(point string) {
			if point == hook {
				once.Do(invalidate)
			}
		})
	}
	var loaderRead chan struct{}
	release := make(chan struct{})
	if hook == "" {
		loaderRead = make(chan struct{})
		load = func(context.Context, string) (string, error) {
			v := db.Load().(string)
			close(loaderRead)
			<-release
			return v, nil
		}
	}
	var published chan struct{}
	unhold := make(chan struct{})
	if inFlight {
		published = make(chan struct{})
		var held sync.Once
		tiered.SetHoldPublish(a.cache, func() {
			held.Do(func() {
				close(published) // A has unlinked the key and cleared its own L1
				<-unhold
			})
		})
	}
	got := make(chan string, 1)
	go func() {
		v, err := b.group.Fetch(ctx, "1", load)
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	var invDone chan struct{}
	if hook == "" {
		<-loaderRead
		invDone = make(chan struct{})
		go func() { defer close(invDone); invalidate() }()
		if inFlight {
			<-published
		} else {
			<-invDone
		}
		close(release)
	}
	<-got
	b.cache.WaitL1()
	if inFlight {
		close(unhold)
		<-invDone
		b.expect(t, tiered.EventInvalidationReceived)
	}
	tiered.SetHook(b.cache, nil)
	var where []string
	if raw, err := a.rdb.Get(ctx, ns+":post:1").Result(); err == nil && strings.HasSuffix(raw, `"v1"`) {
		where = append(where, "L2")
	}
	for name, n := range map[string]*fleetNode{"A": a, "B": b} {
		if v, err := n.group.Get(ctx, "1"); err == nil && v == "v1" {
			where = append(where, "node "+name)
		}
	}
	return strings.Join(where, ", ")
}
