package main

import (
	"fmt"
	"sync/atomic"
)

// arena is a slab of 64-bit words that every process of a run shares: the
// source of truth lives in it, so that with -procs every worker sees the
// same versions, load counts and write log. In one process it is plain
// memory; across processes it is a file mapped by each (arena_unix.go).
// Every word is read and written atomically.
type arena struct {
	w     []uint64
	path  string // the mapped file, "" in memory
	unmap func() error
}

func newMemArena(words int) *arena {
	return &arena{w: make([]uint64, words), unmap: func() error { return nil }}
}

func (a *arena) load(i int) uint64          { return atomic.LoadUint64(&a.w[i]) }
func (a *arena) store(i int, v uint64)      { atomic.StoreUint64(&a.w[i], v) }
func (a *arena) add(i int, d uint64) uint64 { return atomic.AddUint64(&a.w[i], d) }
func (a *arena) cas(i int, old, v uint64) bool {
	return atomic.CompareAndSwapUint64(&a.w[i], old, v)
}

// zero clears words [from, to).
func (a *arena) zero(from, to int) {
	for i := from; i < to; i++ {
		atomic.StoreUint64(&a.w[i], 0)
	}
}

func (a *arena) close() error {
	if a.unmap == nil {
		return nil
	}
	err := a.unmap()
	a.unmap = nil
	return err
}

// checkSize reports an arena too small for a layout.
func (a *arena) checkSize(words int) error {
	if len(a.w) < words {
		return fmt.Errorf("arena of %d words, need %d", len(a.w), words)
	}
	return nil
}
