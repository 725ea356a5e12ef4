package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram (HDR-style): 16 sub-buckets per
// power of two, so any percentile is within about 6% of the true value.
type hist struct {
	counts [64 * subBuckets]uint64
	n      uint64
}

const subBits = 4
const subBuckets = 1 << subBits

func bucket(ns uint64) int {
	if ns < subBuckets {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 - subBits
	return (e+1)*subBuckets + int(ns>>uint(e)) - subBuckets
}

func bucketValue(b int) uint64 {
	if b < subBuckets {
		return uint64(b)
	}
	e := b/subBuckets - 1
	return uint64(b%subBuckets+subBuckets) << uint(e)
}

func (h *hist) record(d time.Duration) {
	ns := uint64(max(d, 0))
	h.counts[bucket(ns)]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the latency below which a fraction q of the samples lie.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen > rank {
			return time.Duration(bucketValue(b))
		}
	}
	return time.Duration(bucketValue(len(h.counts) - 1))
}
