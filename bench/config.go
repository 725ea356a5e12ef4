package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// config is the harness's flags.
type config struct {
	redis     string
	miniredis bool
	procs     int
	nodes     int
	workloads []string
	caches    []string
	duration  time.Duration
	latency   time.Duration
	workers   int
	keys      int
	skew      float64
	valueSize int
	writes    float64
	patterns  float64
	l1Entries int
	ttl       time.Duration

	stampedeGoroutines int
	stampedeRounds     int

	expiryKeys int
	expiryTTL  time.Duration

	invalidateKeys   int
	invalidateWrites float64

	outageKeys  int
	outagePhase time.Duration

	rounds int

	jsonOut  string
	chartOut string
	report   string
	progress string
	cpuProf  string

	// Set in worker processes only, from the environment (see workerEnv):
	// they are not flags, so that -h shows only what a user may set.
	workerID int // -1 in the parent
	arena    string
	mini     bool
}

// workerEnv is the environment variable through which the harness tells a
// worker process (its own binary, re-executed for -procs) what it is:
// JSON of [workerSettings]. The worker gets the user's flags as they were.
const workerEnv = "TIERCACHE_BENCH_WORKER"

// workerSettings are what a worker process learns from workerEnv.
type workerSettings struct {
	ID    int    `json:"id"`    // the worker's index among -procs
	Arena string `json:"arena"` // the shared-memory file of the source of truth
	Redis string `json:"redis"` // the Redis the parent chose, comma-separated addresses
	Mini  bool   `json:"mini"`  // that Redis is the parent's embedded miniredis
}

// setWorker makes c the configuration of a worker process, from the value
// of workerEnv.
func (c *config) setWorker(v string) error {
	var ws workerSettings
	if err := json.Unmarshal([]byte(v), &ws); err != nil || ws.ID < 0 || ws.Arena == "" || ws.Redis == "" {
		return fmt.Errorf("%s=%q: not the settings of a worker", workerEnv, v)
	}
	c.workerID, c.arena, c.redis, c.mini = ws.ID, ws.Arena, ws.Redis, ws.Mini
	return nil
}

// usageHead opens the -h output.
const usageHead = `Usage: go run ./bench [flags]

Runs a fleet of cache nodes against Redis and puts tiercache side by side
with the caches people use today. Without -redis it starts a redis-server of
its own (found on PATH) on a free 127.0.0.1 port and stops it when the run
ends; with no redis-server installed it falls back to an embedded miniredis,
whose figures are not representative (the report opens with a warning).
The Markdown report goes to stdout and to a file (see -report); progress to
stderr. Details: bench/README.md.

Flags:
`

var workloadNames = []string{"zipf", "stampede", "expiry", "invalidate", "outage"}

