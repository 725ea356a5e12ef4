package local

import (
	"slices"
	"strings"
)

// ordered is a stripe's key index: its entries in byte order of their
// keys, so that an invalidation finds a key's entry by a binary search
// and a pattern visits the keys sharing a prefix without scanning the
// rest. It is not safe for concurrent use: its stripe's lock guards it.
//
// It is the only index: an entry takes one pointer in it (8 bytes, about
// 11 with the chunks' slack), where a map[string]*Entry beside an ordered
// set of key strings took about 45 + 32 (see memory.go). Lookups cost a
// binary search instead of a map probe; they happen on fills and
// invalidations, never on the hit path.
//
// The entries are kept in sorted chunks of at most chunkMax, in order: a
// seek is two binary searches over contiguous memory, an insert or a
// removal moves at most chunkMax pointers, and only a chunk split (or the
// growth of a stripe's first chunk) allocates. Any two neighbouring chunks
// hold more than mergeMax entries together, so there are at most
// 2n/mergeMax+1 chunks for n entries.
type ordered[V any] struct {
	chunks [][]*Entry[V] // each sorted and not empty; all keys of chunk i sort before chunk i+1's
	n      int           // the entries held
}

// chunkMax is the most entries a chunk holds; a chunk that would hold one
// more is split in two. A split chunk's array holds 128 pointers, 1 KiB:
// a size class of the allocator, which wastes nothing.
const chunkMax = 127

// mergeMax is the most entries two neighbouring chunks hold before they
// are merged: three quarters of a chunk, so that removals leave no chunk
// mostly empty, and a chunk just split (into two of 64) needs 33 removals
// to merge again.
const mergeMax = chunkMax * 3 / 4

// newChunk returns an empty chunk that can take chunkMax+1 entries without
// growing, which an insert before a split needs.
func newChunk[V any]() []*Entry[V] { return make([]*Entry[V], 0, chunkMax+1) }

// chunkFor returns the index of the chunk key belongs in: the last one
// whose first key is not after key, or 0. There must be a chunk.
func (o *ordered[V]) chunkFor(key string) int {
	i, found := slices.BinarySearchFunc(o.chunks, key, func(c []*Entry[V], k string) int {
		return strings.Compare(c[0].Key, k)
	})
	if found || i == 0 {
		return i
	}
	return i - 1
}

// find returns where key's entry is (its chunk and its place there) and
// whether it is there; if not, the place is where it would go.
func (o *ordered[V]) find(key string) (ci, j int, found bool) {
	if len(o.chunks) == 0 {
		return 0, 0, false
	}
	ci = o.chunkFor(key)
	j, found = slices.BinarySearchFunc(o.chunks[ci], key, func(e *Entry[V], k string) int {
		return strings.Compare(e.Key, k)
	})
	return ci, j, found
}

// get returns the entry of key, or nil.
func (o *ordered[V]) get(key string) *Entry[V] {
	if ci, j, found := o.find(key); found {
		return o.chunks[ci][j]
	}
	return nil
}

// put makes e the entry of its key and returns the one it replaced, or nil.
func (o *ordered[V]) put(e *Entry[V]) (old *Entry[V]) {
	if len(o.chunks) == 0 {
		// A stripe's first chunk grows as append grows it: a cache of a
		// few entries does not take a whole chunk per stripe.
		o.chunks = append(o.chunks, []*Entry[V]{e})
		o.n++
		return nil
	}
	ci, j, found := o.find(e.Key)
	c := o.chunks[ci]
	if found {
		old, c[j] = c[j], e
		return old
	}
	o.n++
	c = slices.Insert(c, j, e)
	if len(c) <= chunkMax {
		o.chunks[ci] = c
		return nil
	}
	half := len(c) / 2
	right := append(newChunk[V](), c[half:]...)
	clear(c[half:]) // no hidden references to the moved entries
	o.chunks[ci] = c[:half]
	o.chunks = slices.Insert(o.chunks, ci+1, right)
	return nil
}

// remove deletes the entry of key and returns it, or nil if there is none.
func (o *ordered[V]) remove(key string) *Entry[V] {
	ci, j, found := o.find(key)
	if !found {
		return nil
	}
	c := o.chunks[ci]
	e := c[j]
	o.n--
	c = slices.Delete(c, j, j+1)
	if len(c) == 0 {
		// Each neighbour held more than mergeMax entries with this
		// chunk's last one; together they still do.
		o.chunks = slices.Delete(o.chunks, ci, ci+1)
		return e
	}
	o.chunks[ci] = c
	if ci+1 < len(o.chunks) {
		o.mergeNext(ci)
	}
	if ci > 0 {
		o.mergeNext(ci - 1)
	}
	return e
}

// mergeNext moves chunk i+1 into chunk i if they hold at most mergeMax
// entries together.
func (o *ordered[V]) mergeNext(i int) {
	a, b := o.chunks[i], o.chunks[i+1]
	if len(a)+len(b) > mergeMax {
		return
	}
	o.chunks[i] = append(a, b...)
	clear(b)
	o.chunks = slices.Delete(o.chunks, i+1, i+2)
}

// ascendPrefix calls fn for every entry whose key starts with prefix, in
// order, until fn returns false. fn must not modify the set.
func (o *ordered[V]) ascendPrefix(prefix string, fn func(e *Entry[V]) bool) {
	ci, j, _ := o.find(prefix)
	for ; ci < len(o.chunks); ci, j = ci+1, 0 {
		for _, e := range o.chunks[ci][j:] {
			if !strings.HasPrefix(e.Key, prefix) || !fn(e) {
				return
			}
		}
	}
}
