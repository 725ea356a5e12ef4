package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/tiered"
)

// TestInvalidationsReachL1 runs each mutation as a process against a real
// redis-server and checks that a running node's L1 (and Redis) lost exactly
// the keys it names, and nothing else: no flush.
// TestBusKey checks that --bus-key (or $TIERCACHE_BUS_KEY) signs what the
// command publishes as a fleet with that BusKey expects: signed under
// another key, the node drops the message and keeps its L1 copy.
func TestBusKey(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns, key = "clikey", "a fleet key of 16+ bytes"
	n := newNode(t, rdb, ns, "user", []byte(key))
	port := strconv.Itoa(srv.Port())
	n.fill(t, "1", "2", "3")

	mustRun(t, "invalidate", "-p", port, "--namespace", ns, "--bus-key", "another key of 16+ bytes", "user:1")
	select {
	case <-n.rejected:
	case <-time.After(time.Minute):
		t.Fatal("the node did not drop a message signed under another key within a minute")
	}
	if got := n.inL1("1", "2"); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("after a message under another key, L1 holds %q; want both ids (the message dropped)", got)
	}
	r := cli(t, []string{"TIERCACHE_BUS_KEY=" + key}, "invalidate", "-p", port, "--namespace", ns, "user:2")
	if r.code != 0 {
		t.Fatalf("invalidate with $TIERCACHE_BUS_KEY: %v", r)
	}
	n.waitReceived(t)
	if got := n.inL1("1", "2"); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("after a message under the fleet's key, L1 holds %q; want [1]", got)
	}
	if r := cli(t, nil, "invalidate", "-p", port, "--namespace", ns, "--bus-key", "short", "user:3"); r.code != 2 {
		t.Fatalf("a bus key under 16 bytes: exit %d; want 2 (%v)", r.code, r)
	}
	if got := inRedis(t, rdb, ns, n, "3"); len(got) != 1 {
		t.Fatalf("a refused bus key left Redis holding %q; want user:3 untouched", got)
	}
}

func TestInvalidationsReachL1(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns = "clitest"
	n := newNode(t, rdb, ns, "user")
	port := strconv.Itoa(srv.Port())
	ids := []string{"1", "2", "3", "10", "*", "4"}
	n.fill(t, ids...)

	// The check can fail: an invalidation that the node never hears (another
	// namespace) leaves the key in its L1, and the test sees it there.
	mustRun(t, "invalidate", "-p", port, "--namespace", "elsewhere", "user:1")
	mustRun(t, "invalidate", "-p", port, "--namespace", ns, "user:2")
	n.waitReceived(t)
	if got, want := n.inL1(ids...), []string{"1", "3", "10", "*", "4"}; !slices.Equal(got, want) {
		t.Fatalf("after invalidate user:2, L1 holds %q; want %q", got, want)
	}

	// A key: flags after the argument, and the URL from the environment.
	r := cli(t, []string{"TIERCACHE_REDIS_URL=redis://" + srv.Addr()}, "invalidate", "user:1", "--namespace", ns)
	if r.code != 0 {
		t.Fatalf("invalidate user:1: %v", r)
	}
	n.waitReceived(t)
	// A pattern with an escaped star: the id "*" only, not every user.
	mustRun(t, "invalidate-pattern", "--url", "redis://"+srv.Addr(), "--namespace", ns, `user:\*`, "user:1?")
	n.waitReceived(t)
	if got, want := n.inL1(ids...), []string{"3", "4"}; !slices.Equal(got, want) {
		t.Fatalf("after the patterns, L1 holds %q; want %q", got, want)
	}
	if got, want := inRedis(t, rdb, ns, n, ids...), []string{"3", "4"}; !slices.Equal(got, want) {
		t.Fatalf("after the patterns, Redis holds %q; want %q", got, want)
	}
	if f := n.flushes.Load(); f != 0 {
		t.Fatalf("the node flushed its L1 %d times; want 0 (each invalidation applied alone)", f)
	}

	// clear: every key of the group, and only of that group.
	other, err := tiered.NewGroup[string](n.c, "user:admin", tiered.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Fetch(context.Background(), "9", func(context.Context, string) (string, error) { return "x", nil }); err != nil {
		t.Fatal(err)
	}
	n.c.WaitL1()
	r = mustRun(t, "clear", "-h", "127.0.0.1", "-p", port, "--namespace", ns, "user")
	if !strings.Contains(r.stdout, `(pattern "user:*"): removed 2 key(s)`) {
		t.Fatalf("clear user: stdout %q; want 2 keys removed", r.stdout)
	}
	n.waitReceived(t)
	if got := n.inL1(ids...); len(got) != 0 {
		t.Fatalf("after clear user, L1 holds %q", got)
	}
	if _, ok := other.Peek("9"); !ok {
		t.Fatal("clear user removed group user:admin's key too")
	}
	mustRun(t, "clear", "-p", port, "--namespace", ns, "user:admin")
	n.waitReceived(t)
	if _, ok := other.Peek("9"); ok {
		t.Fatal("clear user:admin left its key in L1")
	}
}

// TestInvalidationsReachL1Cluster does the same against a Redis Cluster,
// whose keys live on several masters.
func TestInvalidationsReachL1Cluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	const ns = "clicluster"
	n := newNode(t, rdb, ns, "item")
	ids := make([]string, 30)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	n.fill(t, ids...)
	addrs := strings.Join(cl.Addrs(), ",")
	mustRun(t, "invalidate", "--cluster", addrs, "--namespace", ns, "item:0", "item:1", "item:2")
	n.waitReceived(t)
	if got := n.inL1("0", "1", "2"); len(got) != 0 {
		t.Fatalf("after invalidate, L1 holds %q", got)
	}
	r := mustRun(t, "invalidate-pattern", "--cluster", addrs, "--namespace", ns, "item:1?")
	if !strings.Contains(r.stdout, "removed 10 key(s)") {
		t.Fatalf("invalidate-pattern item:1?: stdout %q; want 10 keys removed (on every master)", r.stdout)
	}
	n.waitReceived(t)
	want := append([]string{"3", "4", "5", "6", "7", "8", "9"}, ids[20:]...)
	if got := n.inL1(ids...); !slices.Equal(got, want) {
		t.Fatalf("L1 holds %q; want %q", got, want)
	}
	if got := inRedis(t, rdb, ns, n, ids...); !slices.Equal(got, want) {
		t.Fatalf("Redis holds %q; want %q", got, want)
	}
	if f := n.flushes.Load(); f != 0 {
		t.Fatalf("the node flushed its L1 %d times; want 0", f)
	}
}

