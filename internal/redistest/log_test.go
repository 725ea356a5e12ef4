package redistest_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
)

// childEnv marks the test binary run by TestQuietRedisLog as its child.
const childEnv = "REDISTEST_LOG_CHILD"

// TestQuietRedisLog runs this test binary again, as a child whose client
// dials a closed port: go-redis's "failed to dial" line must not reach the
// child's output, unless TIERCACHE_REDIS_LOG=1 asks for it, where it must
// (which also shows that the test sees the line when it is written).
func TestQuietRedisLog(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		dialClosedPort(t)
		return
	}
	for _, tc := range []struct {
		env  string
		want bool
	}{{"", false}, {"1", true}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestQuietRedisLog$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"=1", redistest.LogEnv+"="+tc.env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child with %s=%q: %v\n%s", redistest.LogEnv, tc.env, err, out)
		}
		if got := strings.Contains(string(out), "failed to dial"); got != tc.want {
			t.Errorf("with %s=%q, go-redis's dial failure in the output = %v; want %v\n%s", redistest.LogEnv, tc.env, got, tc.want, out)
		}
	}
}

// dialClosedPort makes go-redis fail to dial a port nobody listens on.
func dialClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err == nil {
		t.Fatalf("PING %s answered; want a dial error", addr)
	}
}
