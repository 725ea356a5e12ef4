package remote_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/remote"
)

// printHook keeps how go-redis prints each script call it sends (the form
// errors and tracing hooks show).
type printHook struct {
	mu      sync.Mutex
	printed []string
}

func (h *printHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *printHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *printHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "evalsha" {
			h.mu.Lock()
			h.printed = append(h.printed, cmd.String())
			h.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

// TestScriptCallsPrintTheirArguments: the lease taking's and the fill's
// script calls, whose arguments are built without an allocation each,
// print as the commands they send: keys and integers, not pointers.
func TestScriptCallsPrintTheirArguments(t *testing.T) {
	rdb := miniClient(t, miniredis.RunT(t))
	h := &printHook{}
	rdb.AddHook(h)
	s, err := remote.New(rdb, remote.Options{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.LoadScripts(ctx); err != nil { // no EVAL after NOSCRIPT
		t.Fatal(err)
	}
	l, won, _, err := s.AcquireAt(ctx, "user:1", 5*time.Second)
	if err != nil || !won {
		t.Fatalf("AcquireAt = %v, %v; want the lease", won, err)
	}
	hkey, ok := s.HandOffKey(l)
	if !ok {
		t.Fatal("HandOffKey: no key")
	}
	stamp := s.TagKey("t1")
	rec := remote.Record{Kind: remote.KindValue, Token: 7, Begin: 1234567, Payload: []byte("v")}
	f := remote.Fill{Lease: l, Record: rec, TTL: 9 * time.Second, HandOff: 2 * time.Second, Stamps: []string{stamp}}
	got, err := s.FillStamped(ctx, []remote.Fill{f}, nil)
	if err != nil || len(got) != 1 || !got[0].OK {
		t.Fatalf("FillStamped = %v, %v; want one fill done", got, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.printed) != 2 {
		t.Fatalf("script calls printed: %q; want 2", h.printed)
	}
	acquire, fill := h.printed[0], h.printed[1]
	for _, want := range []string{" 1 ns:user:1 ", " 5000"} {
		if !strings.Contains(acquire, want) {
			t.Errorf("lease taking printed as %q; want %q in it", acquire, want)
		}
	}
	for _, want := range []string{" 3 ns:user:1 " + s.RedisKey(hkey) + " " + s.RedisKey(stamp) + " ", " 9000 2000 1234567 "} {
		if !strings.Contains(fill, want) {
			t.Errorf("fill printed as %q; want %q in it", fill, want)
		}
	}
	for _, p := range h.printed {
		if strings.Contains(p, "0xc") {
			t.Errorf("script call printed as %q: a pointer for an argument", p)
		}
	}
}
