// Command bench runs a fleet of cache nodes against Redis and puts
// tiercache side by side with the caches people use today.
//
//	go run ./bench                          # every scenario, on a redis-server it starts itself
//	go run ./bench -redis 127.0.0.1:6390    # on a server of yours (several addresses: a cluster)
//
// Without -redis the harness starts a redis-server from PATH on a free
// loopback port and stops it at the end; with none installed it runs on an
// embedded miniredis, and the report opens with a warning that those
// figures are not representative. The Markdown report goes to stdout and
// to a file whose path it prints (-report).
//
// Each node is its own cache with its own Redis connections; -procs runs
// them in separate OS processes. A source of truth with versioned values
// and a load latency counts every load, and every read's version is checked
// against it and against the node's own invalidation log, so stale and late
// reads are counted as docs/guarantees.md defines them. See bench/README.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	quietJetcache()
	// Ctrl-C (or SIGTERM) cancels the run, which then stops what it
	// started (worker processes, its redis-server) and returns; a second
	// one ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "bench: interrupted; what the run started is stopped")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run is the whole program: it parses args, runs the scenarios and writes
// the report to out and progress to errOut.
func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	cfg, err := parseFlags(args, errOut)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h: the usage is printed, and asking for it is no error
	}
	if err != nil {
		return err
	}
	if ws := os.Getenv(workerEnv); ws != "" {
		if err := cfg.setWorker(ws); err != nil {
			return err
		}
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
	var md bytes.Buffer
	writeMarkdown(&md, rep)
	if _, err := out.Write(md.Bytes()); err != nil {
		return err
	}
	path, err := saveReport(cfg.report, md.Bytes(), rep.Started)
	if err != nil {
		return err
	}
	fmt.Fprintf(errOut, "bench: report written to %s\n", path)
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

// saveReport writes the Markdown report md to path, or when path is empty
// to bench-results/report-TIME.md in the working directory (in the
// temporary directory if that cannot be written), never over an earlier
// report. It returns the absolute path written.
func saveReport(path string, md []byte, started time.Time) (string, error) {
	if path != "" {
		if err := os.WriteFile(path, md, 0o644); err != nil {
			return "", err
		}
		return filepath.Abs(path)
	}
	name := "report-" + started.Format("20060102-150405")
	var errs []error
	for _, dir := range []string{"bench-results", filepath.Join(os.TempDir(), "tiercache-bench-results")} {
		p, err := createReport(dir, name, md)
		if err == nil {
			return filepath.Abs(p)
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("cannot write the report file: %w", errors.Join(errs...))
}

// createReport writes md to a new file dir/name.md, or dir/name-N.md if
// that exists.
func createReport(dir, name string, md []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for i := 1; ; i++ {
		p := filepath.Join(dir, name+".md")
		if i > 1 {
			p = filepath.Join(dir, fmt.Sprintf("%s-%d.md", name, i))
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) && i < 100 {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(md)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return p, err
	}
}

// report is everything a run of the program measured.
type report struct {
	Warning     string         `json:"warning,omitempty"` // why the figures are not representative, if they are not
	Environment string         `json:"environment"`
	Command     string         `json:"command"`
	Nodes       int            `json:"nodes"`
	Rounds      int            `json:"rounds"`
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
	e, err := chooseEnv(cfg, exec.LookPath, errOut)
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
		Warning: e.warning, Environment: e.name, Command: "go run ./bench " + quoteArgs(args), Nodes: cfg.nodes, Rounds: cfg.rounds, Procs: cfg.procs,
		Started: start,
	}
	b := (&host{cfg: cfg, t: t}).budget()
	rep.Budget = fmt.Sprintf("%d entries (entry-bounded caches) or %d bytes = %d entries x %d-byte JSON value (byte-bounded caches), "+
		"or %d heap bytes for the same entries (tiercache, whose L1 counts what an entry holds in memory), per node",
		b.entries, b.bytes, b.entries, b.bytes/int64(b.entries), b.heap)
	prog := newProgress(errOut, cfg.progress)
	run := 0
	for _, sc := range scenarios() {
		if !slices.Contains(cfg.workloads, sc.name) {
			continue
		}
		rep.Scenarios = append(rep.Scenarios, scenarioInfo{sc.name, sc.about(cfg)})
		var syss []*system
		for _, sys := range systems() {
			if cfg.wants(sys.name) && sys.runsIn(sc.name) {
				syss = append(syss, sys)
			}
		}
		runs := make([][]*result, len(syss))
		for n, i := range interleave(len(syss), cfg.rounds) {
			sys := syss[i]
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if sys.realRedisOnly && !e.realRedis() {
				if len(runs[i]) == 0 {
					runs[i] = append(runs[i], &result{Scenario: sc.name, Cache: sys.name, Config: sys.config,
						Skipped: "needs a real Redis (RESP3 key tracking): run with -redis ADDR"})
				}
				continue
			}
			run++
			prefix := "tcb" + strconv.FormatInt(int64(os.Getpid()), 36) + "x" + strconv.Itoa(run)
			label := sc.name
			if cfg.rounds > 1 {
				label = fmt.Sprintf("%s %d/%d", sc.name, n/len(syss)+1, cfg.rounds)
			}
			r, err := runOne(ctx, cfg, e, t, f, sc, sys, prefix, prog, label)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				r = &result{Scenario: sc.name, Cache: sys.name, Config: sys.config, Skipped: "failed: " + err.Error()}
			}
			runs[i] = append(runs[i], r)
		}
		for _, rs := range runs {
			rep.Results = append(rep.Results, combineRounds(rs))
		}
	}
	prog.clear()
	if n := jetLogger.warnings.Load(); n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("jetcache-go logged %d warnings or errors (such as sync events dropped because its event buffer was full).", n))
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// runOne runs scenario sc against sys on the whole fleet.
func runOne(ctx context.Context, cfg *config, e *env, t *truth, f fleet, sc *scenario, sys *system, prefix string, prog *progress, label string) (res *result, err error) {
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
	if sc.prepare != nil {
		sc.prepare(cfg, t, startAt)
	}
	stop := prog.watch(label, sys.name, startAt, sc.length(cfg), t)
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
