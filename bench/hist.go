package main

import (
	"encoding/json"
	"errors"
	"fmt"
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

// mid is the middle of bucket b's range, the estimate of its samples.
func mid(b int) float64 {
	if b < subBuckets {
		return float64(b)
	}
	return float64(bucketValue(b)) + float64(bucketValue(b+1)-bucketValue(b))/2
}

// mean returns the mean latency (from the buckets, within about 3%).
func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	var sum float64
	for b, c := range h.counts {
		sum += float64(c) * mid(b)
	}
	return time.Duration(sum / float64(h.n))
}

// fracAbove returns the fraction of the samples of at least d (those in
// d's bucket count in whole).
func (h *hist) fracAbove(d time.Duration) float64 {
	if h.n == 0 {
		return 0
	}
	var above uint64
	for _, c := range h.counts[bucket(uint64(max(d, 0))):] {
		above += c
	}
	return float64(above) / float64(h.n)
}

// count is the number of samples.
func (h *hist) count() uint64 { return h.n }

// histJSON is a histogram's non-empty buckets, for JSON and for workers
// that send theirs to the parent process.
type histJSON struct {
	Buckets []int    `json:"buckets"`
	Counts  []uint64 `json:"counts"`
}

func (h *hist) MarshalJSON() ([]byte, error) {
	var s histJSON
	for b, c := range h.counts {
		if c > 0 {
			s.Buckets = append(s.Buckets, b)
			s.Counts = append(s.Counts, c)
		}
	}
	return json.Marshal(s)
}

func (h *hist) UnmarshalJSON(b []byte) error {
	var s histJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if len(s.Buckets) != len(s.Counts) {
		return errors.New("histogram: buckets and counts differ in length")
	}
	*h = hist{}
	for i, b := range s.Buckets {
		if b < 0 || b >= len(h.counts) {
			return fmt.Errorf("histogram: bucket %d out of range", b)
		}
		h.counts[b] += s.Counts[i]
		h.n += s.Counts[i]
	}
	return nil
}
