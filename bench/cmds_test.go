package main

import (
	"context"
	"testing"
	"time"
)

// cmdNode is a cache node that only counts the Redis commands it is told
// to have sent.
type cmdNode struct{ ne *nodeEnv }

func (n *cmdNode) get(context.Context, int) (value, error)    { n.ne.cmds.Add(1); return value{}, nil }
func (n *cmdNode) invalidate(context.Context, []int) error    { return nil }
func (n *cmdNode) invalidateGroup(context.Context, int) error { return nil }
func (n *cmdNode) tiers() tierCounts                          { return tierCounts{} }
func (n *cmdNode) close() error                               { return nil }

// The commands of the warm-up are not the run's: cmds/op divides by the
// run's operations only.
func TestRunCommandsExcludeWarmUp(t *testing.T) {
	tr, err := newTruth(newMemArena(arenaWords(10)), 10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	hn := &hostedNode{log: newNodeLog(tr, 0, propNone)}
	hn.ne = &nodeEnv{idx: 0, t: tr, log: hn.log, cmds: &hn.cmds}
	hn.node = &cmdNode{hn.ne}
	hn.cmds.Store(1000) // the warm-up's
	h := &host{t: tr, nodes: []*hostedNode{hn}, sc: &scenario{run: func(ctx context.Context, h *host, start time.Time) error {
		w := &worker{hn: hn}
		defer w.done()
		for range 5 {
			w.read(ctx, 1)
		}
		return nil
	}}}
	if err := h.run(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if p := h.finish(); p.Cmds != 5 || p.Reads != 5 {
		t.Errorf("%d commands for %d reads; want 5 for 5 (the warm-up's 1000 left out)", p.Cmds, p.Reads)
	}
}
