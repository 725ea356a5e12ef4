package local

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// keySet is an ordered set of keys: the index with entries that hold
// only their keys.
type keySet struct{ o ordered[int] }

func (k *keySet) insert(key string) { k.o.put(&Entry[int]{Key: key}) }
func (k *keySet) remove(key string) { k.o.remove(key) }

func (k *keySet) ascendPrefix(prefix string, fn func(string) bool) {
	k.o.ascendPrefix(prefix, func(e *Entry[int]) bool { return fn(e.Key) })
}

// chunks returns the chunks' keys.
func (k *keySet) chunks() [][]string {
	out := make([][]string, len(k.o.chunks))
	for i, c := range k.o.chunks {
		for _, e := range c {
			out[i] = append(out[i], e.Key)
		}
	}
	return out
}

// TestOrderedAgainstSortedSlice checks the ordered set against a sorted
// set of keys through random inserts, removals and prefix scans: while it
// grows (two inserts to a removal), then while it shrinks to nothing, and
// checks the chunks' invariants after every step.
func TestOrderedAgainstSortedSlice(t *testing.T) {
	var o keySet
	set := map[string]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 60000; i++ {
		k := fmt.Sprintf("%c%d", 'a'+r.IntN(3), r.IntN(1000))
		removal := r.IntN(3) == 0
		if i >= 20000 {
			removal = r.IntN(8) != 0
		}
		if removal {
			o.remove(k)
			delete(set, k)
		} else {
			o.insert(k)
			set[k] = true
		}
		checkChunks(t, &o, len(set))
		if i%1000 != 0 {
			continue
		}
		for _, p := range []string{"", "a", "b1", "c29", "a100", "zz"} {
			var want, got []string
			for k := range set {
				if strings.HasPrefix(k, p) {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			o.ascendPrefix(p, func(k string) bool { got = append(got, k); return true })
			if !slices.Equal(got, want) {
				t.Fatalf("ascendPrefix(%q) = %v; want %v", p, got, want)
			}
		}
	}
}

// TestOrderedEmptiesAChunk removes every key of a chunk whose neighbours
// are too full to merge with it, as random removals rarely do: the empty
// chunk must go.
func TestOrderedEmptiesAChunk(t *testing.T) {
	var o keySet
	n := 0
	add := func(k string) { o.insert(k); n++ }
	for i := range 1000 {
		add(fmt.Sprintf("k%04d", i))
	}
	ci := len(o.chunks()) / 2
	victims := slices.Clone(o.chunks()[ci])
	for i := range 32 { // 64 + 32 keys: too many to merge with one more
		add(fmt.Sprintf("%sx%d", o.chunks()[ci-1][len(o.chunks()[ci-1])-1], i))
		add(fmt.Sprintf("%sx%d", o.chunks()[ci+1][0], i))
	}
	checkChunks(t, &o, n)
	for _, k := range victims {
		o.remove(k)
		n--
		checkChunks(t, &o, n)
	}
	o.ascendPrefix("k", func(k string) bool {
		if slices.Contains(victims, k) {
			t.Fatalf("removed key %q is still there", k)
		}
		return true
	})
}

// checkChunks fails t unless o's chunks are not empty, sorted within and
// across, hold n keys in all, and any two neighbours hold more than
// mergeMax keys together.
func checkChunks(t *testing.T, o *keySet, n int) {
	t.Helper()
	total := 0
	cs := o.chunks()
	for i, c := range cs {
		total += len(c)
		switch {
		case len(c) == 0 || len(c) > chunkMax:
			t.Fatalf("chunk %d holds %d keys", i, len(c))
		case !slices.IsSorted(c):
			t.Fatalf("chunk %d is not sorted: %v", i, c)
		case i > 0 && cs[i-1][len(cs[i-1])-1] >= c[0]:
			t.Fatalf("chunk %d starts at %q, before chunk %d ends", i, c[0], i-1)
		case i > 0 && len(cs[i-1])+len(c) <= mergeMax:
			t.Fatalf("chunks %d and %d hold %d keys together", i-1, i, len(cs[i-1])+len(c))
		}
	}
	if total != n || o.o.n != n {
		t.Fatalf("the chunks hold %d keys; want %d", total, n)
	}
}

// BenchmarkOrderedChurn is the index work of a fill that Ristretto rejects:
// a new key inserted and removed again, in a set of n keys with a shared
// prefix, as a group's keys are.
func BenchmarkOrderedChurn(b *testing.B) {
	for _, n := range []int{200, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			var o keySet
			r := rand.New(rand.NewPCG(3, 4))
			for range n {
				o.insert(fmt.Sprintf("group:item:%d", r.IntN(10*n)))
			}
			churn := make([]string, 4096)
			for i := range churn {
				churn[i] = fmt.Sprintf("group:item:%d", r.IntN(10*n))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := churn[i%len(churn)]
				o.insert(k)
				o.remove(k)
			}
		})
	}
}
