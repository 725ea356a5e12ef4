package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

func TestBreakerOptionsValidated(t *testing.T) {
	rdb, _ := newMini(t)
	for _, tc := range []struct {
		o    tiered.Options
		want string
	}{
		{tiered.Options{Redis: rdb, BreakerFailures: -1}, "negative BreakerFailures"},
		{tiered.Options{Redis: rdb, BreakerCooldown: -time.Second}, "negative BreakerCooldown"},
	} {
		c, err := tiered.New(tc.o)
		if err == nil {
			c.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), "tiered: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error = %v; want %q", tc.o, err, tc.want)
		}
	}
}

// logsAt returns the attributes of the records of l at level whose message
// contains msg.
func logsAt(l *logRecords, level slog.Level, msg string) []map[string]slog.Value {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range l.recs {
		if r.Level != level || !strings.Contains(r.Message, msg) {
			continue
		}
		attrs := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
		out = append(out, attrs)
	}
	return out
}

// TestBreakerEventsAndLogs: the breaker of a failing Redis opens and closes
// again; each change is counted, sent to the Recorder and logged (Warn with
// the endpoint and the failure, then Info); reads never fail; a failed probe
// notifies nothing.
func TestBreakerEventsAndLogs(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	logs := &logRecords{}
	events := make(chan tiered.Event, 16)
	var mu sync.Mutex // protects refused
	refused := 0
	c := newCache(t, tiered.Options{
		Redis: rdb, Namespace: "brk", DisableBus: true, BreakerFailures: 2, BreakerCooldown: 20 * time.Millisecond,
		Logger: slog.New(logs),
		Recorder: tiered.RecorderFunc(func(e tiered.Event) {
			switch {
			case e.Kind == tiered.EventBreakerOpen || e.Kind == tiered.EventBreakerClose:
				events <- e
			case e.Kind == tiered.EventRedisError && errors.Is(e.Err, remote.ErrBreakerOpen):
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}),
	})
	g := newGroup[string](t, c, "post", tiered.GroupOptions{})
	ctx := context.Background()
	fetches := 0
	// fetchUntil Fetches fresh ids (each one an L1 miss, so a Redis call)
	// until the event want arrives, or until done holds with no event.
	fetchUntil := func(want tiered.EventKind, done func() bool) tiered.Event {
		t.Helper()
		guard := time.After(10 * time.Second) // a hang guard, not a synchronization
		for {
			fetches++
			id := fmt.Sprint(fetches)
			if v, err := g.Fetch(ctx, id, constLoader("v"+id)); err != nil || v != "v"+id {
				t.Fatalf("Fetch(%q) = %q, %v; want %q: reads fail open", id, v, err, "v"+id)
			}
			select {
			case e := <-events:
				if e.Kind != want {
					t.Fatalf("event %v; want %v", e.Kind, want)
				}
				return e
			case <-guard:
				t.Fatalf("no %v within 10s", want)
			default:
				if done != nil && done() {
					return tiered.Event{}
				}
			}
		}
	}

	m.SetError("LOADING Redis is loading the dataset in memory")
	open := fetchUntil(tiered.EventBreakerOpen, nil)
	if !redis.IsLoadingError(open.Err) {
		t.Fatalf("EventBreakerOpen.Err = %v; want the LOADING failure", open.Err)
	}
	fetchUntil(0, func() bool { // refusals (and failed probes, which notify nothing)
		mu.Lock()
		defer mu.Unlock()
		return refused >= 3
	})
	m.SetError("")
	fetchUntil(tiered.EventBreakerClose, nil)

	if s := c.Stats(); s.BreakerOpens != 1 || s.BreakerCloses != 1 {
		t.Errorf("BreakerOpens, BreakerCloses = %d, %d; want 1, 1", s.BreakerOpens, s.BreakerCloses)
	}
	opened := logsAt(logs, slog.LevelWarn, "breaker open")
	if len(opened) != 1 || opened[0]["endpoint"].String() != m.Addr() || opened[0]["err"].Any() == nil {
		t.Errorf("Warn logs of the opening = %v; want one with endpoint %s and err", opened, m.Addr())
	}
	closed := logsAt(logs, slog.LevelInfo, "breaker closed")
	if len(closed) != 1 || closed[0]["endpoint"].String() != m.Addr() {
		t.Errorf("Info logs of the closing = %v; want one with endpoint %s", closed, m.Addr())
	}
}

// TestFailClosedReportsOpenBreaker: with FailClosed, a read refused by an
// open breaker returns an error that says so.
func TestFailClosedReportsOpenBreaker(t *testing.T) {
	rdb, m := newMini(t)
	c := newCache(t, tiered.Options{
		Redis: rdb, Namespace: "fc", DisableBus: true, FailClosed: true,
		BreakerFailures: 1, BreakerCooldown: time.Hour,
	})
	g := newGroup[string](t, c, "post", tiered.GroupOptions{})
	ctx := context.Background()
	m.SetError("LOADING Redis is loading the dataset in memory")
	if _, err := g.Fetch(ctx, "1", constLoader("v")); err == nil || errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("first Fetch = %v; want the LOADING failure", err)
	}
	if _, err := g.Fetch(ctx, "2", constLoader("v")); !errors.Is(err, remote.ErrBreakerOpen) {
		t.Fatalf("Fetch with the breaker open = %v; want ErrBreakerOpen", err)
	}
}
