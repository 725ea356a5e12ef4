package redistest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
)

// TestFailHook: the pipelines asked for fail, sent to the server or not,
// then pipelines and single commands pass again.
func TestFailHook(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	h := &redistest.FailHook{}
	rdb.AddHook(h)
	ctx := context.Background()
	set := func(k string) ([]redis.Cmder, error) {
		return rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k, "v", 0)
			return nil
		})
	}
	for _, tc := range []struct {
		key        string
		sent, fail bool
	}{{"sent", true, true}, {"dropped", false, true}, {"passes", false, false}} {
		if tc.fail {
			h.FailPipelines(1, tc.sent)
		}
		cmds, err := set(tc.key)
		if got := errors.Is(err, redistest.ErrInjected); got != tc.fail {
			t.Fatalf("%s: pipeline error %v; want injected %v", tc.key, err, tc.fail)
		}
		if tc.fail && !errors.Is(cmds[0].Err(), redistest.ErrInjected) {
			t.Fatalf("%s: command error %v; want the injected one", tc.key, cmds[0].Err())
		}
		n, err := rdb.Exists(ctx, tc.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := tc.sent || !tc.fail; (n == 1) != want {
			t.Fatalf("%s: key exists %v; want %v", tc.key, n == 1, want)
		}
		if h.Pending() != 0 {
			t.Fatalf("%s: %d failures still pending", tc.key, h.Pending())
		}
	}
	// Single commands, the same way; pipelines are not touched.
	for _, tc := range []struct {
		key        string
		sent, fail bool
	}{{"cmd-sent", true, true}, {"cmd-dropped", false, true}, {"cmd-passes", false, false}} {
		if tc.fail {
			h.FailCommands(1, tc.sent)
		}
		err := rdb.Set(ctx, tc.key, "v", 0).Err()
		if got := errors.Is(err, redistest.ErrInjected); got != tc.fail {
			t.Fatalf("%s: command error %v; want injected %v", tc.key, err, tc.fail)
		}
		if _, err := set(tc.key + "-pipe"); err != nil {
			t.Fatalf("%s: a pipeline failed while a command was asked to: %v", tc.key, err)
		}
		n, err := rdb.Exists(ctx, tc.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := tc.sent || !tc.fail; (n == 1) != want {
			t.Fatalf("%s: key exists %v; want %v", tc.key, n == 1, want)
		}
	}
}
