package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestSmoke runs the harness briefly on the embedded Redis and checks that
// the report has a row per cache with numbers in it.
func TestSmoke(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-duration", "300ms", "-nodes", "2", "-workers", "2", "-keys", "200", "-latency", "100us"}
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatal(err)
	}
	report := out.String()
	for _, want := range []string{"| redis only (cache-aside) |", "| tiercache |", "throughput:", "miniredis"} {
		if !strings.Contains(report, want) {
			t.Fatalf("report lacks %q:\n%s", want, report)
		}
	}
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(line, "| tiercache |") && strings.Contains(line, "| 0 | -") {
			t.Fatalf("tiercache row has no operations: %s", line)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-nodes", "0"}, {"-skew", "1"}, {"-writes", "2"}, {"-nope"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%v) succeeded", args)
		}
	}
}
