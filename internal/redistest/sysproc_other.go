//go:build !linux

package redistest

import "syscall"

// sysProcAttr returns nil: outside Linux, a server whose test binary dies
// without running its cleanups outlives it.
func sysProcAttr() *syscall.SysProcAttr { return nil }
