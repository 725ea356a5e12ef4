package local

import (
	"slices"
	"strings"
)

// ordered is a set of keys in byte order, so that the keys sharing a
// prefix can be visited without scanning the rest. It is not safe for
// concurrent use: each orderedShard guards its own.
//
// The keys are kept in sorted chunks of at most chunkMax keys, in order: a
// seek is two binary searches over contiguous memory, an insert or a
// removal moves at most chunkMax string headers, and only a chunk split
// allocates. (A skip list costs a node allocation per insert and a
// pointer chase, usually to cold memory, per step of a seek; the index
// changes on every fill of a new key, so that cost is on the miss path.)
// Any two neighbouring chunks hold more than mergeMax keys together, so
// there are at most 2n/mergeMax+1 chunks for n keys, and a key takes at
// most 2*16*(chunkMax+1)/mergeMax = 43 bytes of chunk, 16 to 24 in a set
// grown by inserts (L1 entries are charged this; see memory.go).
type ordered struct {
	chunks [][]string // each sorted and not empty; all keys of chunk i sort before chunk i+1's
}

// chunkMax is the most keys a chunk holds; a chunk that would hold one more
// is split in two. A chunk's array then holds 128 string headers, 2 KiB:
// a size class of the allocator, which wastes nothing (129 took a
// 2304-byte allocation).
const chunkMax = 127

// mergeMax is the most keys two neighbouring chunks hold before they are
// merged: three quarters of a chunk, so that removals leave no chunk
// mostly empty, and a chunk just split (into two of 64) needs 33 removals
// to merge again.
const mergeMax = chunkMax * 3 / 4

func (o *ordered) init() { o.chunks = nil }

// newChunk returns an empty chunk that can take chunkMax+1 keys without
// growing, which an insert before a split needs.
func newChunk() []string { return make([]string, 0, chunkMax+1) }

// chunkFor returns the index of the chunk key belongs in: the last one
// whose first key is not after key, or 0. There must be a chunk.
func (o *ordered) chunkFor(key string) int {
	i, found := slices.BinarySearchFunc(o.chunks, key, func(c []string, k string) int {
		return strings.Compare(c[0], k)
	})
	if found || i == 0 {
		return i
	}
	return i - 1
}

// insert adds key; adding a key already present does nothing.
func (o *ordered) insert(key string) {
	if len(o.chunks) == 0 {
		o.chunks = append(o.chunks, append(newChunk(), key))
		return
	}
	ci := o.chunkFor(key)
	c := o.chunks[ci]
	j, found := slices.BinarySearch(c, key)
	if found {
		return
	}
	c = slices.Insert(c, j, key)
	if len(c) <= chunkMax {
		o.chunks[ci] = c
		return
	}
	half := len(c) / 2
	right := append(newChunk(), c[half:]...)
	clear(c[half:]) // no hidden references to the moved keys
	o.chunks[ci] = c[:half]
	o.chunks = slices.Insert(o.chunks, ci+1, right)
}

// remove deletes key if present.
func (o *ordered) remove(key string) {
	if len(o.chunks) == 0 {
		return
	}
	ci := o.chunkFor(key)
	c := o.chunks[ci]
	j, found := slices.BinarySearch(c, key)
	if !found {
		return
	}
	c = slices.Delete(c, j, j+1)
	if len(c) == 0 {
		// Each neighbour held more than mergeMax keys with this chunk's
		// last one; together they still do.
		o.chunks = slices.Delete(o.chunks, ci, ci+1)
		return
	}
	o.chunks[ci] = c
	if ci+1 < len(o.chunks) {
		o.mergeNext(ci)
	}
	if ci > 0 {
		o.mergeNext(ci - 1)
	}
}

// mergeNext moves chunk i+1 into chunk i if they hold at most mergeMax
// keys together.
func (o *ordered) mergeNext(i int) {
	a, b := o.chunks[i], o.chunks[i+1]
	if len(a)+len(b) > mergeMax {
		return
	}
	o.chunks[i] = append(a, b...)
	o.chunks = slices.Delete(o.chunks, i+1, i+2)
}

// ascendPrefix calls fn for every key that starts with prefix, in order,
// until fn returns false. fn must not modify the set.
func (o *ordered) ascendPrefix(prefix string, fn func(key string) bool) {
	if len(o.chunks) == 0 {
		return
	}
	ci := o.chunkFor(prefix)
	j, _ := slices.BinarySearch(o.chunks[ci], prefix)
	for ; ci < len(o.chunks); ci, j = ci+1, 0 {
		for _, k := range o.chunks[ci][j:] {
			if !strings.HasPrefix(k, prefix) || !fn(k) {
				return
			}
		}
	}
}
