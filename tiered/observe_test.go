package tiered_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tiered"
)

// logRecords is a slog.Handler that keeps every record.
type logRecords struct {
	mu   sync.Mutex // protects recs
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// find returns the attributes of the first record whose message contains
// msg, and whether there is one.
func (l *logRecords) find(msg string) (slog.Level, map[string]slog.Value, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if strings.Contains(r.Message, msg) {
			attrs := make(map[string]slog.Value)
			r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
			return r.Level, attrs, true
		}
	}
	return 0, nil, false
}

// TestBusDowntimeAndReconnects: the first confirmation of the subscription
// reports no downtime; a loss forced by cutting the connection puts L1 in
// degraded mode, and the reconnect reports how long the bus was lost, in
// the event, in Stats and in the log.
func TestBusDowntimeAndReconnects(t *testing.T) {
	srv := startServer(t)
	proxy := newProxy(t, srv)
	logs := &logRecords{}
	node := newFleetNode(t, proxy.Addr(), tiered.Options{Logger: slog.New(logs)})
	if s := node.cache.Stats(); s.BusRestored != 1 || s.BusReconnects != 0 || s.BusDowntime != 0 {
		t.Fatalf("after the first subscription: BusRestored %d, BusReconnects %d, BusDowntime %v; want 1, 0, 0",
			s.BusRestored, s.BusReconnects, s.BusDowntime)
	}
	if st := node.cache.L1State(); st.Degraded {
		t.Fatal("L1State().Degraded = true with the subscription confirmed")
	}
	proxy.Cut()
	lost := node.expect(t, tiered.EventBusLost)
	if lost.Err == nil {
		t.Error("EventBusLost carries no error")
	}
	if st := node.cache.L1State(); !st.Degraded {
		t.Fatal("L1State().Degraded = false after the loss")
	}
	proxy.Heal()
	back := node.expect(t, tiered.EventBusRestored)
	if back.Duration <= 0 {
		t.Fatalf("EventBusRestored after a loss: Duration = %v; want > 0", back.Duration)
	}
	s := node.cache.Stats()
	if s.BusLost != 1 || s.BusRestored != 2 || s.BusReconnects != 1 || s.BusDowntime != back.Duration {
		t.Fatalf("Stats: BusLost %d, BusRestored %d, BusReconnects %d, BusDowntime %v; want 1, 2, 1, %v",
			s.BusLost, s.BusRestored, s.BusReconnects, s.BusDowntime, back.Duration)
	}
	if byGroup := node.cache.StatsByGroup()[""]; byGroup.BusReconnects != 1 {
		t.Errorf("StatsByGroup()[\"\"].BusReconnects = %d; want 1", byGroup.BusReconnects)
	}
	if st := node.cache.L1State(); st.Degraded {
		t.Error("L1State().Degraded = true after the reconnect")
	}
	level, attrs, ok := logs.find("bus subscription restored")
	if !ok || level != slog.LevelInfo || attrs["downtime"].Duration() != back.Duration {
		t.Errorf("restore log: found %v, level %v, downtime %v; want Info with downtime %v", ok, level, attrs["downtime"], back.Duration)
	}
	level, attrs, ok = logs.find("subscription lost")
	if !ok || level != slog.LevelWarn || attrs["err"].Any() == nil {
		t.Errorf("loss log: found %v, level %v, attrs %v; want Warn with err", ok, level, attrs)
	}
}

// TestL1StateAndStatsByGroup: L1State reports the entries, bytes and fills
// of a scripted workload, a value larger than L1 is stored and rejected, and
// StatsByGroup splits the counters by group and sums to Stats.
func TestL1StateAndStatsByGroup(t *testing.T) {
	const maxBytes = 1 << 20 // its fixed structures take half: 512 KiB left for entries
	c := newCache(t, tiered.Options{L1MaxBytes: maxBytes})
	a := newGroup[string](t, c, "a", tiered.GroupOptions{})
	b := newGroup[string](t, c, "b", tiered.GroupOptions{})
	ctx := context.Background()
	big := strings.Repeat("x", maxBytes/2)
	for _, id := range []string{"1", "22"} {
		if _, err := a.Fetch(ctx, id, constLoader("v"+id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Fetch(ctx, "big", constLoader(big)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch(ctx, "1", constLoader("w")); err != nil {
		t.Fatal(err)
	}
	c.WaitL1()
	for _, id := range []string{"1", "22"} { // hits
		if _, err := a.Fetch(ctx, id, constLoader("unused")); err != nil {
			t.Fatal(err)
		}
	}
	size := func(key, v string) int64 {
		data, _ := json.Marshal(v)
		return tiered.L1Cost(v, len(data)) + tiered.L1EntryBytes(c, key)
	}
	want := tiered.L1State{
		Entries:  3,
		Bytes:    maxBytes/2 + size("a:1", "v1") + size("a:22", "v22") + size("b:1", "w"),
		MaxBytes: maxBytes,
		Stored:   4,
	}
	if got := c.L1State(); got != want {
		t.Fatalf("L1State = %+v; want %+v", got, want)
	}
	by := c.StatsByGroup()
	if len(by) != 3 {
		t.Fatalf("StatsByGroup has %d entries; want a, b and \"\"", len(by))
	}
	if s := by["a"]; s.Loads != 3 || s.L1Hits != 2 || s.L1Misses != 3 {
		t.Errorf("a: Loads %d, L1Hits %d, L1Misses %d; want 3, 2, 3", s.Loads, s.L1Hits, s.L1Misses)
	}
	if s := by["b"]; s.Loads != 1 || s.L1Hits != 0 || s.L1Misses != 1 {
		t.Errorf("b: Loads %d, L1Hits %d, L1Misses %d; want 1, 0, 1", s.Loads, s.L1Hits, s.L1Misses)
	}
	if s := by[""]; s.L1Rejected != 1 || s.Loads != 0 {
		t.Errorf("cache: L1Rejected %d, Loads %d; want 1, 0", s.L1Rejected, s.Loads)
	}
	var sum tiered.Stats
	for _, s := range by {
		sum.L1Hits += s.L1Hits
		sum.L1Misses += s.L1Misses
		sum.Loads += s.Loads
		sum.L1Rejected += s.L1Rejected
	}
	total := c.Stats()
	if sum.L1Hits != total.L1Hits || sum.L1Misses != total.L1Misses || sum.Loads != total.Loads || sum.L1Rejected != total.L1Rejected {
		t.Errorf("StatsByGroup sums to %+v; Stats = %+v", sum, total)
	}
}

// TestGapLogNamesNode: the log line of a gap names the node whose message
// went missing under the attribute every line uses for a node.
func TestGapLogNamesNode(t *testing.T) {
	addr := startServer(t)
	ctx := context.Background()
	logs := &logRecords{}
	a := newFleetNode(t, addr, tiered.Options{Heartbeat: 50 * time.Millisecond})
	b := newFleetNode(t, addr, tiered.Options{Heartbeat: 50 * time.Millisecond, Logger: slog.New(logs)})
	if err := a.group.Invalidate(ctx, "x"); err != nil { // b learns a's sequence
		t.Fatal(err)
	}
	b.expect(t, tiered.EventInvalidationReceived)
	tiered.DropNextPublish(a.cache)
	if err := a.group.Invalidate(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	b.expect(t, tiered.EventBusGap)
	level, attrs, ok := logs.find("went missing")
	if !ok || level != slog.LevelWarn || len(attrs["node"].String()) != 32 {
		t.Fatalf("gap log: found %v, level %v, attrs %v; want Warn with a node ID", ok, level, attrs)
	}
}
