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
// Any two neighbouring chunks hold more than chunkMax/2 keys together, so
// there are at most 4n/chunkMax+1 chunks for n keys.
type ordered struct {
	chunks [][]string // each sorted and not empty; all keys of chunk i sort before chunk i+1's
}

// chunkMax is the most keys a chunk holds; a chunk that would hold one more
// is split in two.
const chunkMax = 128

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
		// Its neighbours held more than chunkMax/2 keys each; together
		// they still do.
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

// mergeNext moves chunk i+1 into chunk i if they hold at most chunkMax/2
// keys together.
func (o *ordered) mergeNext(i int) {
	a, b := o.chunks[i], o.chunks[i+1]
	if len(a)+len(b) > chunkMax/2 {
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
