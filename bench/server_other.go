//go:build !linux

package main

import "syscall"

// serverProcAttr returns nil: outside Linux, a server whose harness dies
// without stopping it (a second Ctrl-C, a kill -9) outlives it.
func serverProcAttr() *syscall.SysProcAttr { return nil }
