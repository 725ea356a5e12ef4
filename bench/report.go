package main

import (
	"fmt"
	"io"
	"time"
)

func report(out io.Writer, rs []result) {
	fmt.Fprintln(out, "| cache | ops/s | p50 | p99 | p99.9 | loads | L1 hit % | L2 hit % | errors |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		l1, l2 := "-", "-"
		if s := r.stats; s != nil {
			if t := s.L1Hits + s.L1Misses; t > 0 {
				l1 = fmt.Sprintf("%.1f", 100*float64(s.L1Hits)/float64(t))
			}
			if t := s.L2Hits + s.L2Misses; t > 0 {
				l2 = fmt.Sprintf("%.1f", 100*float64(s.L2Hits)/float64(t))
			}
		}
		fmt.Fprintf(out, "| %s | %.0f | %v | %v | %v | %d | %s | %s | %d |\n",
			r.name, float64(r.ops)/r.elapsed.Seconds(),
			round(r.lat.quantile(0.5)), round(r.lat.quantile(0.99)), round(r.lat.quantile(0.999)),
			r.loads, l1, l2, r.errs)
	}
	if len(rs) == 2 && rs[0].ops > 0 {
		fmt.Fprintf(out, "\ntiercache throughput: %.1fx the Redis-only cache-aside\n",
			float64(rs[1].ops)/rs[1].elapsed.Seconds()/(float64(rs[0].ops)/rs[0].elapsed.Seconds()))
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d > time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}
