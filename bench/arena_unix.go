//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// mapArena maps words 64-bit words of the file at path (created and sized
// when create is set; all of it when words is 0) into memory shared with
// every other process that maps it.
func mapArena(path string, words int, create bool) (*arena, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if words == 0 {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		words = int(fi.Size() / 8)
	}
	if words == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	size := words * 8
	if create {
		if err := f.Truncate(int64(size)); err != nil {
			return nil, err
		}
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	w := unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), words)
	return &arena{w: w, path: path, unmap: func() error { return syscall.Munmap(b) }}, nil
}
