package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/redistest"
)

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// Tests that check the program as a user runs it (exit codes,
	// signals) run this binary as the program itself.
	if os.Getenv(asMainEnv) == "1" {
		os.Unsetenv(asMainEnv)
		main()
		os.Exit(0)
	}
	// With -procs the harness re-executes its own binary as workers; in
	// tests that binary is the test binary, which then serves as a worker.
	if os.Getenv(workerEnv) != "" {
		quietJetcache()
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString("worker: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	quietJetcache()
	// jetcache-go writes TTLs with SETEX (whole seconds); go-redis logs
	// each truncation of the smoke run's short TTLs.
	redis.SetLogger(discardLogger{})
	log.SetOutput(io.Discard) // go-redis/cache logs each TTL under 1s it replaces with its default
	goleak.VerifyTestMain(m)
}

// asMainEnv makes the test binary run main() instead of the tests.
const asMainEnv = "TIERCACHE_BENCH_TEST_AS_MAIN"

// smokeArgs are a run small enough for the race detector: seconds on
// miniredis, a few goroutines per node.
var smokeArgs = []string{
	"-nodes", "2", "-workers", "2", "-duration", "240ms", "-latency", "200us",
	"-keys", "300", "-writes", "0.05", "-invalidate-keys", "60",
	"-stampede-goroutines", "30", "-stampede-rounds", "2",
	"-expiry-keys", "40", "-expiry-ttl", "150ms", "-outage-keys", "300", "-outage-phase", "150ms",
	"-l1-entries", "200", "-progress", "off",
}

// runJSON runs the harness with args and returns its report as the JSON
// file decodes it, and the Markdown it printed.
func runJSON(t *testing.T, args ...string) (*report, string) {
	t.Helper()
	rep, md, _ := runAllOut(t, args...)
	return rep, md
}

// runAllOut is runJSON that also returns what the run wrote on stderr.
func runAllOut(t *testing.T, args ...string) (*report, string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "out.json")
	chart := filepath.Join(t.TempDir(), "out.svg")
	mdFile := filepath.Join(t.TempDir(), "report.md")
	var out, errOut bytes.Buffer
	args = append(append([]string{}, args...), "-json", file, "-chart", chart, "-report", mdFile)
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("run(%q) = %v\nstderr: %s", args, err, errOut.String())
	}
	if md, err := os.ReadFile(mdFile); err != nil || !bytes.Equal(md, out.Bytes()) {
		t.Fatalf("report file: %v; its %d bytes differ from the %d printed", err, len(md), out.Len())
	}
	if !strings.Contains(errOut.String(), "bench: report written to "+mdFile+"\n") {
		t.Fatalf("the run did not print the report's path %s; stderr:\n%s", mdFile, errOut.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	svg, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg, &rep)
	return &rep, out.String(), errOut.String()
}

// TestScenarioSmoke runs each scenario briefly against every cache that
// runs on miniredis and checks that the report's numbers agree with each
// other and with the source of truth.
func TestScenarioSmoke(t *testing.T) {
	for _, sc := range workloadNames {
		t.Run(sc, func(t *testing.T) {
			rep, md := runJSON(t, append([]string{"-workload", sc, "-miniredis"}, smokeArgs...)...)
			ran := 0
			for _, r := range rep.Results {
				if r.Scenario != sc {
					t.Errorf("result of scenario %q in a %s run", r.Scenario, sc)
				}
				if r.Skipped != "" {
					if !strings.Contains(r.Cache, "CSC") {
						t.Errorf("%s skipped: %s", r.Cache, r.Skipped)
					}
					continue
				}
				ran++
				checkConsistent(t, r)
				if !strings.Contains(md, "| "+r.Cache+" | ") {
					t.Errorf("the Markdown report has no row for %s", r.Cache)
				}
			}
			if ran < 6 {
				t.Errorf("%d caches ran; want at least 6", ran)
			}
		})
	}
}