// TestErrors checks that each failure exits non-zero with one line on
// stderr that says what went wrong.
func TestErrors(t *testing.T) {
	t.Parallel()
	open := redistest.Start(t)
	locked := redistest.Start(t, redistest.Args("--requirepass", "s3cret"))
	closed := redistest.Start(t)
	closed.Kill() // an address where nothing listens
	lp := strconv.Itoa(locked.Port())
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string // in the one line
	}{
		{"NoCommand", nil, nil, 2, "tiercache COMMAND [flags]"},
		{"UnknownCommand", nil, []string{"invalid"}, 2, `unknown command "invalid"`},
		{"BadFlag", nil, []string{"invalidate", "--bogus", "k"}, 2, "flag provided but not defined: -bogus"},
		{"BadFlagValue", nil, []string{"invalidate", "-p", "x", "k"}, 2, `invalid value "x" for flag -p`},
		{"NoKey", nil, []string{"invalidate", "-p", strconv.Itoa(open.Port())}, 2, "no key given"},
		{"TwoAddresses", nil, []string{"invalidate", "-p", "1", "--url", "redis://x:1", "k"}, 2, "give one of"},
		{"BadURL", nil, []string{"invalidate", "--url", "http://x", "k"}, 2, "invalid URL scheme"},
		{"BadNamespace", nil, []string{"invalidate", "--namespace", "a b", "k"}, 2, "not in [A-Za-z0-9_.-]"},
		{"Unreachable", nil, []string{"invalidate", "--url", "redis://" + closed.Addr(), "k"}, 1, "connection refused"},
		{"UnreachableWatch", nil, []string{"watch", "-p", strconv.Itoa(closed.Port()), "--for", "1m"}, 1, "connection refused"},
		{"UnreachableInspect", nil, []string{"inspect", "-p", strconv.Itoa(closed.Port()), "k"}, 1, "connection refused"},
		{"NoPassword", nil, []string{"invalidate", "-p", lp, "k"}, 1, "NOAUTH"},
		{"WrongPassword", nil, []string{"invalidate-pattern", "-p", lp, "-a", "nope", "k*"}, 1, "WRONGPASS"},
		{"WrongPasswordEnv", []string{"REDISCLI_AUTH=nope"}, []string{"clear", "-p", lp, "g"}, 1, "WRONGPASS"},
		{"InvalidPattern", nil, []string{"invalidate-pattern", "-p", strconv.Itoa(open.Port()), "ok*", "user:[12"}, 2, `invalid pattern "user:[12"`},
		{"PatternBeyondLimits", nil, []string{"invalidate-pattern", "-p", strconv.Itoa(open.Port()), "*" + strings.Repeat("?", 3000) + "b"}, 2, "pattern beyond limits"},
		{"EmptyPattern", nil, []string{"invalidate-pattern", "-p", strconv.Itoa(open.Port()), ""}, 2, "empty pattern"},
		{"ClearTwoGroups", nil, []string{"clear", "a", "b"}, 2, "want exactly one GROUP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, tc.env, tc.args...)
			if r.code != tc.code {
				t.Fatalf("tiercache %q: %v; want exit %d", tc.args, r, tc.code)
			}
			if tc.args == nil { // the usage, on stderr
				if !strings.Contains(r.stderr, tc.want) {
					t.Fatalf("stderr %q; want the usage", r.stderr)
				}
				return
			}
			if lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(r.stderr, "tiercache") {
				t.Fatalf("stderr %q; want one line starting with \"tiercache\"", r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr %q; want it to contain %q", r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Fatalf("stdout %q; want nothing (nothing was done)", r.stdout)
			}
		})
	}
	// The right password works, given either way.
	mustRun(t, "invalidate", "-p", lp, "-a", "s3cret", "k")
	if r := cli(t, []string{"REDISCLI_AUTH=s3cret"}, "inspect", "-p", lp, "k"); r.code != 0 {
		t.Fatalf("inspect with REDISCLI_AUTH: %v", r)
	}
	mustRun(t, "invalidate", "--url", "redis://:s3cret@"+locked.Addr(), "k")
	// The URL's password wins over $REDISCLI_AUTH, as in redis-cli.
	if r := cli(t, []string{"REDISCLI_AUTH=nope"}, "inspect", "--url", "redis://:s3cret@"+locked.Addr(), "k"); r.code != 0 {
		t.Fatalf("inspect with the password in --url and another in REDISCLI_AUTH: %v", r)
	}
	if r := cli(t, []string{"REDISCLI_AUTH=nope", "TIERCACHE_REDIS_URL=redis://:s3cret@" + locked.Addr()}, "inspect", "k"); r.code != 0 {
		t.Fatalf("inspect with the password in TIERCACHE_REDIS_URL and another in REDISCLI_AUTH: %v", r)
	}
}

