package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/tiercache/tiercache/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// want is the output of a run: a miss that loads on A, an L1 hit on A, B
// reading A's fill from Redis, an L1 hit on B, and after A's invalidation
// (applied on B before B reads again) a load of the new name on B.
const want = `node A: user 42 is Ada (loaded from the database; database queries: 1)
node A: user 42 is Ada (an L1 hit; database queries: 1)
node B: user 42 is Ada (from Redis; database queries: 1)
node B: user 42 is Ada (an L1 hit; database queries: 1)
node A: renamed user 42 and invalidated it
node B: user 42 is Grace (loaded from the database; database queries: 2)
`

// TestRunEmbedded runs the program as `go run ./examples/quickstart` does
// with no REDIS_ADDR, several times: the output must be the same every time.
func TestRunEmbedded(t *testing.T) {
	for i := range 3 {
		var out bytes.Buffer
		if err := run(context.Background(), &out, ""); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if got := out.String(); got != want {
			t.Fatalf("run %d printed:\n%s\nwant:\n%s", i, got, want)
		}
	}
}

// TestRunRedisServer runs the program twice on one real redis-server: the
// second run starts cold although the first left user 42 in Redis.
func TestRunRedisServer(t *testing.T) {
	srv := redistest.Start(t)
	for i := range 2 {
		var out bytes.Buffer
		if err := run(context.Background(), &out, srv.Addr()); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if got := out.String(); got != want {
			t.Fatalf("run %d printed:\n%s\nwant:\n%s", i, got, want)
		}
	}
}

// quickstartBlock returns the first ```go block after the "## Quickstart"
// heading of a README, without its fences.
func quickstartBlock(readme string) (string, error) {
	_, rest, ok := strings.Cut(readme, "\n## Quickstart\n")
	if !ok {
		return "", errors.New(`no "## Quickstart" heading`)
	}
	_, rest, ok = strings.Cut(rest, "\n```go\n")
	if !ok {
		return "", errors.New("no ```go block under Quickstart")
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		return "", errors.New("the Quickstart's ```go block is not closed")
	}
	return block + "\n", nil
}

// sameAsMain reports how readme's Quickstart differs from src, if it does.
func sameAsMain(readme, src string) error {
	block, err := quickstartBlock(readme)
	if err != nil {
		return err
	}
	if block == src {
		return nil
	}
	bl, sl := strings.Split(block, "\n"), strings.Split(src, "\n")
	for i := range min(len(bl), len(sl)) {
		if bl[i] != sl[i] {
			return fmt.Errorf("line %d differs:\nREADME:  %q\nmain.go: %q", i+1, bl[i], sl[i])
		}
	}
	return fmt.Errorf("README has %d lines, main.go %d", len(bl), len(sl))
}

// TestReadmeShowsMain: README.md's Quickstart is main.go, byte for byte.
// The synthetic cases show that the check fails on an edit, a missing
// line and a missing block.
func TestReadmeShowsMain(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if err := sameAsMain(string(readme), string(src)); err != nil {
		t.Fatalf("README.md's Quickstart is not examples/quickstart/main.go: %v", err)
	}

	fenced := func(body string) string { return "# x\n\n## Quickstart\n\n```go\n" + body + "```\n\nmore\n" }
	for _, tc := range []struct {
		name, readme string
	}{
		{"a changed line", fenced(strings.Replace(string(src), `"Ada"`, `"Bob"`, 1))},
		{"a missing line", fenced(strings.Replace(string(src), "package main\n", "", 1))},
		{"an extra line at the end", fenced(string(src) + "// more\n")},
		{"no block", "# x\n\n## Quickstart\n\nnothing\n"},
		{"no heading", "# x\n"},
	} {
		if err := sameAsMain(tc.readme, string(src)); err == nil {
			t.Errorf("%s: the check passed", tc.name)
		}
	}
	if err := sameAsMain(fenced(string(src)), string(src)); err != nil {
		t.Errorf("an exact copy fails the check: %v", err)
	}
}
