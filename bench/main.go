// Command bench runs a fleet of cache nodes against Redis and puts
// tiercache side by side with the caches people use today.
//
//	go run ./bench                          # every scenario, on an embedded Redis (miniredis)
//	go run ./bench -redis 127.0.0.1:6390    # on a real server (several addresses: a cluster)
//
// Each node is its own cache with its own Redis connections; -procs runs
// them in separate OS processes. A source of truth with versioned values
// and a load latency counts every load, and every read's version is checked
// against it and against the node's own invalidation log, so stale and late
// reads are counted as DESIGN.md defines them. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	quietJetcache()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run is the whole program: it parses args, runs the scenarios and writes
// the report to out and progress to errOut.
func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg, err := parseFlags(args, errOut)
	if err != nil {
		return err
	}
	if cfg.workerID >= 0 {
		return workerMain(ctx, cfg, os.Stdin, out)
	}
	if cfg.cpuProf != "" {
		f, err := os.Create(cfg.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := runAll(ctx, cfg, args, errOut)
	if err != nil {
		return err
	}
	writeMarkdown(out, rep)
	if cfg.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if cfg.chartOut != "" {
		if err := os.WriteFile(cfg.chartOut, chartSVG(rep), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// report is everything a run of the program measured.
type report struct {
	Environment string         `json:"environment"`
	Command     string         `json:"command"`
	Nodes       int            `json:"nodes"`
	Procs       int            `json:"procs"`
	Budget      string         `json:"memory_budget"`
	Scenarios   []scenarioInfo `json:"scenarios"`
	Results     []*result      `json:"results"`
	Notes       []string       `json:"notes,omitempty"`
	Started     time.Time      `json:"started"`
	Took        time.Duration  `json:"took_ns"`
}

type scenarioInfo struct {
	Name  string `json:"name"`
	About string `json:"about"`
}

func runAll(ctx context.Context, cfg *config, args []string, errOut io.Writer) (*report, error) {
	start := time.Now()
	e, err := newEnv(cfg.redis)
	if err != nil {
		return nil, err
	}
	defer e.close()
	words := arenaWords(cfg.maxKeys())
	var a *arena
	if cfg.procs > 0 {
		path := arenaFile()
		if a, err = mapArena(path, words, true); err != nil {
			return nil, err
		}
		defer os.Remove(path)
	} else {
		a = newMemArena(words)
	}
	defer a.close()
	t, err := newTruth(a, cfg.maxKeys(), cfg.latency, cfg.valueSize)
	if err != nil {
		return nil, err
	}
	var f fleet
	if cfg.procs > 0 {
		if f, err = startProcFleet(cfg, e, a.path, args); err != nil {
			return nil, err
		}
	} else {
		f = &localFleet{s: &hostServer{cfg: cfg, env: e, t: t}}
	}
	defer f.close()

	rep := &report{
		Environment: e.name, Command: "go run ./bench " + quoteArgs(args), Nodes: cfg.nodes, Procs: cfg.procs,
		Started: start,
	}
	b := (&host{cfg: cfg, t: t}).budget()
	rep.Budget = fmt.Sprintf("%d entries (entry-bounded caches) or %d bytes = %d entries x %d-byte JSON value (byte-bounded caches), per node",
		b.entries, b.bytes, b.entries, b.bytes/int64(b.entries))
	prog := newProgress(errOut, cfg.progress)
	run := 0
	for _, sc := range scenarios() {
		if !slices.Contains(cfg.workloads, sc.name) {
			continue
		}
		rep.Scenarios = append(rep.Scenarios, scenarioInfo{sc.name, sc.about(cfg)})
		for _, sys := range systems() {
			if !cfg.wants(sys.name) || (sys.expiryOnly && sc.name != "expiry") {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if sys.realRedisOnly && !e.realRedis() {
				rep.Results = append(rep.Results, &result{Scenario: sc.name, Cache: sys.name, Config: sys.config,
					Skipped: "needs a real Redis (RESP3 key tracking): run with -redis ADDR"})
				continue
			}
			run++
			prefix := "tcb" + strconv.FormatInt(int64(os.Getpid()), 36) + "x" + strconv.Itoa(run)
			r, err := runOne(ctx, cfg, e, t, f, sc, sys, prefix, prog)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				r = &result{Scenario: sc.name, Cache: sys.name, Config: sys.config, Skipped: "failed: " + err.Error()}
			}
			rep.Results = append(rep.Results, r)
		}
	}
	prog.clear()
	if !e.realRedis() {
		rep.Notes = append(rep.Notes, "miniredis runs every Lua script in a fresh interpreter under one global lock, and tiercache fills every miss with a compare-and-set script, so miss-heavy figures here understate it; client-side caching peers need a real server. Run with -redis ADDR for representative figures.")
	}
	if n := jetLogger.warnings.Load(); n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("jetcache-go logged %d warnings or errors (such as sync events dropped because its event buffer was full).", n))
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// runOne runs scenario sc against sys on the whole fleet.
func runOne(ctx context.Context, cfg *config, e *env, t *truth, f fleet, sc *scenario, sys *system, prefix string, prog *progress) (res *result, err error) {
	t.reset()
	spec := runSpec{Scenario: sc.name, System: sys.name, Prefix: prefix}
	defer func() {
		f.do(context.WithoutCancel(ctx), command{Op: "close"})
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if cerr := e.cleanup(cctx, prefix); cerr != nil && err == nil {
			err = fmt.Errorf("cleanup: %w", cerr)
		}
	}()
	steps := []command{{Op: "setup", Spec: spec}, {Op: "hello"}}
	for _, c := range steps {
		if _, err := f.do(ctx, c); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Op, err)
		}
	}
	t.markOrigin()
	warmStart := time.Now()
	for i := range sc.warmPhases {
		if _, err := f.do(ctx, command{Op: "warm", Phase: i}); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	startAt := time.Now().Add(20 * time.Millisecond)
	if cfg.procs > 0 {
		startAt = startAt.Add(80 * time.Millisecond)
	}
	warmEnd := startAt.Sub(warmStart)
	t.resetOps()
	stop := prog.watch(sc.name, sys.name, startAt, sc.length(cfg), t)
	_, err = f.do(ctx, command{Op: "run", Start: startAt.UnixNano()})
	stop()
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	parts, err := f.do(ctx, command{Op: "finish"})
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	total := &partial{}
	for _, p := range parts {
		if p != nil {
			total.merge(p)
		}
	}
	return newResult(sc, sys, cfg, total, t, warmEnd), nil
}

func quoteArgs(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		if a == "" || strings.ContainsAny(a, " \t'\"$") {
			a = strconv.Quote(a)
		}
		s += a
	}
	return s
}
