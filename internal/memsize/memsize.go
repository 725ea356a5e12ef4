// Package memsize estimates the Go heap bytes that values hold, for the
// L1's memory accounting: the allocator's size classes, and the size of a
// decoded value kept in an interface.
package memsize

import "reflect"

// classes are the Go allocator's small size classes (internal/runtime/gc
// SizeClassToSize, unchanged since Go 1.10): an object of n bytes takes
// the first class of at least n. Larger objects take whole 8 KiB pages.
var classes = [...]uint16{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224,
	240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152,
	1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144,
	6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432,
	19072, 20480, 21760, 24576, 27264, 28672, 32768}

const (
	maxSmall = 32768
	pageSize = 8192
)

// Alloc returns the heap bytes an allocation of n bytes takes: 0 for n <= 0,
// n rounded up to its size class, or to whole pages above 32 KiB.
func Alloc(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n > maxSmall:
		return int64((n + pageSize - 1) / pageSize * pageSize)
	}
	lo, hi := 0, len(classes)-1
	for lo < hi { // the first class >= n
		mid := (lo + hi) / 2
		if int(classes[mid]) < n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return int64(classes[lo])
}

// Header sizes of the values an interface boxes.
const (
	stringHeader = 16
	sliceHeader  = 24
)

// Value returns the heap bytes that v holds outside the interface that
// contains it, given the length of its encoded form:
//
//   - a string: its 16-byte header (boxed by the interface) and its bytes;
//   - a []byte: its 24-byte header and its capacity;
//   - a pointer (or map, chan, func): the pointee's shallow size, plus
//     encoded for what it points to in turn;
//   - any other value: its shallow size (the box), plus encoded.
//
// The first two are exact. The others estimate the memory reached through
// the value by its encoded length: close for structs of strings and
// numbers, low for maps and pointer-heavy values (a Go map takes several
// times its JSON size).
func Value(v any, encoded int) int64 {
	switch x := v.(type) {
	case nil:
		return 0
	case string:
		if x == "" {
			return 0 // the runtime boxes "" without allocating
		}
		return Alloc(stringHeader) + Alloc(len(x))
	case []byte:
		return Alloc(sliceHeader) + Alloc(cap(x))
	}
	t := reflect.TypeOf(v)
	size := t.Size()
	switch t.Kind() {
	case reflect.Pointer:
		size = t.Elem().Size()
	case reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		size = 0
	}
	return Alloc(int(size)) + int64(max(encoded, 0))
}