// TestHelp checks that --help (and -help) describes every command and
// exits 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"invalidate", "invalidate-pattern", "clear", "watch", "inspect"} {
		for _, flag := range []string{"--help", "-help"} {
			r := cli(t, nil, name, flag)
			if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "Usage: tiercache "+name+" ") {
				t.Fatalf("tiercache %s %s: %v", name, flag, r)
			}
		}
	}
	r := cli(t, nil, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "invalidate-pattern") {
		t.Fatalf("tiercache --help: %v", r)
	}
}

// TestInspect decodes a value, a cached "not found", a key Redis does not
// hold, and bytes that are no envelope.
func TestInspect(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns = "inspect"
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: ns, DisableBus: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type user struct {
		Name string `json:"name"`
	}
	g, err := tiered.NewGroup[user](c, "user", tiered.GroupOptions{TTL: time.Hour, NegativeTTL: time.Hour,
		Tags: func(id string, _ user) []string { return []string{"user:" + id} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := g.Fetch(ctx, "42", func(context.Context, string) (user, error) { return user{"Ann"}, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Fetch(ctx, "7", func(context.Context, string) (user, error) { return user{}, tiered.ErrNotFound }); err == nil {
		t.Fatal("Fetch of a missing id: no error")
	}
	if err := rdb.Set(ctx, ns+":junk", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(srv.Port())
	type out struct {
		Kind, Key    string
		RedisKey     string `json:"redis_key"`
		Version      int
		TTL          int64 `json:"ttl_ms"`
		PayloadBytes int   `json:"payload_bytes"`
		Payload      json.RawMessage
		PayloadHex   string `json:"payload_hex"`
		ExpiresAt    string `json:"expires_at"`
		BeganAt      string `json:"load_began_at"`
		Tags         []string
	}
	inspect := func(key string) out {
		r := mustRun(t, "inspect", "-p", port, "--namespace", ns, "--json", key)
		var o out
		if err := json.Unmarshal([]byte(r.stdout), &o); err != nil {
			t.Fatalf("inspect %s: %v in %q", key, err, r.stdout)
		}
		return o
	}
	v := inspect("user:42")
	if v.Kind != "value" || v.Version != 2 || string(v.Payload) != `{"name":"Ann"}` || v.PayloadBytes != 14 ||
		v.TTL <= 0 || v.TTL > time.Hour.Milliseconds() || v.RedisKey != "inspect:user:42" || v.ExpiresAt == "" {
		t.Fatalf("inspect user:42 = %+v", v)
	}
	if len(v.Tags) != 1 || v.Tags[0] != "user:42" || v.BeganAt == "" {
		t.Fatalf("inspect user:42 shows tags %q, load began %q; want [user:42] and a time", v.Tags, v.BeganAt)
	}
	if a := inspect("user:7"); a.Kind != "absent" || a.Version != 2 || a.PayloadBytes != 0 || a.TTL <= 0 {
		t.Fatalf("inspect user:7 = %+v", a)
	}
	if m := inspect("user:8"); m.Kind != "miss" || m.Version != 0 {
		t.Fatalf("inspect user:8 = %+v", m)
	}
	if j := inspect("junk"); j.Kind != "corrupt" || j.PayloadHex != "68656c6c6f" || j.TTL != -1 {
		t.Fatalf("inspect junk = %+v", j)
	}
	r := mustRun(t, "inspect", "-p", port, "--namespace", ns, "user:42")
	for _, want := range []string{"kind        value", "envelope    version 2", "tags        user:42", `json        {"name":"Ann"}`, "payload     14 bytes"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("inspect user:42 (text) = %q; want a line %q", r.stdout, want)
		}
	}
}

// TestWatch runs watch as a process and sends it a message of each sort:
// a key invalidation (from the command), a malformed message, and two
// messages of one origin with a sequence number missing between them.
func TestWatch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns = "watched"
	port := strconv.Itoa(srv.Port())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "watch", "-p", port, "--namespace", ns, "--json", "--messages", "--count", "4", "--interval", "1h")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var events []map[string]any
	next := func() map[string]any {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("watch ended early: %v", lines.Err())
		}
		var ev map[string]any
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatalf("watch printed %q: %v", lines.Text(), err)
		}
		events = append(events, ev)
		return ev
	}
	if ev := next(); ev["event"] != "subscribed" || ev["channel"] != tiered.BusChannel(ns) {
		t.Fatalf("first line %v; want the subscription", ev)
	}
	mustRun(t, "invalidate", "-p", port, "--namespace", ns, "user:1", "user:2")
	publish := func(payload []byte) {
		if err := rdb.Publish(ctx, tiered.BusChannel(ns), payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	publish([]byte("not a message"))
	origin := bus.NodeID{1, 2, 3}
	publish(bus.Encode(bus.Message{Kind: bus.KindPatterns, Origin: origin, Seq: 1, Items: []string{"user:*"}}))
	publish(bus.Encode(bus.Message{Kind: bus.KindKeys, Origin: origin, Seq: 3, Items: []string{"x"}}))
	for {
		if ev := next(); ev["event"] == "end" {
			break
		}
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("watch: %v", err)
	}
	var kinds []string
	for _, ev := range events[1:] {
		k := ev["event"].(string)
		if k == "message" {
			k += " " + ev["kind"].(string)
		}
		kinds = append(kinds, k)
	}
	want := []string{"message keys", "malformed", "message patterns", "message keys", "gap", "end"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("watch printed %q; want %q", kinds, want)
	}
	if items := events[1]["items"].([]any); len(items) != 2 || items[0] != "user:1" {
		t.Fatalf("first message items %v", items)
	}
	if g := events[5]; g["origin"] != origin.String() || g["after"] != 1.0 || g["seq"] != 3.0 {
		t.Fatalf("gap event %v", g)
	}
	end := events[len(events)-1]
	totals := end["totals"].(map[string]any)
	if totals["gaps"] != 1.0 || totals["malformed"] != 1.0 || totals["messages"].(map[string]any)["keys"] != 2.0 {
		t.Fatalf("end totals %v", totals)
	}
	if origins := end["origins"].([]any); len(origins) != 2 {
		t.Fatalf("end origins %v; want 2", origins)
	}
}

// TestWatchFor checks that --for bounds a watch that sees nothing.
func TestWatchFor(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := mustRun(t, "watch", "-p", strconv.Itoa(srv.Port()), "--for", "200ms")
	if !strings.Contains(r.stdout, "watching tiercache:tiercache:bus on "+srv.Addr()) || !strings.Contains(r.stdout, "totals over") {
		t.Fatalf("watch --for: %v", r)
	}
}

var _ redis.UniversalClient = (*redis.Client)(nil)

// TestInvalidationsReachL1Sentinel reaches the master through Sentinel
// (--sentinel, --master).
func TestInvalidationsReachL1Sentinel(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	rdb := s.Client(t)
	const ns = "clisentinel"
	n := newNode(t, rdb, ns, "user")
	n.fill(t, "1", "2")
	mustRun(t, "invalidate", "--sentinel", strings.Join(s.SentinelAddrs(), ","), "--master", s.Options().MasterName, "--namespace", ns, "user:1")
	n.waitReceived(t)
	if got := n.inL1("1", "2"); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("after invalidate user:1 through Sentinel, L1 holds %q; want [2]", got)
	}
	if got := inRedis(t, rdb, ns, n, "1", "2"); !slices.Equal(got, []string{"2"}) {
		t.Fatalf("Redis holds %q; want [2]", got)
	}
}

// TestWatchResubscribes runs watch through a fault-injecting proxy: a
// connection reset, and a server that stops answering (found by the ping
// that watch sends after a quiet interval), are each reported as a lost
// subscription, and watch subscribes again and shows what comes next.
func TestWatchResubscribes(t *testing.T) {
	t.Parallel()
	for _, fault := range []string{"reset", "blackhole"} {
		t.Run(fault, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			rdb := srv.Client(t)
			p := redistest.NewProxy(t, srv.Addr())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "watch", "--url", "redis://"+p.Addr(), "--json", "--messages",
				"--count", "1", "--interval", "100ms", "--timeout", "1s")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			lines := bufio.NewScanner(stdout)
			// until waits for the next event of kind want, skipping ticks.
			until := func(want string) map[string]any {
				t.Helper()
				for lines.Scan() {
					var ev map[string]any
					if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
						t.Fatalf("watch printed %q: %v", lines.Text(), err)
					}
					switch ev["event"] {
					case want:
						return ev
					case "tick":
					default:
						t.Fatalf("watch printed %v; want a %q event", ev, want)
					}
				}
				t.Fatalf("watch ended before a %q event: %v", want, lines.Err())
				return nil
			}
			until("subscribed")
			if fault == "reset" {
				p.Reset()
			} else {
				p.Blackhole()
			}
			lost := until("lost")
			if fault == "blackhole" {
				if !strings.Contains(lost["error"].(string), "ping unanswered") {
					t.Fatalf("lost: %v; want the unanswered ping", lost)
				}
				p.Heal()
			}
			until("restored")
			m := bus.Message{Kind: bus.KindKeys, Origin: bus.NodeID{9}, Seq: 1, Items: []string{"k"}}
			if err := rdb.Publish(ctx, tiered.BusChannel("tiercache"), bus.Encode(m)).Err(); err != nil {
				t.Fatal(err)
			}
			if ev := until("message"); ev["kind"] != "keys" {
				t.Fatalf("message %v", ev)
			}
			end := until("end")
			if l := end["totals"].(map[string]any)["lost"]; l != 1.0 {
				t.Fatalf("end: lost %v; want 1", l)
			}
			io.Copy(io.Discard, stdout)
		})
	}
}

