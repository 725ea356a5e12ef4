package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress shows what runs while it runs, on errOut: a line rewritten in
// place on a terminal, plain lines (one a second) otherwise.
type progress struct {
	w    io.Writer
	mode string // "live", "plain" or "off"

	mu    sync.Mutex // protects dirty
	dirty bool       // a live line is on screen
}

func newProgress(w io.Writer, flag string) *progress {
	p := &progress{w: w, mode: flag}
	if flag == "auto" {
		p.mode = "plain"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				p.mode = "live"
			}
		}
	}
	return p
}

// watch reports the run of cache in scenario, started at start and meant
// to last length, until the returned func is called.
func (p *progress) watch(scenario, cache string, start time.Time, length time.Duration, t *truth) (stop func()) {
	if p.mode == "off" {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		every := 100 * time.Millisecond
		if p.mode == "plain" {
			every = time.Second
		}
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-done:
				p.line(scenario, cache, time.Since(start), length, t.nodeOps(), true)
				return
			case <-tk.C:
				p.line(scenario, cache, time.Since(start), length, t.nodeOps(), false)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (p *progress) line(scenario, cache string, elapsed, length time.Duration, ops uint64, final bool) {
	elapsed = max(elapsed, 0)
	text := fmt.Sprintf("%-10s %-22s %5.1fs / %.1fs  %12s ops", scenario, cache, elapsed.Seconds(), length.Seconds(), groupDigits(ops))
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.mode == "live":
		fmt.Fprintf(p.w, "\r\033[K%s", text)
		p.dirty = true
		if final {
			fmt.Fprintln(p.w)
			p.dirty = false
		}
	case final:
		fmt.Fprintln(p.w, text, "done")
	default:
		fmt.Fprintln(p.w, text)
	}
}

// clear ends a live line left on screen.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty {
		fmt.Fprintln(p.w)
		p.dirty = false
	}
}

// groupDigits writes n with thousands separators.
func groupDigits(n uint64) string {
	s := fmt.Sprint(n)
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
