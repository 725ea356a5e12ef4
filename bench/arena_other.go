//go:build !unix

package main

import "errors"

func mapArena(path string, words int, create bool) (*arena, error) {
	return nil, errors.New("-procs needs a Unix system (shared memory through mmap)")
}