// TestInvalidateTooLargeSaysFlush guards the report of a key too large
// for one bus message (64 KiB): the bus sends a flush in its place, and
// the command must say so, not "kind keys", since every node then empties
// its whole L1.
func TestInvalidateTooLargeSaysFlush(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	const ns = "clibig"
	n := newNode(t, rdb, ns, "user")
	port := strconv.Itoa(srv.Port())
	big := strings.Repeat("x", bus.DefaultMaxMessageBytes)
	n.fill(t, big, "small")
	r := mustRun(t, "invalidate", "-p", port, "--namespace", ns, "user:"+big)
	if !strings.Contains(r.stdout, "published 1 message(s) of kind flush on clibig:tiercache:bus") {
		t.Fatalf("invalidate of a key too large for a message printed %q; want 1 message of kind flush", r.stdout)
	}
	n.waitReceived(t)
	if got := n.inL1(big, "small"); len(got) != 0 {
		t.Fatalf("after the flush, L1 holds %d of the 2 ids; want none", len(got))
	}

	n.fill(t, big, "small")
	r = mustRun(t, "invalidate", "-p", port, "--namespace", ns, "user:"+big, "user:small")
	if !strings.Contains(r.stdout, "published 2 message(s) on clibig:tiercache:bus: 1 of kind keys, 1 of kind flush") {
		t.Fatalf("invalidate of a key too large and a small one printed %q; want 1 message of kind keys and 1 flush", r.stdout)
	}
	n.waitReceived(t)
	n.waitReceived(t)
	if got := n.inL1(big, "small"); len(got) != 0 {
		t.Fatalf("after the flush, L1 holds %d of the 2 ids; want none", len(got))
	}
}
