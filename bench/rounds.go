package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// span is the spread of one figure over the rounds of a cache: its lowest
// and highest value.
type span struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// interleave returns the order in which rounds runs of each of n systems
// are made: every system once, in order, then again, so that a slow
// moment of a shared machine falls on every system alike rather than on
// all the runs of one. Each element is a system's index.
func interleave(n, rounds int) []int {
	out := make([]int, 0, n*rounds)
	for range rounds {
		for i := range n {
			out = append(out, i)
		}
	}
	return out
}

// median returns the median of xs (the mean of the middle two for an even
// count), and its spread; xs is not changed.
func median(xs []float64) (float64, span) {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0, span{}
	}
	m := s[n/2]
	if n%2 == 0 {
		m = (s[n/2-1] + s[n/2]) / 2
	}
	return m, span{s[0], s[n-1]}
}

// combineRounds merges the rounds of one cache in one scenario into one
// result: every figure is the median of that figure over the rounds that
// ran (each figure on its own, so two figures of the result may come from
// different rounds), except the stale reads and their ages, which are the
// highest over the rounds, and Spread gives each figure's lowest and highest
// value, by its JSON name. Flags are set if any round set them; errors and
// checker troubles of every round are kept; the expiry timeline is that of
// the round of median throughput. Runs keeps every round. One round is
// returned as it is; if no round ran, the first is.
func combineRounds(runs []*result) *result {
	if len(runs) == 1 {
		return runs[0]
	}
	var ran []*result
	for _, r := range runs {
		if r.Skipped == "" {
			ran = append(ran, r)
		}
	}
	if len(ran) == 0 {
		return runs[0]
	}
	byOps := slices.Clone(ran)
	slices.SortStableFunc(byOps, func(a, b *result) int {
		switch {
		case a.Throughput < b.Throughput:
			return -1
		case a.Throughput > b.Throughput:
			return 1
		}
		return 0
	})
	mid := byOps[(len(byOps)-1)/2]
	out := &result{}
	srcs := make([]reflect.Value, len(ran))
	for i, r := range ran {
		srcs[i] = reflect.ValueOf(r).Elem()
	}
	spread := map[string]span{}
	combineValue(reflect.ValueOf(out).Elem(), srcs, reflect.ValueOf(mid).Elem(), "", spread)
	out.Rounds, out.Runs, out.Spread = len(ran), runs, spread
	// A stale read in one round is not outvoted by rounds without any: the
	// stale count and ages are the highest over rounds.
	out.Stale, out.StaleAgeMax, out.StaleAgeP99 = 0, 0, 0
	for _, r := range ran {
		out.Stale = max(out.Stale, r.Stale)
		out.StaleAgeMax = max(out.StaleAgeMax, r.StaleAgeMax)
		out.StaleAgeP99 = max(out.StaleAgeP99, r.StaleAgeP99)
	}
	if len(ran) < len(runs) {
		out.Broken = append(out.Broken, fmt.Sprintf("%d of %d rounds did not run (first: %s)", len(runs)-len(ran), len(runs), firstSkip(runs)))
	}
	return out
}

func firstSkip(runs []*result) string {
	for _, r := range runs {
		if r.Skipped != "" {
			return r.Skipped
		}
	}
	return ""
}

// combineValue sets dst from the same field of every round (srcs), and
// from mid (the round of median throughput) where a median means nothing.
func combineValue(dst reflect.Value, srcs []reflect.Value, mid reflect.Value, path string, spread map[string]span) {
	switch dst.Kind() {
	case reflect.Struct:
		t := dst.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" || name == "runs" || name == "spread" || name == "rounds" {
				continue
			}
			if path != "" {
				name = path + "." + name
			}
			fs := make([]reflect.Value, len(srcs))
			for j, s := range srcs {
				fs[j] = s.Field(i)
			}
			combineValue(dst.Field(i), fs, mid.Field(i), name, spread)
		}
	case reflect.Pointer:
		for _, s := range srcs {
			if s.IsNil() {
				dst.Set(mid)
				return
			}
		}
		dst.Set(reflect.New(dst.Type().Elem()))
		es := make([]reflect.Value, len(srcs))
		for j, s := range srcs {
			es[j] = s.Elem()
		}
		combineValue(dst.Elem(), es, mid.Elem(), path, spread)
	case reflect.Array:
		for i := range dst.Len() {
			es := make([]reflect.Value, len(srcs))
			for j, s := range srcs {
				es[j] = s.Index(i)
			}
			combineValue(dst.Index(i), es, mid.Index(i), fmt.Sprintf("%s[%d]", path, i), spread)
		}
	case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Float64:
		xs := make([]float64, len(srcs))
		for j, s := range srcs {
			switch s.Kind() {
			case reflect.Int, reflect.Int64:
				xs[j] = float64(s.Int())
			case reflect.Uint64:
				xs[j] = float64(s.Uint())
			default:
				xs[j] = s.Float()
			}
		}
		m, sp := median(xs)
		spread[path] = sp
		switch dst.Kind() {
		case reflect.Int, reflect.Int64:
			dst.SetInt(int64(m + 0.5))
		case reflect.Uint64:
			dst.SetUint(uint64(m + 0.5))
		default:
			dst.SetFloat(m)
		}
	case reflect.Bool:
		for _, s := range srcs {
			if s.Bool() {
				dst.SetBool(true)
			}
		}
	case reflect.String:
		for _, s := range srcs {
			if s.String() != "" {
				dst.SetString(s.String())
				return
			}
		}
	case reflect.Slice:
		if dst.Type().Elem().Kind() == reflect.String {
			for _, s := range srcs {
				dst.Set(reflect.AppendSlice(dst, s))
			}
			return
		}
		dst.Set(mid)
	default:
		dst.Set(mid)
	}
}

// spreadCell formats a figure with, over several rounds, its spread:
// "median (min–max)" ("max (min–max)" for the stale figures).
func spreadCell(r *result, name string, format func(float64) string, median float64) string {
	s := format(median)
	if sp, ok := r.Spread[name]; ok && r.Rounds > 1 {
		s += " (" + format(sp.Min) + "–" + format(sp.Max) + ")"
	}
	return s
}

func fmtCount(x float64) string { return groupDigits(uint64(x + 0.5)) }
func fmtNanos(x float64) string { return fmtDur(time.Duration(x)) }
func fmtShare(x float64) string { return pct(x) }
