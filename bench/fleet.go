package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// command is one step of a run, sent to every host.
type command struct {
	Op    string  `json:"op"` // setup, hello, warm, run, finish, close
	Spec  runSpec `json:"spec"`
	Phase int     `json:"phase,omitempty"`
	Start int64   `json:"start,omitempty"` // unix ns
}

// reply is a host's answer to a command.
type reply struct {
	Err     string   `json:"err,omitempty"`
	Partial *partial `json:"partial,omitempty"`
}

// hostServer carries out commands in one process: it owns the host of
// the current run.
type hostServer struct {
	cfg *config
	env *env
	t   *truth
	h   *host
}

func (s *hostServer) handle(ctx context.Context, c command) reply {
	var err error
	var p *partial
	switch c.Op {
	case "setup":
		if s.h != nil {
			s.h.close()
		}
		s.h = &host{cfg: s.cfg, env: s.env, t: s.t, spec: c.Spec}
		err = s.h.setup(ctx)
	case "hello":
		err = s.h.hello(ctx)
	case "warm":
		err = s.h.sc.warm(ctx, s.h, c.Phase)
	case "run":
		err = s.h.run(ctx, time.Unix(0, c.Start))
	case "finish":
		p = s.h.finish()
	case "close":
		if s.h != nil {
			err = s.h.close()
			s.h = nil
		}
	default:
		err = fmt.Errorf("unknown command %q", c.Op)
	}
	r := reply{Partial: p}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// fleet runs a command on every host and returns their partials.
type fleet interface {
	do(ctx context.Context, c command) ([]*partial, error)
	close() error
}

// localFleet is every node in this process.
type localFleet struct{ s *hostServer }

func (f *localFleet) do(ctx context.Context, c command) ([]*partial, error) {
	r := f.s.handle(ctx, c)
	if r.Err != "" {
		return nil, errors.New(r.Err)
	}
	return []*partial{r.Partial}, nil
}

func (f *localFleet) close() error {
	f.s.handle(context.Background(), command{Op: "close"})
	return nil
}

// procFleet is -procs worker processes: this program re-executed with
// -worker, talking JSON lines over its stdin and stdout, sharing the source
// of truth through a mapped file.
type procFleet struct {
	procs []*workerProc
}

type workerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startProcFleet(cfg *config, e *env, arenaPath string, args []string) (*procFleet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f := &procFleet{}
	for w := range cfg.procs {
		wargs := append(append([]string{}, args...), "-progress", "off")
		ws, _ := json.Marshal(workerSettings{ID: w, Arena: arenaPath, Redis: joinAddrs(e.addrs), Mini: e.mini != nil})
		cmd := exec.Command(exe, wargs...)
		cmd.Env = append(os.Environ(), workerEnv+"="+string(ws))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			f.close()
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			f.close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			f.close()
			return nil, err
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		f.procs = append(f.procs, &workerProc{cmd: cmd, in: in, out: sc})
	}
	return f, nil
}

func joinAddrs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}

func (f *procFleet) do(ctx context.Context, c command) ([]*partial, error) {
	b, _ := json.Marshal(c)
	b = append(b, '\n')
	parts := make([]*partial, len(f.procs))
	errs := make([]error, len(f.procs))
	var wg sync.WaitGroup
	for i, p := range f.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.in.Write(b); err != nil {
				errs[i] = fmt.Errorf("worker %d: %w", i, err)
				return
			}
			if !p.out.Scan() {
				errs[i] = fmt.Errorf("worker %d exited: %v", i, p.out.Err())
				return
			}
			var r reply
			if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
				errs[i] = fmt.Errorf("worker %d: %w", i, err)
				return
			}
			if r.Err != "" {
				errs[i] = fmt.Errorf("worker %d: %s", i, r.Err)
			}
			parts[i] = r.Partial
		}()
	}
	wg.Wait()
	return parts, errors.Join(errs...)
}

func (f *procFleet) close() error {
	var errs []error
	for _, p := range f.procs {
		if p.in != nil {
			p.in.Close() // the worker exits at the end of its input
		}
	}
	for _, p := range f.procs {
		errs = append(errs, p.cmd.Wait())
	}
	return errors.Join(errs...)
}

// workerMain is a worker process: it carries out commands until its
// input ends.
func workerMain(ctx context.Context, cfg *config, in io.Reader, out io.Writer) error {
	a, err := mapArena(cfg.arena, 0, false)
	if err != nil {
		return err
	}
	defer a.close()
	t, err := openTruth(a, cfg.latency, cfg.valueSize)
	if err != nil {
		return err
	}
	s := &hostServer{cfg: cfg, env: attachEnv(cfg.redis, cfg.mini), t: t}
	defer s.handle(ctx, command{Op: "close"})
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var c command
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return err
		}
		if err := enc.Encode(s.handle(ctx, c)); err != nil {
			return err
		}
	}
	return sc.Err()
}

// arenaFile returns a fresh path for the shared arena.
func arenaFile() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("tiercache-bench-%d-%d", os.Getpid(), time.Now().UnixNano()))
}
