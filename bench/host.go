package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiercache/tiercache/internal/memsize"
	"github.com/tiercache/tiercache/local"
)

// runSpec names one run: a scenario against one cache. The parent sends it
// to every host.
type runSpec struct {
	Scenario string `json:"scenario"`
	System   string `json:"system"`
	Prefix   string `json:"prefix"` // every Redis key and channel of the run starts with it
}

// host runs the nodes of one process during one run: all of them in one
// process, or its share (node i on worker i mod procs) with -procs.
type host struct {
	cfg   *config
	env   *env
	t     *truth
	spec  runSpec
	sc    *scenario
	sys   *system
	nodes []*hostedNode
	mon   *monitor
	keys  []string

	stopSync chan struct{}
	syncDone sync.WaitGroup
}

// hostedNode is one node of the fleet and what it measured.
type hostedNode struct {
	ne   *nodeEnv
	node cacheNode
	log  *nodeLog
	cmds atomic.Uint64

	mu     sync.Mutex // protects acc
	acc    partial
	base   tierCounts // the tier counters when the run began (warm-up excluded)
	cmds0  uint64     // cmds when the run began (warm-up excluded)
	closed bool
}

// partial is what the nodes of one host measured in one run; the parent
// merges every host's.
type partial struct {
	Reads      uint64        `json:"reads"`
	Writes     uint64        `json:"writes"`
	Errors     uint64        `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Lat        hist          `json:"latency"`
	Tiers      tierCounts    `json:"tiers"`
	Checked    uint64        `json:"checked"`
	Stale      uint64        `json:"stale"`
	Late       uint64        `json:"late"`
	Unsure     uint64        `json:"unclassified"`
	Lag        hist          `json:"lag"`
	KeyLag     hist          `json:"key_lag"`
	StaleAge   hist          `json:"stale_age"`
	StaleMax   time.Duration `json:"stale_age_max"`
	StaleLow   bool          `json:"stale_age_max_lower_bound,omitempty"`
	Cmds       uint64        `json:"redis_commands"`
	Broken     []string      `json:"broken,omitempty"`
	Elapsed    time.Duration `json:"elapsed"`
	Outage     *outageAcc    `json:"outage,omitempty"` // outage scenario only
}

func (p *partial) merge(o *partial) {
	p.Reads += o.Reads
	p.Writes += o.Writes
	p.Errors += o.Errors
	if p.FirstError == "" {
		p.FirstError = o.FirstError
	}
	p.Lat.merge(&o.Lat)
	p.Tiers.add(o.Tiers)
	p.Checked += o.Checked
	p.Stale += o.Stale
	p.Late += o.Late
	p.Unsure += o.Unsure
	p.Lag.merge(&o.Lag)
	p.KeyLag.merge(&o.KeyLag)
	p.addAge(staleAge{hist: o.StaleAge, max: o.StaleMax, maxLow: o.StaleLow})
	p.Cmds += o.Cmds
	p.Broken = append(p.Broken, o.Broken...)
	p.Elapsed = max(p.Elapsed, o.Elapsed)
	if o.Outage != nil {
		if p.Outage == nil {
			p.Outage = &outageAcc{}
		}
		p.Outage.merge(o.Outage)
	}
}

// addAge merges the ages of stale reads a into p's.
func (p *partial) addAge(a staleAge) {
	cur := staleAge{hist: p.StaleAge, max: p.StaleMax, maxLow: p.StaleLow}
	cur.merge(&a)
	p.StaleAge, p.StaleMax, p.StaleLow = cur.hist, cur.max, cur.maxLow
}

// hosts returns the node indices a host runs: all, or worker w's share.
func hostedIndices(cfg *config) []int {
	var out []int
	for i := range cfg.nodes {
		if cfg.procs == 0 || i%cfg.procs == cfg.workerID {
			out = append(out, i)
		}
	}
	return out
}

func findSystem(name string) *system {
	for _, s := range systems() {
		if s.name == name {
			return s
		}
	}
	return nil
}

// setup opens the host's nodes (and the bus monitor first, for tiercache).
func (h *host) setup(ctx context.Context) error {
	h.sc = findScenario(h.spec.Scenario)
	h.sys = findSystem(h.spec.System)
	if h.sc == nil || h.sys == nil {
		return fmt.Errorf("unknown run %+v", h.spec)
	}
	keys := h.sc.keys(h.cfg)
	h.keys = make([]string, keys)
	for k := range h.keys {
		h.keys[k] = h.spec.Prefix + ":" + h.t.id(k)
	}
	logs := make(map[int]*nodeLog)
	for _, i := range hostedIndices(h.cfg) {
		hn := &hostedNode{log: newNodeLog(h.t, i, h.sys.prop)}
		hn.ne = &nodeEnv{
			idx: i, t: h.t, env: h.env, log: hn.log, cmds: &hn.cmds,
			prefix: h.spec.Prefix, keys: h.keys, ttl: h.sc.ttl(h.cfg), l1TTL: min(h.sc.ttl(h.cfg), time.Minute),
			jitter: true, budget: h.budget(),
		}
		logs[i] = hn.log
		h.nodes = append(h.nodes, hn)
	}
	if h.sys.monitor {
		m, err := startMonitor(h.env, h.t, h.spec.Prefix, logs)
		if err != nil {
			return err
		}
		h.mon = m
	}
	for _, hn := range h.nodes {
		n, err := h.sys.open(hn.ne)
		if err != nil {
			return fmt.Errorf("node %d: %w", hn.ne.idx, err)
		}
		hn.node = n
	}
	return nil
}

// budget is the in-process memory every cache gets.
func (h *host) budget() budget {
	v := value{ID: h.t.id(h.t.keys - 1), Version: 1 << 20, Body: h.t.body}
	n, enc := int64(h.cfg.l1Entries), encodedSize(v)
	return budget{entries: h.cfg.l1Entries, bytes: n * int64(enc), heap: heapBudget(n, h.spec.Prefix+":g:"+v.ID, v, enc)}
}

// heapBudget is the L1MaxBytes under which tiercache's L1 holds n entries
// like v under keys like key: n entries' charges plus the structures the L1
// allocates up front, which come off the budget (at most half of it).
func heapBudget(n int64, key string, v value, enc int) int64 {
	entries := n * (memsize.Value(v, enc) + local.EntryBytes[any](key))
	fixed := local.FixedBytes(local.Options{MaxCost: entries})
	return max(entries+fixed, 2*entries)
}

// hello makes every node announce itself on the bus (tiercache), and
// waits until this host's monitor has heard the whole fleet.
func (h *host) hello(ctx context.Context) error {
	if h.mon == nil {
		return nil
	}
	for _, hn := range h.nodes {
		if hl, ok := hn.node.(interface{ hello(context.Context) error }); ok {
			if err := hl.hello(ctx); err != nil {
				return err
			}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return h.mon.waitHellos(wctx, h.cfg.nodes)
}

// run runs the scenario from start; the monitor maps deliveries meanwhile
// so that few reads wait for classification.
func (h *host) run(ctx context.Context, start time.Time) error {
	for _, hn := range h.nodes {
		hn.base = hn.node.tiers()
		hn.cmds0 = hn.cmds.Load()
	}
	if h.mon != nil {
		h.stopSync = make(chan struct{})
		h.syncDone.Add(1)
		go func() {
			defer h.syncDone.Done()
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-h.stopSync:
					return
				case <-t.C:
					h.mon.sync(0)
				}
			}
		}()
	}
	err := h.sc.run(ctx, h, start)
	if h.stopSync != nil {
		close(h.stopSync)
		h.syncDone.Wait()
	}
	return err
}

// finish closes the host's nodes, so that no load of theirs is still
// running (a load a caller gave up on goes on inside the cache), waits for
// the source of truth to settle, and collects what the nodes measured.
func (h *host) finish() *partial {
	p := &partial{}
	tiers := make([]tierCounts, len(h.nodes))
	for _, hn := range h.nodes {
		if err := hn.node.close(); err != nil {
			p.Broken = append(p.Broken, fmt.Sprintf("node %d: close: %v", hn.ne.idx, err))
		}
		hn.closed = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.t.settle(ctx); err != nil {
		p.Broken = append(p.Broken, err.Error())
	}
	for i, hn := range h.nodes {
		if s, ok := hn.node.(interface{ settle(context.Context) error }); ok {
			if err := s.settle(ctx); err != nil {
				p.Broken = append(p.Broken, err.Error())
			}
		}
		tiers[i] = hn.node.tiers()
	}
	if h.mon != nil {
		h.mon.sync(2 * time.Second)
	}
	for i, hn := range h.nodes {
		hn.mu.Lock()
		p.merge(&hn.acc)
		hn.mu.Unlock()
		tc := tiers[i]
		p.Tiers.add(tierCounts{
			L1Hits: tc.L1Hits - hn.base.L1Hits, L2Hits: tc.L2Hits - hn.base.L2Hits,
			LoaderCalls: tc.LoaderCalls, BusTrouble: tc.BusTrouble - hn.base.BusTrouble, FailSafe: tc.FailSafe - hn.base.FailSafe,
		})
		stale, late, unsure, lag, age, broken := hn.log.finish()
		p.addAge(age)
		p.Stale += stale
		p.Late += late
		p.Unsure += unsure
		p.Checked += hn.log.checked.Load()
		p.Lag.merge(&lag)
		kl := hn.log.keyLags()
		p.KeyLag.merge(&kl)
		if broken != "" {
			p.Broken = append(p.Broken, broken)
		}
		p.Cmds += hn.cmds.Load() - hn.cmds0
	}
	return p
}

// close closes the nodes finish did not and the monitor.
func (h *host) close() error {
	var errs []error
	for _, hn := range h.nodes {
		if hn.node != nil && !hn.closed {
			errs = append(errs, hn.node.close())
			hn.closed = true
		}
	}
	if h.mon != nil {
		errs = append(errs, h.mon.close())
		h.mon = nil
	}
	return errors.Join(errs...)
}

// worker is one goroutine's share of a node's measurements, merged into
// the node when it ends.
type worker struct {
	hn      *hostedNode
	p       partial
	pending uint64 // operations not yet reported for progress
}

func (w *worker) read(ctx context.Context, k int) {
	t0 := time.Now()
	v, err := w.hn.node.get(ctx, k)
	d := time.Since(t0)
	w.tick()
	t := w.hn.ne.t
	if ph := t.phaseAt(t.rel(t0)); ph != phaseNone && (err == nil || ctx.Err() == nil) {
		if w.p.Outage == nil {
			w.p.Outage = &outageAcc{}
		}
		w.p.Outage.record(ph, d, err != nil, t.cachedBefore(k))
	}
	if err != nil {
		w.fail(ctx, err)
		return
	}
	w.p.Reads++
	w.p.Lat.record(d)
	w.hn.log.check(k, v.Version, w.hn.ne.t.rel(t0))
}

// writeTimeout bounds one write's invalidation.
const writeTimeout = 10 * time.Second

// write commits new versions of keys (a whole group if group >= 0) and
// invalidates them through the node.
func (w *worker) write(ctx context.Context, keys []int, group int) {
	t := w.hn.ne.t
	vs := make([]uint64, len(keys))
	for i, k := range keys {
		vs[i] = t.commit(k, w.hn.ne.idx)
	}
	// The run's end must not cut an invalidation short: a cache whose
	// message is cut after taking its place in the sender's sequence makes
	// every other node see a gap and flush, as after a lost message.
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	ictx = withWrites(ictx, keys, vs)
	var err error
	if group >= 0 {
		err = w.hn.node.invalidateGroup(ictx, group)
	} else {
		err = w.hn.node.invalidate(ictx, keys)
	}
	w.tick()
	if err != nil {
		w.fail(ctx, err)
		return
	}
	now := t.rel(time.Now())
	for i, k := range keys {
		t.issued(k, vs[i])
		w.hn.log.applied(k, vs[i], 0, now)
	}
	w.p.Writes++
}

// writesKey is the context key under which an invalidation carries the
// writes it is for.
type writesKey struct{}

type carriedWrites struct {
	keys []int
	vs   []uint64
}

// withWrites tells the cache node, through ctx, that its invalidation is
// for versions vs of keys: a peer whose messages name no version
// (jetcache-go) can then say which write each carries.
func withWrites(ctx context.Context, keys []int, vs []uint64) context.Context {
	return context.WithValue(ctx, writesKey{}, carriedWrites{keys, vs})
}

// writeOf returns the version of key k an invalidation under ctx is for (0:
// not known).
func writeOf(ctx context.Context, k int) uint64 {
	cw, _ := ctx.Value(writesKey{}).(carriedWrites)
	for i, key := range cw.keys {
		if key == k {
			return cw.vs[i]
		}
	}
	return 0
}

func (w *worker) tick() {
	if w.pending++; w.pending == 256 {
		w.hn.ne.t.addNodeOps(w.hn.ne.idx, w.pending)
		w.pending = 0
	}
}

func (w *worker) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // the run ended under it
	}
	w.p.Errors++
	if w.p.FirstError == "" {
		w.p.FirstError = err.Error()
	}
}

// done merges the worker into its node.
func (w *worker) done() {
	w.hn.ne.t.addNodeOps(w.hn.ne.idx, w.pending)
	w.hn.mu.Lock()
	w.hn.acc.merge(&w.p)
	w.hn.mu.Unlock()
}

// sleepUntil waits for t or ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