func checkConsistent(t *testing.T, r *result) {
	t.Helper()
	name := r.Scenario + "/" + r.Cache
	if r.Reads == 0 || r.Throughput <= 0 {
		t.Errorf("%s: %d reads, %.0f ops/s; want some", name, r.Reads, r.Throughput)
	}
	if r.Scenario == "outage" {
		checkOutage(t, r)
	} else if r.Errors != 0 {
		t.Errorf("%s: %d errors, first %q", name, r.Errors, r.FirstError)
	}
	if r.Loads != r.KeyLoads {
		t.Errorf("%s: the source counted %d loads in all and %d key by key", name, r.Loads, r.KeyLoads)
	}
	if r.Loads == 0 || r.MaxKeyLoads == 0 || r.MaxKeyLoads > r.Loads {
		t.Errorf("%s: loads %d, max per key %d", name, r.Loads, r.MaxKeyLoads)
	}
	if r.Scenario != "expiry" && r.Ideal > r.Loads {
		t.Errorf("%s: ideal %d loads above the %d made", name, r.Ideal, r.Loads)
	}
	if r.Checked != r.Reads {
		t.Errorf("%s: %d reads checked of %d", name, r.Checked, r.Reads)
	}
	if r.Stale+r.Late+r.Unclassified > r.Reads {
		t.Errorf("%s: %d stale + %d late + %d unclassified > %d reads", name, r.Stale, r.Late, r.Unclassified, r.Reads)
	}
	if r.L1Share < 0 || r.L2Share < 0 || r.L1Share+r.L2Share > 1.0001 {
		t.Errorf("%s: L1 share %v, L2 share %v", name, r.L1Share, r.L2Share)
	}
	if !(r.P50 <= r.P99 && r.P99 <= r.P999) {
		t.Errorf("%s: percentiles out of order: %v %v %v", name, r.P50, r.P99, r.P999)
	}
	if r.Mean <= 0 || r.Waited < 0 || r.Waited > 1 {
		t.Errorf("%s: mean %v (p99.9 %v), waited %v", name, r.Mean, r.P999, r.Waited)
	}
	if r.RedisCommands == 0 {
		t.Errorf("%s: no Redis commands counted", name)
	}
	if len(r.Broken) > 0 || r.Unclassified > 0 {
		t.Errorf("%s: checker broken %v, %d unclassified", name, r.Broken, r.Unclassified)
	}
	if strings.HasPrefix(r.Cache, "tiercache") {
		// The library's own count of loader calls must equal the source's.
		if r.CacheLoads != r.Loads {
			t.Errorf("%s: tiercache counted %d loader calls, the source %d", name, r.CacheLoads, r.Loads)
		}
		switch r.Cache {
		case "tiercache, no bus":
		case "tiercache, MaxStale 50ms":
			// Stale reads are its contract, each younger than the window
			// counted from the invalidation call (the age counts from its
			// return, later still).
			if r.StaleAgeMax >= maxStaleWindow || r.StaleAgeLowerBound {
				t.Errorf("%s: oldest stale read %v (lower bound: %v); want under %v", name, r.StaleAgeMax, r.StaleAgeLowerBound, maxStaleWindow)
			}
		default:
			if r.Stale != 0 {
				t.Errorf("%s: %d stale reads; want 0", name, r.Stale)
			}
		}
	}
	if r.Scenario == "stampede" && r.Ideal != 2 {
		t.Errorf("%s: ideal %d; want one load per round", name, r.Ideal)
	}
}

// checkOutage checks that the outage scenario's figures per phase add up
// to the run's: every read and error is in one phase. Whether errors
// happen in a phase depends on timing, so no count is asserted.
func checkOutage(t *testing.T, r *result) {
	t.Helper()
	o := r.Outage
	if o == nil {
		t.Fatalf("outage/%s: no figures per phase", r.Cache)
	}
	var reads, errs uint64
	for i := range phases {
		reads += o.Reads[i]
		errs += o.Errors[i]
		if o.WarmErrors[i] > o.Errors[i] || o.Errors[i] > o.Reads[i] {
			t.Errorf("outage/%s, phase %s: %d errors on keys cached before, %d errors, %d reads", r.Cache, phaseNames[i], o.WarmErrors[i], o.Errors[i], o.Reads[i])
		}
	}
	if reads != r.Reads+r.Errors || errs != r.Errors {
		t.Errorf("outage/%s: phases hold %d reads and %d errors; the run %d reads and %d errors", r.Cache, reads, errs, r.Reads+r.Errors, r.Errors)
	}
	if !isTiercache(r.Cache) && o.Fallbacks != 0 {
		t.Errorf("outage/%s: %d fail-safe fallbacks counted for a peer", r.Cache, o.Fallbacks)
	}
}

