package local

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestOrderedAgainstSortedSlice checks the skip list against a sorted set of
// keys through random inserts, removals and prefix scans.
func TestOrderedAgainstSortedSlice(t *testing.T) {
	var o ordered
	o.init()
	set := map[string]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		k := fmt.Sprintf("%c%d", 'a'+r.IntN(3), r.IntN(300))
		if r.IntN(3) == 0 {
			o.remove(k)
			delete(set, k)
		} else {
			o.insert(k)
			set[k] = true
		}
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
