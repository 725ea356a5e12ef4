// Command bench runs tiercache side by side with a Redis-only cache on a
// fleet of nodes and prints a report.
//
//	go run ./bench                 # on an embedded Redis (miniredis)
//	go run ./bench -redis ADDR     # on a real server
//
// Each node is a separate cache with its own Redis connections; a simulated
// database with a fixed load latency counts every load.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	redis    string
	nodes    int
	workers  int
	keys     int
	skew     float64
	duration time.Duration
	latency  time.Duration
	writes   float64
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.redis, "redis", "", "address of a real Redis (default: an embedded miniredis)")
	fs.IntVar(&cfg.nodes, "nodes", 4, "cache nodes (each with its own connections)")
	fs.IntVar(&cfg.workers, "workers", 8, "reading goroutines per node")
	fs.IntVar(&cfg.keys, "keys", 10000, "distinct keys")
	fs.Float64Var(&cfg.skew, "skew", 1.1, "Zipf skew of the reads (> 1)")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "run time of each cache")
	fs.DurationVar(&cfg.latency, "latency", 2*time.Millisecond, "simulated database latency per load")
	fs.Float64Var(&cfg.writes, "writes", 0.01, "fraction of operations that write (update + invalidate)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.nodes < 1 || cfg.workers < 1 || cfg.keys < 1 || cfg.skew <= 1 || cfg.duration <= 0 || cfg.writes < 0 || cfg.writes > 1 {
		return fmt.Errorf("invalid flags: need nodes, workers, keys >= 1, skew > 1, duration > 0, writes in [0, 1]")
	}
	env, err := newEnv(cfg.redis)
	if err != nil {
		return err
	}
	defer env.close()
	fmt.Fprintf(out, "# tiercache bench: zipf workload on %s\n\n", env.name)
	fmt.Fprintf(out, "%d nodes x %d workers, %d keys (skew %.2f), %.0f%% writes, %v per load, %v per cache\n\n",
		cfg.nodes, cfg.workers, cfg.keys, cfg.skew, cfg.writes*100, cfg.latency, cfg.duration)
	var results []result
	for _, sut := range systems() {
		r, err := runZipf(ctx, env, sut, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", sut.name, err)
		}
		results = append(results, r)
	}
	report(out, results)
	if cfg.redis == "" {
		fmt.Fprintln(out, "\nNote: miniredis runs every Lua script in a fresh interpreter under its global lock, and")
		fmt.Fprintln(out, "tiercache fills each miss with one compare-and-set script, so miss-heavy figures here")
		fmt.Fprintln(out, "understate it. Run with -redis ADDR against a real server for representative figures.")
	}
	return nil
}