func checkSVG(t *testing.T, svg []byte, rep *report) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("chart is not well-formed XML: %v", err)
			}
			break
		}
	}
	for _, r := range rep.Results {
		if !bytes.Contains(svg, []byte(">"+r.Cache+"<")) {
			t.Errorf("chart has no label %q", r.Cache)
		}
	}
}

// TestProcs runs the fleet as worker processes sharing the source of truth.
func TestProcs(t *testing.T) {
	args := append([]string{"-workload", "invalidate", "-caches", "tiercache,no bus", "-procs", "2", "-miniredis"}, smokeArgs...)
	rep, _ := runJSON(t, args...)
	n := 0
	for _, r := range rep.Results {
		if r.Skipped != "" {
			t.Fatalf("%s skipped: %s", r.Cache, r.Skipped)
		}
		n++
		checkConsistent(t, r)
	}
	if n != 2 || rep.Procs != 2 {
		t.Fatalf("%d results with %d procs; want tiercache with and without its bus, 2 procs", n, rep.Procs)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nodes", "0"}, {"-skew", "1"}, {"-writes", "2"}, {"-nope"}, {"-workload", "nope"},
		{"-procs", "9"}, {"-progress", "loud"}, {"extra"}, {"-redis", "127.0.0.1:1", "-miniredis"},
		{"-worker", "0"}, {"-arena", "x"}, {"-mini"}, // internal settings are not flags
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// TestRealRedisSmoke runs the invalidate scenario on a real redis-server
// (started for the test), where the client-side caching peers run too.
func TestRealRedisSmoke(t *testing.T) {
	srv := redistest.Start(t)
	args := append([]string{"-redis", srv.Addr(), "-workload", "invalidate", "-caches", "tiercache,no bus,csc"}, smokeArgs...)
	rep, _, stderr := runAllOut(t, args...)
	if strings.Contains(stderr, "started redis-server") || rep.Warning != "" {
		t.Errorf("with -redis the run started a server of its own or warned:\n%s\nwarning: %q", stderr, rep.Warning)
	}
	got := map[string]bool{}
	for _, r := range rep.Results {
		if r.Skipped != "" {
			t.Errorf("%s skipped on a real server: %s", r.Cache, r.Skipped)
			continue
		}
		got[r.Cache] = true
		checkConsistent(t, r)
		if r.Propagates && r.LagSamples == 0 {
			t.Errorf("%s: no invalidation reached another node", r.Cache)
		}
	}
	for _, want := range []string{"tiercache", "tiercache, no bus", "rueidis CSC", "go-redis CSC"} {
		if !got[want] {
			t.Errorf("no result for %s", want)
		}
	}
}

// TestCachesFilter: a whole name selects that cache alone, a part of one
// every cache whose name holds it.
func TestCachesFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"tiercache", []string{"tiercache"}},
		{"No Bus", []string{"tiercache, no bus"}},
		{"TierCache,no jitter", []string{"tiercache", "tiercache, no jitter"}},
		{"tierc", []string{"tiercache, no bus", "tiercache", "tiercache, no jitter", "tiercache, fail-safe", "tiercache, MaxStale 50ms"}},
		{"fail-safe", []string{"tiercache, fail-safe"}},
		{"csc,redis only", []string{"redis only", "rueidis CSC", "go-redis CSC"}},
	} {
		cfg, err := parseFlags([]string{"-caches", tc.filter}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range systems() {
			if cfg.wants(s.name) {
				got = append(got, s.name)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("-caches %q selects %q; want %q", tc.filter, got, tc.want)
		}
	}
}
