package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/redistest"
)

// quickArgs are a run of a second or two: one scenario, two caches.
var quickArgs = append([]string{"-workload", "stampede", "-caches", "tiercache,redis only"}, smokeArgs...)

// userFlags are the flags -h must show, and no others.
var userFlags = []string{
	"caches", "chart", "cpuprofile", "duration", "expiry-keys", "expiry-ttl", "invalidate-keys",
	"invalidate-writes", "json", "keys", "l1-entries", "latency", "miniredis", "nodes", "outage-keys",
	"outage-phase", "pattern-share", "procs", "progress", "redis", "report", "rounds", "skew",
	"stampede-goroutines", "stampede-rounds", "ttl",
	"value-size", "workers", "workload", "writes",
}

var flagLine = regexp.MustCompile(`(?m)^  -(\S+)`)

// TestHelp: -h and -help print the usage with the user's flags only and
// are no error.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{arg}, &out, &errOut); err != nil {
			t.Fatalf("run(%s) = %v; want nil", arg, err)
		}
		checkUsage(t, errOut.String())
		if out.Len() != 0 {
			t.Errorf("run(%s) wrote a report: %q", arg, out.String())
		}
	}
}

func checkUsage(t *testing.T, usage string) {
	t.Helper()
	if !strings.HasPrefix(usage, "Usage: go run ./bench [flags]") {
		t.Errorf("usage does not open with the command line:\n%s", usage)
	}
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(usage, -1) {
		names = append(names, m[1])
	}
	if !slices.Equal(names, userFlags) {
		t.Errorf("usage lists flags %q; want %q", names, userFlags)
	}
}

// runAsMain runs this test binary as the program with args, its stderr
// sent line by line to lines (closed at its end) when lines is not nil.
func runAsMain(t *testing.T, lines chan<- string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, workerEnv+"=")
	}), asMainEnv+"=1")
	cmd.Dir = t.TempDir()
	if lines == nil {
		return cmd
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd
}

// TestHelpExitCode: the program itself exits 0 on -h, and 1 on a flag it
// does not know, the internal settings of workers included.
func TestHelpExitCode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"-h"}, 0}, {[]string{"-nope"}, 1}, {[]string{"-worker", "0"}, 1}, {[]string{"-mini"}, 1}} {
		cmd := runAsMain(t, nil, tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("bench %q exited %d; want %d\n%s", tc.args, code, tc.code, stderr.String())
		}
		if tc.code == 0 {
			checkUsage(t, stderr.String())
		}
	}
}

// TestNoRedisServerFallsBackToMiniredis: with no redis-server on PATH and
// no -redis, the run uses the embedded miniredis and the report opens with
// the warning that its figures are not representative.
func TestNoRedisServerFallsBackToMiniredis(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rep, md, stderr := runAllOut(t, quickArgs...)
	if !strings.Contains(rep.Environment, "miniredis") {
		t.Fatalf("environment %q; want the embedded miniredis", rep.Environment)
	}
	const top = "# tiercache bench\n\n> **Warning: not representative.** redis-server was not found on PATH"
	if !strings.HasPrefix(md, top) {
		t.Fatalf("the report does not open with the warning:\n%s", md[:min(len(md), 400)])
	}
	if strings.Count(md, "miniredis runs every Lua script") != 1 {
		t.Errorf("the warning is not in the report exactly once:\n%s", md)
	}
	if !strings.Contains(stderr, "WARNING: redis-server not found on PATH") {
		t.Errorf("no warning on stderr:\n%s", stderr)
	}
}

// startedServer finds, in the harness's stderr, the address and pid of
// the redis-server it started.
var startedServer = regexp.MustCompile(`started redis-server \S* on (127\.0\.0\.1:(\d+)) \(pid (\d+)\)`)

// TestOwnRedisServer: with redis-server on PATH and no -redis, the run
// starts its own on a loopback port other than 6379, runs on it (the
// client-side caching peers, which miniredis cannot serve, run), and
// stops it at the end.
func TestOwnRedisServer(t *testing.T) {
	redistest.Binary(t)
	rep, md, stderr := runAllOut(t, append([]string{"-caches", "tiercache,rueidis CSC"}, quickArgs[2:]...)...)
	m := startedServer.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no redis-server started; stderr:\n%s", stderr)
	}
	if m[2] == "6379" {
		t.Fatal("the harness started its server on 6379")
	}
	if rep.Warning != "" || strings.Contains(md, "Warning") || !strings.Contains(rep.Environment, "a redis-server the harness started on "+m[1]) {
		t.Fatalf("environment %q, warning %q; want the harness's own server, no warning", rep.Environment, rep.Warning)
	}
	for _, r := range rep.Results {
		if r.Skipped != "" {
			t.Errorf("%s skipped on the harness's own server: %s", r.Cache, r.Skipped)
		}
	}
	checkGone(t, m[1], m[3])
}

