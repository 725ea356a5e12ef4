package main

import "syscall"

// serverProcAttr puts the server in its own process group, so that a
// Ctrl-C on the terminal reaches the harness alone (which then stops the
// server itself), and makes the kernel kill it if the harness dies
// without doing so.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
