package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// writeMarkdown writes the report as Markdown: the setting, then a table
// per scenario, then how each cache was configured.
func writeMarkdown(w io.Writer, rep *report) {
	fmt.Fprintf(w, "# tiercache bench\n\n")
	if rep.Warning != "" {
		fmt.Fprintf(w, "> **Warning: not representative.** %s\n\n", rep.Warning)
	}
	fmt.Fprintf(w, "%d nodes", rep.Nodes)
	if rep.Procs > 0 {
		fmt.Fprintf(w, " in %d worker processes", rep.Procs)
	} else {
		fmt.Fprintf(w, " in one process")
	}
	fmt.Fprintf(w, ", each its own cache and Redis connections, on %s. Memory budget: %s.\n\n", rep.Environment, rep.Budget)
	fmt.Fprintf(w, "`%s` (took %v)\n", rep.Command, rep.Took.Round(100*time.Millisecond))
	if rep.Rounds > 1 {
		fmt.Fprintf(w, "\nEvery figure is the median of %d interleaved rounds (every cache once, then again), except stale and the stale age, which are the highest of any round (a round's stale reads are not outvoted by rounds without); ops/s, p99, waited, stale, the stale age and late show the spread (lowest–highest) in brackets, and the JSON has it for every figure.\n", rep.Rounds)
	}
	for _, sc := range rep.Scenarios {
		fmt.Fprintf(w, "\n## %s\n\n%s.\n\n", sc.Name, sc.About)
		rows := resultsOf(rep, sc.Name)
		writeTable(w, sc.Name, rows)
		if sc.Name == "outage" {
			writeOutageTable(w, rows)
		}
		if line := leadLine(rows); line != "" {
			fmt.Fprintf(w, "\n%s\n", line)
		}
	}
	fmt.Fprintf(w, "\n## How to read this\n\n")
	for _, s := range []string{
		"ops/s: reads and writes per second, all nodes together; mean, p50/p99/p99.9: read latency (log-linear histogram, within 6%).",
		"waited: share of reads that took at least half the load latency, that is, waited for a load (their own or one in flight). Each worker runs one operation after another, so ops/s is about the number of workers over the mean read time, and these reads make most of it: a cache that must reload a key on every node after each write has more of them than one whose other nodes keep serving the old value.",
		"L1/L2: share of reads served from the node's memory / from Redis; the rest were loaded or waited for a load.",
		"loads: loader calls the source of truth counted; ideal: the fewest a perfect fleet needs (each version of each key loaded once; in expiry, once per TTL; in stampede, once per round); max/key: loads of the most loaded key. Unlike the read columns, loads, ideal and max/key include the warm-up (its loads of every key's current version, which a perfect fleet makes too), so they are not per run operation.",
		"cmds/op: Redis commands sent during the run (warm-up excluded) per operation of the run (a go-redis hook on every node's client; counted by the adapter for rueidis).",
		"lag: from a write's invalidation call starting to another node applying it (p50/p99); \"none\" for caches that never tell other nodes.",
		"stale: reads that returned a value whose invalidation the node had already applied before the read began; late: another node had invalidated it, the message had not arrived. A cache that never tells other nodes has no message on its way, so its old values after the writer's call returned count as stale. Every read is checked against the source of truth's write log and the node's own invalidation log.",
		"stale age: for each stale read, its start less the moment the call of the invalidation that made its value stale returned (the oldest such invalidation, if several newer writes preceded the read); the moment the checker starts counting a read of the old value as stale or late at all. max is the oldest stale read, p99 the 99th percentile of the ages; \"≥\" marks a max that is a lower bound (for some stale read, the source's log of the key's last 64 writes had lost the write that made it stale, so that read may be older). Late reads have no age here. With -rounds, stale and the stale age are the highest over the rounds, not the median.",
		"outage (that scenario only): per phase of the source of truth (before, failing: every load fails after the load latency; slow: every load takes 10x the latency; after), by the time a read began (one that began at a phase's end may load in the next): errors the callers saw, those on keys cached before the outage (a load of the key had succeeded before the failing phase began), p99 of every read of the phase, errors included, and of the reads of keys cached before; fail-safe fallbacks: reads tiercache served an expired value (GroupOptions.FailSafe).",
	} {
		fmt.Fprintf(w, "- %s\n", s)
	}
	fmt.Fprintf(w, "\n## Caches\n\n")
	seen := map[string]bool{}
	for _, r := range rep.Results {
		if !seen[r.Cache] {
			seen[r.Cache] = true
			fmt.Fprintf(w, "- **%s**: %s\n", r.Cache, r.Config)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
	for _, r := range rep.Results {
		// The outage's own errors are in its table; only others make a note.
		outageOnly := r.Outage != nil && r.FirstError == errOutage.Error()
		if r.Skipped == "" && ((r.Errors > 0 && !outageOnly) || len(r.Broken) > 0 || r.Unclassified > 0 || r.BusTrouble > 0) {
			fmt.Fprintf(w, "\nNote: %s in %s: %d errors (first: %q), %d unclassified reads, %d bus troubles, checker: %v\n",
				r.Cache, r.Scenario, r.Errors, r.FirstError, r.Unclassified, r.BusTrouble, r.Broken)
		}
	}
}

func resultsOf(rep *report, scenario string) []*result {
	var out []*result
	for _, r := range rep.Results {
		if r.Scenario == scenario {
			out = append(out, r)
		}
	}
	return out
}

func writeTable(w io.Writer, scenario string, rows []*result) {
	extra, extraSep := "", ""
	if scenario == "expiry" {
		extra, extraSep = " reload peak/25ms |", "---:|"
	}
	fmt.Fprintf(w, "| cache | ops/s | mean | p50 | p99 | p99.9 | waited | L1 | L2 | loads | ideal | max/key | cmds/op | lag p50 | lag p99 | key lag p50 / p99 | stale | stale age max / p99 | late |%s\n", extra)
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|%s\n", extraSep)
	for _, r := range rows {
		if r.Skipped != "" {
			fmt.Fprintf(w, "| %s | %s |%s\n", r.Cache, r.Skipped, strings.Repeat(" |", 18))
			continue
		}
		lag50, lag99, keyLag := "none", "none", "none"
		if r.Propagates {
			lag50, lag99, keyLag = "-", "-", "-"
			if r.LagSamples > 0 {
				lag50, lag99 = fmtDur(r.LagP50), fmtDur(r.LagP99)
			}
			if r.KeyLagP50 > 0 {
				keyLag = fmtDur(r.KeyLagP50) + " / " + fmtDur(r.KeyLagP99)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s | %s | %s | %s | %s | %s |",
			r.Cache, spreadCell(r, "ops_per_sec", fmtCount, r.Throughput), fmtDur(r.Mean), fmtDur(r.P50),
			spreadCell(r, "p99_ns", fmtNanos, float64(r.P99)), fmtDur(r.P999),
			spreadCell(r, "waited_share", fmtShare, r.Waited), pct(r.L1Share), pct(r.L2Share), groupDigits(r.Loads), groupDigits(r.Ideal), groupDigits(r.MaxKeyLoads),
			r.CommandsPerOp, lag50, lag99, keyLag, spreadCell(r, "stale_reads", fmtCount, float64(r.Stale)), staleAgeCell(r),
			spreadCell(r, "late_reads", fmtCount, float64(r.Late)))
		if scenario == "expiry" {
			fmt.Fprintf(w, " %s |", groupDigits(r.ReloadPeak))
		}
		fmt.Fprintln(w)
	}
}

// staleAgeCell is the age of the oldest stale read and the p99 of the
// ages; "≥" marks an oldest age that is a lower bound (some age is).
func staleAgeCell(r *result) string {
	if r.Stale == 0 {
		return "-"
	}
	bound := ""
	if r.StaleAgeLowerBound {
		bound = "≥"
	}
	return bound + spreadCell(r, "stale_age_max_ns", fmtNanos, float64(r.StaleAgeMax)) + " / " + fmtDur(r.StaleAgeP99)
}

// writeOutageTable writes the outage scenario's figures per phase.
func writeOutageTable(w io.Writer, rows []*result) {
	fmt.Fprintf(w, "\nPer phase (%s):\n\n", strings.Join(phaseNames[:], " / "))
	fmt.Fprintf(w, "| cache | errors | errors on keys cached before | p99 | p99 on keys cached before | fail-safe fallbacks |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		if r.Skipped != "" || r.Outage == nil {
			continue
		}
		o := r.Outage
		fallbacks := "-"
		if isTiercache(r.Cache) {
			fallbacks = spreadCell(r, "outage.fail_safe_fallbacks", fmtCount, float64(o.Fallbacks))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.Cache,
			phaseCells(r, "outage.errors", o.Errors[:], fmtCount), phaseCells(r, "outage.warm_errors", o.WarmErrors[:], fmtCount),
			phaseCells(r, "outage.p99_ns", o.P99[:], fmtNanos), phaseCells(r, "outage.warm_p99_ns", o.WarmP99[:], fmtNanos), fallbacks)
	}
	if tc := findCache(rows, "tiercache, fail-safe"); tc != nil && tc.Outage != nil {
		o := tc.Outage
		goal := o.SoftTimeout + time.Millisecond
		fmt.Fprintf(w, "\ntiercache, fail-safe: %s errors on keys cached before the outage, in all phases (goal 0); p99 in the failing and slow phases %s and %s, on keys cached before %s and %s (goal: within the soft timeout %s plus 1 ms, %s).\n",
			groupDigits(o.warmErrorsAll()), fmtDur(o.P99[phaseFailing]), fmtDur(o.P99[phaseSlow]),
			fmtDur(o.WarmP99[phaseFailing]), fmtDur(o.WarmP99[phaseSlow]), fmtDur(o.SoftTimeout), fmtDur(goal))
	}
}

// phaseCells formats one figure of every phase, "before / failing / slow
// / after", each a median over rounds.
func phaseCells[T uint64 | time.Duration](r *result, name string, xs []T, format func(float64) string) string {
	cells := make([]string, len(xs))
	for i, x := range xs {
		cells[i] = format(float64(x))
		if sp, ok := r.Spread[fmt.Sprintf("%s[%d]", name, i)]; ok && r.Rounds > 1 && sp.Min != sp.Max {
			cells[i] += " (" + format(sp.Min) + "–" + format(sp.Max) + ")"
		}
	}
	return strings.Join(cells, " / ")
}

// isTiercache reports whether a cache is one of tiercache's variants.
func isTiercache(name string) bool { return strings.HasPrefix(name, "tiercache") }

// bestPeer returns the peer (not tiercache) with the highest throughput;
// with propagating, only among the peers that tell other nodes of
// invalidations.
func bestPeer(rows []*result, propagating bool) *result {
	var best *result
	for _, r := range rows {
		if r.Skipped != "" || isTiercache(r.Cache) || (propagating && !r.Propagates) {
			continue
		}
		if best == nil || r.Throughput > best.Throughput {
			best = r
		}
	}
	return best
}

func findCache(rows []*result, name string) *result {
	for _, r := range rows {
		if r.Cache == name && r.Skipped == "" {
			return r
		}
	}
	return nil
}

// leadLine compares tiercache with the best peer of a scenario, and with
// the best of those that tell other nodes of invalidations if that is
// another.
func leadLine(rows []*result) string {
	tc, best := findCache(rows, "tiercache"), bestPeer(rows, false)
	if tc == nil || best == nil || best.Throughput == 0 {
		return ""
	}
	line := fmt.Sprintf("tiercache: %.2fx the throughput of the best peer (%s), p99 %.2fx theirs, %s loads against their %s, %s stale reads against their %s; %s of its reads waited for a load against their %s.",
		tc.Throughput/best.Throughput, best.Cache, ratio(tc.P99, best.P99),
		groupDigits(tc.Loads), groupDigits(best.Loads), groupDigits(tc.Stale), groupDigits(best.Stale),
		pct(tc.Waited), pct(best.Waited))
	if p := bestPeer(rows, true); p != nil && p != best && p.Throughput > 0 {
		line += fmt.Sprintf(" Against the best peer that tells other nodes (%s): %.2fx the throughput, %s stale reads against their %s.",
			p.Cache, tc.Throughput/p.Throughput, groupDigits(tc.Stale), groupDigits(p.Stale))
	}
	return line
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
