package memsize

import (
	"runtime"
	"testing"
)

var sink []byte

// allocated returns the bytes the runtime counts for one make([]byte, n):
// the smallest TotalAlloc delta of a few tries (a background allocation can
// only add to it).
func allocated(n int) int64 {
	best := int64(-1)
	for range 5 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		sink = make([]byte, n)
		runtime.ReadMemStats(&b)
		if d := int64(b.TotalAlloc - a.TotalAlloc); best < 0 || d < best {
			best = d
		}
	}
	return best
}

// TestAllocMatchesRuntime: Alloc rounds as the allocator does, checked
// against the runtime's own count of allocated bytes, across small size
// classes and large objects (slices of 16 bytes or more: smaller
// pointer-free objects share 16-byte blocks).
func TestAllocMatchesRuntime(t *testing.T) {
	for _, n := range []int{16, 17, 24, 25, 100, 129, 1000, 2049, 4096, 4100, 20000, 32768, 32769, 65536, 100000} {
		if got, want := Alloc(n), allocated(n); got != want {
			t.Errorf("Alloc(%d) = %d; the runtime allocated %d", n, got, want)
		}
	}
	if Alloc(0) != 0 || Alloc(-1) != 0 || Alloc(1) != 8 {
		t.Errorf("Alloc(0, -1, 1) = %d, %d, %d; want 0, 0, 8", Alloc(0), Alloc(-1), Alloc(1))
	}
}

func TestValue(t *testing.T) {
	type pair struct{ a, b int64 }
	for _, tc := range []struct {
		name    string
		v       any
		encoded int
		want    int64
	}{
		{"nil", nil, 4, 0},
		{"empty string", "", 2, 0},
		{"string", "abc", 5, 16 + 8},
		{"string of 100", string(make([]byte, 100)), 102, 16 + 112},
		{"[]byte by capacity", make([]byte, 10, 100), 10, 24 + 112},
		{"struct: box and encoded", pair{1, 2}, 13, 16 + 13},
		{"pointer: pointee and encoded", &pair{1, 2}, 13, 16 + 13},
		{"map: encoded", map[string]int{"a": 1}, 7, 7},
	} {
		if got := Value(tc.v, tc.encoded); got != tc.want {
			t.Errorf("%s: Value = %d; want %d", tc.name, got, tc.want)
		}
	}
}