// checkGone fails the test unless the server of pid no longer runs or
// listens on addr.
func checkGone(t *testing.T, addr, pid string) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after the run", addr)
	}
	n, _ := strconv.Atoi(pid)
	if err := syscall.Kill(n, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("redis-server pid %d still exists after the run (kill -0: %v)", n, err)
	}
}

// TestOwnRedisServerStoppedOnSignal: Ctrl-C (SIGINT) in the middle of a
// run stops the harness's redis-server before the program exits; a
// harness killed outright (SIGKILL, no cleanup) takes it down too on
// Linux, through the parent-death signal.
func TestOwnRedisServerStoppedOnSignal(t *testing.T) {
	redistest.Binary(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			if sig == syscall.SIGKILL && runtime.GOOS != "linux" {
				t.Skip("the parent-death signal is Linux only")
			}
			lines := make(chan string, 100)
			cmd := runAsMain(t, lines, "-workload", "zipf", "-caches", "tiercache", "-duration", "10m", "-progress", "off", "-nodes", "1")
			var m []string
			for line := range lines {
				if m = startedServer.FindStringSubmatch(line); m != nil {
					break
				}
			}
			if m == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatal("the harness exited without starting a redis-server")
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			go func() {
				for range lines { // drain, so the harness never blocks on stderr
				}
			}()
			err := cmd.Wait()
			var ee *exec.ExitError
			if sig == syscall.SIGINT && (!errors.As(err, &ee) || ee.ExitCode() != 130) {
				t.Fatalf("after Ctrl-C the harness exited with %v; want status 130", err)
			}
			if sig == syscall.SIGKILL {
				// The kernel kills the orphan; wait for that event.
				waitGone(t, m[1])
				return
			}
			checkGone(t, m[1], m[3])
		})
	}
}

// waitGone waits until nothing accepts connections on addr, failing the
// test after 10s: a wait for the kernel to act, not a verdict on timing.
func waitGone(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections 10s after the harness was killed", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReportFileDefault: without -report the Markdown report is also
// written to bench-results/ in the working directory, whose path the run
// prints.
func TestReportFileDefault(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"-miniredis"}, quickArgs...), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`bench: report written to (\S+)\n`).FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("no report path printed; stderr:\n%s", errOut.String())
	}
	if got := filepath.Dir(m[1]); got != filepath.Join(dir, "bench-results") {
		t.Errorf("report written in %s; want %s", got, filepath.Join(dir, "bench-results"))
	}
	if b, err := os.ReadFile(m[1]); err != nil || !bytes.Equal(b, out.Bytes()) || out.Len() == 0 {
		t.Fatalf("report file %s: %v; its content differs from the %d bytes printed", m[1], err, out.Len())
	}
}

// TestSaveReport: reports of runs started in the same second get their
// own files; a working directory that cannot hold bench-results/ sends
// the report to the temporary directory.
func TestSaveReport(t *testing.T) {
	t.Chdir(t.TempDir())
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.Local)
	p1, err1 := saveReport("", []byte("one"), at)
	p2, err2 := saveReport("", []byte("two"), at)
	if err1 != nil || err2 != nil || p1 == p2 || filepath.Base(p1) != "report-20261205-120000.md" || filepath.Base(p2) != "report-20261205-120000-2.md" {
		t.Fatalf("two reports of one second: %s (%v), %s (%v)", p1, err1, p2, err2)
	}
	if b, _ := os.ReadFile(p1); string(b) != "one" {
		t.Fatalf("the second report overwrote the first: %q", b)
	}
	if err := os.RemoveAll("bench-results"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("bench-results", nil, 0o644); err != nil { // not a directory
		t.Fatal(err)
	}
	p3, err := saveReport("", []byte("three"), at)
	if err != nil || filepath.Dir(p3) != filepath.Join(tmp, "tiercache-bench-results") {
		t.Fatalf("report with an unusable working directory: %s, %v; want it in %s", p3, err, tmp)
	}
}

// TestFreePortSkips6379: the harness's own server never takes the port of
// a Redis the machine may run.
func TestFreePortSkips6379(t *testing.T) {
	ports := []int{6379, 6379, 41000}
	got, err := freePort(func() (int, error) {
		p := ports[0]
		ports = ports[1:]
		return p, nil
	})
	if err != nil || got != 41000 {
		t.Fatalf("freePort = %d, %v; want 41000", got, err)
	}
	if _, err := freePort(func() (int, error) { return 6379, nil }); err == nil {
		t.Fatal("freePort returned 6379")
	}
}