func parseFlags(args []string, errOut io.Writer) (*config, error) {
	c := &config{workerID: -1}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	var workloads, caches string
	fs.StringVar(&c.redis, "redis", "", "Redis address; several, comma-separated, for a cluster (default: a redis-server the harness starts, or an embedded miniredis if none is installed)")
	fs.BoolVar(&c.miniredis, "miniredis", false, "run on an embedded miniredis even if redis-server is installed (figures not representative)")
	fs.IntVar(&c.procs, "procs", 0, "run the nodes in this many worker processes (0: all in this process)")
	fs.IntVar(&c.nodes, "nodes", 4, "cache nodes, each with its own cache and connections")
	fs.StringVar(&workloads, "workload", "all", "scenarios to run, comma-separated: "+strings.Join(workloadNames, ", ")+", or all")
	fs.StringVar(&caches, "caches", "all", "caches to run, comma-separated names as in the report (case-insensitive substrings), or all")
	fs.DurationVar(&c.duration, "duration", 1200*time.Millisecond, "run time of each cache in the zipf and invalidate scenarios")
	fs.DurationVar(&c.latency, "latency", 2*time.Millisecond, "load latency of the source of truth")
	fs.IntVar(&c.workers, "workers", 8, "reading goroutines per node (zipf, expiry, invalidate)")
	fs.IntVar(&c.keys, "keys", 10000, "keys in the zipf scenario")
	fs.Float64Var(&c.skew, "skew", 1.1, "Zipf skew of the reads (> 1)")
	fs.IntVar(&c.valueSize, "value-size", 128, "bytes of payload per value")
	fs.Float64Var(&c.writes, "writes", 0.01, "share of zipf operations that write (bump the version, then invalidate)")
	fs.Float64Var(&c.patterns, "pattern-share", 0.1, "share of writes that change a group of 10 keys and invalidate it by pattern")
	fs.IntVar(&c.l1Entries, "l1-entries", 2500, "in-process memory budget of every cache, in entries (byte-bounded caches get entries x encoded value size)")
	fs.DurationVar(&c.ttl, "ttl", time.Minute, "TTL in Redis (all scenarios but expiry)")
	fs.IntVar(&c.stampedeGoroutines, "stampede-goroutines", 1000, "goroutines per node that read the cold key at once")
	fs.IntVar(&c.stampedeRounds, "stampede-rounds", 3, "stampedes per cache, each on a new cold key")
	fs.IntVar(&c.expiryKeys, "expiry-keys", 1000, "keys warmed together in the expiry scenario")
	fs.DurationVar(&c.expiryTTL, "expiry-ttl", time.Second, "TTL of the expiry scenario (it runs for 2 TTLs and a quarter)")
	fs.IntVar(&c.invalidateKeys, "invalidate-keys", 1000, "keys in the invalidate scenario")
	fs.Float64Var(&c.invalidateWrites, "invalidate-writes", 0.2, "share of invalidate-scenario operations that write")
	fs.IntVar(&c.outageKeys, "outage-keys", 10000, "keys in the outage scenario")
	fs.DurationVar(&c.outagePhase, "outage-phase", time.Second, "length of each phase of the outage scenario (before, failing, slow, after), and its TTL")
	fs.IntVar(&c.rounds, "rounds", 1, "runs of every selected cache per scenario, interleaved (A B C A B C ...); the report gives the median of each figure and its spread")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&c.chartOut, "chart", "", "also draw the results as an SVG chart in this file")
	fs.StringVar(&c.report, "report", "", "also write the Markdown report to this file (default: bench-results/report-TIME.md in the working directory, or in the temporary directory if that fails)")
	fs.StringVar(&c.progress, "progress", "auto", "progress on stderr: auto (a live line on a terminal, plain lines otherwise), plain, or off")
	fs.StringVar(&c.cpuProf, "cpuprofile", "", "write a CPU profile of the run (this process only) to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.workloads = splitList(workloads)
	if len(c.workloads) == 1 && c.workloads[0] == "all" {
		c.workloads = workloadNames
	}
	c.caches = splitList(caches)
	return c, c.validate()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(strings.ToLower(f)); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.redis == "" || !c.miniredis, "-redis and -miniredis exclude each other")
	check(c.nodes >= 1 && c.nodes <= maxNodes, fmt.Sprintf("-nodes must be in [1, %d]", maxNodes))
	check(c.procs >= 0 && c.procs <= c.nodes, "-procs must be in [0, nodes]")
	check(c.workers >= 1, "-workers must be at least 1")
	check(c.keys >= groupSize, fmt.Sprintf("-keys must be at least %d", groupSize))
	check(c.skew > 1, "-skew must be above 1")
	check(c.valueSize >= 0, "-value-size must not be negative")
	check(c.duration > 0, "-duration must be positive")
	check(c.latency >= 0, "-latency must not be negative")
	check(c.writes >= 0 && c.writes <= 1, "-writes must be in [0, 1]")
	check(c.patterns >= 0 && c.patterns <= 1, "-pattern-share must be in [0, 1]")
	check(c.l1Entries >= 1, "-l1-entries must be at least 1")
	check(c.ttl >= time.Second, "-ttl must be at least 1s")
	check(c.stampedeGoroutines >= 1 && c.stampedeRounds >= 1, "-stampede-goroutines and -stampede-rounds must be at least 1")
	check(c.expiryKeys >= 1 && c.expiryTTL >= 100*time.Millisecond, "-expiry-keys must be at least 1 and -expiry-ttl at least 100ms")
	check(c.invalidateKeys >= groupSize, fmt.Sprintf("-invalidate-keys must be at least %d", groupSize))
	check(c.invalidateWrites >= 0 && c.invalidateWrites <= 1, "-invalidate-writes must be in [0, 1]")
	check(c.outageKeys >= groupSize, fmt.Sprintf("-outage-keys must be at least %d", groupSize))
	check(c.outagePhase >= 100*time.Millisecond, "-outage-phase must be at least 100ms")
	check(c.rounds >= 1 && c.rounds <= 100, "-rounds must be in [1, 100]")
	check(slices.Contains([]string{"auto", "plain", "off"}, c.progress), "-progress must be auto, plain or off")
	for _, w := range c.workloads {
		check(slices.Contains(workloadNames, w), fmt.Sprintf("unknown workload %q (have %s)", w, strings.Join(workloadNames, ", ")))
	}
	check(len(c.workloads) > 0, "-workload names none")
	check(len(c.caches) > 0, "-caches names none")
	return errors.Join(errs...)
}

// wants reports whether -caches selects the system named name: a filter
// that is some system's whole name selects that one; any other selects
// every system whose name contains it.
func (c *config) wants(name string) bool {
	name = strings.ToLower(name)
	for _, want := range c.caches {
		switch {
		case want == "all" || want == name:
			return true
		case strings.Contains(name, want) && !slices.ContainsFunc(systems(), func(s *system) bool { return strings.ToLower(s.name) == want }):
			return true
		}
	}
	return false
}

// maxKeys is the largest key space of the scenarios selected: the arena
// holds that many keys.
func (c *config) maxKeys() int {
	return max(c.keys, c.invalidateKeys, c.outageKeys, c.expiryKeys+groupSize, c.stampedeRounds+groupSize)
}
