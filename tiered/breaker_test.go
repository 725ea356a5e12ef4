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

// logRecords is a slog handler that keeps every record.
type logRecords struct {
	mu   sync.Mutex // protects recs
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// find returns the attributes of the records at level whose message
// contains msg.
func (h *logRecords) find(level slog.Level, msg string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range h.recs {
		if r.Level != level || !strings.Contains(r.Message, msg) {
			continue
		}
		attrs := map[string]any{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.Any(); return true })
		out = append(out, attrs)
	}
	return out
}

// TestBreakerEventsAndLogs: the breaker of a failing Redis opens and closes
// again; each change is counted, sent to the Recorder and logged (Warn with
// the endpoint and the failure, then Info); reads never fail; calls refused
// by the open breaker are logged at Debug only.
func TestBreakerEventsAndLogs(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	logs := &logRecords{}
	events := make(chan tiered.Event, 16)
	var mu sync.Mutex // protects failed, refused
	failed, refused := 0, 0
	c := newCache(t, tiered.Options{
		Redis: rdb, Namespace: "brk", DisableBus: true, BreakerFailures: 2, BreakerCooldown: 20 * time.Millisecond,
		Logger: slog.New(logs),
		Recorder: tiered.RecorderFunc(func(e tiered.Event) {
			switch {
			case e.Kind == tiered.EventBreakerOpen || e.Kind == tiered.EventBreakerClose:
				events <- e
			case e.Kind == tiered.EventRedisError:
				mu.Lock()
				if errors.Is(e.Err, remote.ErrBreakerOpen) {
					refused++
				} else {
					failed++
				}
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
	opened := logs.find(slog.LevelWarn, "breaker open")
	if len(opened) != 1 || opened[0]["endpoint"] != m.Addr() || opened[0]["err"] == nil {
		t.Errorf("Warn logs of the opening = %v; want one with endpoint %s and err", opened, m.Addr())
	}
	closed := logs.find(slog.LevelInfo, "breaker closed")
	if len(closed) != 1 || closed[0]["endpoint"] != m.Addr() {
		t.Errorf("Info logs of the closing = %v; want one with endpoint %s", closed, m.Addr())
	}
	mu.Lock()
	defer mu.Unlock()
	if w, d := len(logs.find(slog.LevelWarn, "redis call failed")), len(logs.find(slog.LevelDebug, "redis call failed")); w != failed || d != refused {
		t.Errorf("redis call failed logged %d times at Warn, %d at Debug; want %d (failures), %d (refusals)", w, d, failed, refused)
	}
}
