package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A redis-server the harness starts for its run when the user names none:
// persistence off, on a free 127.0.0.1 port (never 6379, where a machine's
// own Redis may live), in a temporary directory, killed when the run ends
// (and, on Linux, by the kernel when the harness dies without cleaning up).
// internal/redistest does the same for tests, but takes a *testing.T.

const (
	// serverReadyTimeout bounds how long a new server may take to answer.
	serverReadyTimeout = 10 * time.Second
	// serverStartAttempts bounds how many ports are tried.
	serverStartAttempts = 10
	// machinePort is the port of a Redis the machine may run itself.
	machinePort = 6379
)

// errPortTaken says that the server could not have its port: another one
// is tried.
var errPortTaken = errors.New("port in use")

// ownServer is a running redis-server started by [startOwnServer].
type ownServer struct {
	cmd     *exec.Cmd
	dir     string
	addr    string
	version string
	done    chan struct{} // closed once cmd has exited and been waited for
}

// startOwnServer starts the redis-server binary bin on a free loopback
// port and returns once it answers.
func startOwnServer(bin string) (*ownServer, error) {
	dir, err := os.MkdirTemp("", "tiercache-bench-redis-")
	if err != nil {
		return nil, err
	}
	for range serverStartAttempts {
		var port int
		if port, err = freePort(listenLoopback); err != nil {
			break
		}
		var s *ownServer
		if s, err = launchServer(bin, dir, port); err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("cannot start %s: %w", bin, err)
}

// listenLoopback returns a port of 127.0.0.1 that was free a moment ago.
func listenLoopback() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePort returns a port from listen that is not 6379.
func freePort(listen func() (int, error)) (int, error) {
	for range 20 {
		p, err := listen()
		if err != nil || p != machinePort {
			return p, err
		}
	}
	return 0, errors.New("no free port but 6379")
}

func launchServer(bin, dir string, port int) (*ownServer, error) {
	logPath := filepath.Join(dir, "redis.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", "")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = serverProcAttr()
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return nil, err
	}
	s := &ownServer{cmd: cmd, dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(); err != nil {
		s.kill()
		out, _ := os.ReadFile(logPath)
		if strings.Contains(string(out), "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, fmt.Errorf("%w\n%s", err, lastLines(string(out), 10))
	}
	return s, nil
}

// waitReady polls the server until it answers as the process started (not
// another server that had the port first), exits, or times out: a bounded
// wait for a process to start.
func (s *ownServer) waitReady() error {
	deadline := time.Now().Add(serverReadyTimeout)
	for {
		info, err := serverInfo(s.addr, 200*time.Millisecond)
		if err == nil {
			if info["process_id"] != strconv.Itoa(s.cmd.Process.Pid) {
				return fmt.Errorf("%w: another redis-server (pid %s) answers on %s", errPortTaken, info["process_id"], s.addr)
			}
			s.version = info["redis_version"]
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer within %v: %w", s.addr, serverReadyTimeout, err)
		}
		select {
		case <-s.done:
			return fmt.Errorf("redis-server exited: %v", s.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill kills the server, waits for it to exit and removes its directory.
func (s *ownServer) kill() {
	_ = s.cmd.Process.Kill() // fails only if it has exited already
	<-s.done
	os.RemoveAll(s.dir)
}

// serverInfo sends INFO server to addr over a new connection and returns
// its fields.
func serverInfo(addr string, timeout time.Duration) (map[string]string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 {
		return nil, fmt.Errorf("unexpected reply %q", strings.TrimSpace(head))
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	info := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			info[k] = v
		}
	}
	return info, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
