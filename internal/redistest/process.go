package redistest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds how long a new server may take to answer.
	readyTimeout = 10 * time.Second
	// probeTimeout bounds one readiness probe.
	probeTimeout = 200 * time.Millisecond
	// outputTail is how much of a server's output a failure shows.
	outputTail = 4 << 10
)

// errPortInUse says that a server could not have its port: Start retries
// with another one, Restart waits. Errors of this file are not prefixed:
// they only reach tests through the prefixed messages of Start and
// Restart.
var errPortInUse = errors.New("port in use")

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited and been waited for
	err  error         // cmd.Wait's result; read only after done is closed
}

func (p *process) wait() {
	p.err = p.cmd.Wait()
	close(p.done)
}

// kill sends SIGKILL and waits for the process to exit.
func (p *process) kill() {
	_ = p.cmd.Process.Kill() // fails only if it has exited already
	<-p.done
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// timeout.
func (p *process) stop(timeout time.Duration) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.kill()
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.kill()
	}
}

// argv returns the server's command line.
func (s *Server) argv() []string {
	var conf []string
	if s.conf != "" {
		conf = []string{s.conf}
	}
	return append(append(conf,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--logfile", "",
	), s.args...)
}

// launch starts redis-server on s.port and waits until it answers. On
// failure it kills it and returns an error that ends with the server's
// output; the error wraps errPortInUse when the port was taken.
func (s *Server) launch() (*process, error) {
	logf, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	fi, err := logf.Stat()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("log file: %w", err)
	}
	cmd := exec.Command(s.bin, s.argv()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go p.wait()
	if err := s.waitReady(p); err != nil {
		p.kill()
		out := s.output(fi.Size())
		if strings.Contains(out, "Address already in use") && !errors.Is(err, errPortInUse) {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return nil, fmt.Errorf("%w\n--- end of redis-server output (%s) ---\n%s", err, s.logPath(), tail(out))
	}
	return p, nil
}

// waitReady waits until the server of p answers on s.port. It polls: a
// bounded wait for a process to start, not a test interleaving.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		pid, err := probe(s.Addr(), probeTimeout)
		switch {
		case err == nil && pid == p.cmd.Process.Pid:
			return nil
		case err == nil:
			return fmt.Errorf("%w: another redis-server (pid %d) answers on %s", errPortInUse, pid, s.Addr())
		case errors.Is(err, errNoAuth):
			return nil // --requirepass in Args: it is up, though unidentified
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer within %v: %w", s.Addr(), readyTimeout, err)
		}
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %v", p.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Server) logPath() string { return filepath.Join(s.dir, "redis.log") }

// output returns what the server wrote to its log from offset on, at most
// the last 64KiB of it.
func (s *Server) output(offset int64) string {
	f, err := os.Open(s.logPath())
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > 64<<10 {
		offset = fi.Size() - 64<<10
	}
	b, err := io.ReadAll(io.NewSectionReader(f, offset, 64<<10))
	if err != nil {
		return fmt.Sprintf("(output unreadable: %v)", err)
	}
	return string(b)
}

// tail returns the end of out, trimmed.
func tail(out string) string {
	if len(out) > outputTail {
		out = "..." + out[len(out)-outputTail:]
	}
	if out = strings.TrimSpace(out); out == "" {
		return "(none)"
	}
	return out
}
