package main

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// parseConn parses the connection flags of args as a command does.
func parseConn(t *testing.T, args ...string) *connFlags {
	t.Helper()
	e := &env{}
	fs := newFlagSet(cmdInspect)
	e.conn.register(fs)
	if _, err := fs.parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	e.conn.set = fs.setFlags()
	return &e.conn
}

// noEnv is a getenv with nothing set.
func noEnv(string) string { return "" }

// TestTimeoutBoundsReadsAndWrites guards --timeout as the bound of every
// read and write, not of connecting only: with DialTimeout alone, a
// server that accepts and never answers held invalidate for go-redis's
// default read timeout (and more), whatever --timeout said. Each of the
// three client builders (one server, Cluster, Sentinel) is checked.
func TestTimeoutBoundsReadsAndWrites(t *testing.T) {
	const d = 1234 * time.Millisecond
	cases := map[string][]string{
		"server":   {"-p", "7000"},
		"url":      {"--url", "redis://127.0.0.1:7000"},
		"cluster":  {"--cluster", "127.0.0.1:7000,127.0.0.1:7001"},
		"sentinel": {"--sentinel", "127.0.0.1:26379", "--master", "m"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			c := parseConn(t, append(args, "--timeout", d.String())...)
			rdb, err := c.client(noEnv)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			var dial, read, write time.Duration
			switch r := rdb.(type) {
			case *redis.Client: // one server, or the master that Sentinel names
				o := r.Options()
				dial, read, write = o.DialTimeout, o.ReadTimeout, o.WriteTimeout
			case *redis.ClusterClient:
				o := r.Options()
				dial, read, write = o.DialTimeout, o.ReadTimeout, o.WriteTimeout
			default:
				t.Fatalf("client %T", rdb)
			}
			if dial != d || read != d || write != d {
				t.Fatalf("dial %v, read %v, write %v; want %v each (--timeout)", dial, read, write, d)
			}
		})
	}
}

// TestPasswordPrecedence guards redis-cli's order, which docs/cli.md
// promises: -a, else the password the URL (--url or $TIERCACHE_REDIS_URL)
// carries, else $REDISCLI_AUTH. $REDISCLI_AUTH used to override the URL's
// password, so that a shell with the variable set for another server could
// not reach one named by a URL with its own password.
func TestPasswordPrecedence(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"URLOverEnv", map[string]string{authEnv: "env"}, []string{"--url", "redis://:url@127.0.0.1:7000"}, "url"},
		{"URLWithUserOverEnv", map[string]string{authEnv: "env"}, []string{"--url", "redis://default:url@127.0.0.1:7000"}, "url"},
		{"EnvURLOverEnv", map[string]string{authEnv: "env", urlEnv: "redis://:url@127.0.0.1:7000"}, nil, "url"},
		{"EnvWhenURLHasNone", map[string]string{authEnv: "env"}, []string{"--url", "redis://user@127.0.0.1:7000"}, "env"},
		{"EnvWithHostPort", map[string]string{authEnv: "env"}, []string{"-p", "7000"}, "env"},
		{"FlagOverURL", map[string]string{authEnv: "env"}, []string{"--url", "redis://:url@127.0.0.1:7000", "-a", "flag"}, "flag"},
		{"EmptyFlagOverEnv", map[string]string{authEnv: "env"}, []string{"-p", "7000", "-a", ""}, ""},
		{"None", nil, []string{"--url", "redis://127.0.0.1:7000"}, ""},
		{"ClusterEnv", map[string]string{authEnv: "env"}, []string{"--cluster", "127.0.0.1:7000"}, "env"},
		{"ClusterFlag", map[string]string{authEnv: "env"}, []string{"--cluster", "127.0.0.1:7000", "-a", "flag"}, "flag"},
		{"SentinelEnv", map[string]string{authEnv: "env"}, []string{"--sentinel", "127.0.0.1:26379", "--master", "m"}, "env"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rdb, err := parseConn(t, tc.args...).client(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			var got string
			switch r := rdb.(type) {
			case *redis.Client:
				got = r.Options().Password
			case *redis.ClusterClient:
				got = r.Options().Password
			}
			if got != tc.want {
				t.Fatalf("password %q; want %q", got, tc.want)
			}
		})
	}
}
