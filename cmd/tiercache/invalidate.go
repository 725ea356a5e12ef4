package main

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/tiercache/tiercache/internal/glob"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/bus"
	"github.com/tiercache/tiercache/remote"
	"github.com/tiercache/tiercache/tiered"
)

var cmdInvalidate = &command{
	name:    "invalidate",
	args:    "KEY...",
	summary: "remove keys from Redis and from every node's L1",
	help: `
Removes each KEY (a key as Group.Key returns it: the group's encoded name,
":", the id, e.g. user:42) from Redis with UNLINK, then publishes one bus
message of kind keys so that every node of the namespace drops the keys
from its L1: what Cache.Invalidate does. Nothing is published when Redis
fails. Unlike the library, which retries a failed invalidation in the
background, the command reports the failure and exits 1: run it again.`,
	run: func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 {
			return usagef("no key given (see tiercache invalidate --help)")
		}
		for _, k := range args {
			if k == "" {
				return usagef("empty key")
			}
		}
		return e.mutate(ctx, bus.KindKeys, args, func(ctx context.Context, st *remote.Store) error {
			if err := st.Unlink(ctx, args...); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "unlinked %d key(s) in Redis, namespace %s\n", len(args), e.conn.namespace)
			return nil
		})
	},
}

var cmdInvalidatePattern = &command{
	name:    "invalidate-pattern",
	args:    "PATTERN...",
	summary: "remove the keys matching glob patterns, in Redis and in every L1",
	help: `
Removes every key of the namespace matching each PATTERN (Redis glob syntax:
* ? [a-z] [^x] and \ escapes, matched against whole keys such as user:42;
nothing is appended, so user:4 does not match user:42) from Redis, with a
SCAN from cursor 0 on every master and single-key UNLINKs, then publishes
one bus message of kind patterns so that every node drops its matching L1
entries: what Cache.InvalidatePattern does. Patterns never reach outside the
namespace. The command refuses an empty pattern and one whose [ class is
never closed (Redis would read "[abc" as a class of the bytes given so far):
write \[ for a literal bracket.`,
	run: func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 {
			return usagef("no pattern given (see tiercache invalidate-pattern --help)")
		}
		for _, p := range args {
			if err := checkPattern(p); err != nil {
				return err
			}
		}
		return e.mutate(ctx, bus.KindPatterns, args, func(ctx context.Context, st *remote.Store) error {
			return e.deletePatterns(ctx, st, args, func(p string) string { return fmt.Sprintf("pattern %q", p) })
		})
	},
}

var cmdClear = &command{
	name:    "clear",
	args:    "GROUP",
	summary: "remove every key of a group, in Redis and in every L1",
	help: `
Removes every key of the group named GROUP: the pattern of the group's
encoded name (tiered.EncodeName: % and : percent-encoded), escaped
(tiered.Escape), followed by ":*", invalidated as invalidate-pattern does.
This needs no tags: every key of a group starts with that prefix, and
nothing else does.`,
	run: func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("want exactly one GROUP, got %d (see tiercache clear --help)", len(args))
		}
		if args[0] == "" {
			return usagef("empty group name")
		}
		p := groupPattern(args[0])
		return e.mutate(ctx, bus.KindPatterns, []string{p}, func(ctx context.Context, st *remote.Store) error {
			return e.deletePatterns(ctx, st, []string{p}, func(p string) string {
				return fmt.Sprintf("group %q (pattern %q)", args[0], p)
			})
		})
	},
}

// groupPattern returns the pattern that matches every key of the group
// named group, and nothing else: what clearing a group invalidates.
func groupPattern(group string) string { return tiered.Escape(tiered.EncodeName(group)) + ":*" }

// deletePatterns removes the keys matching patterns from Redis, pattern by
// pattern, as the library does, and says how many each removed.
func (e *env) deletePatterns(ctx context.Context, st *remote.Store, patterns []string, name func(string) string) error {
	for _, p := range patterns {
		n, err := st.DeletePattern(ctx, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: removed %d key(s) from Redis, namespace %s\n", name(p), n, e.conn.namespace)
	}
	return nil
}

// mutate runs an invalidation as the library does: the Redis part first
// (redisPart, through a remote.Store of the namespace), and only once it
// succeeded, the bus message of kind with items, through a bus.Bus (which
// numbers and splits messages as every node's does).
func (e *env) mutate(ctx context.Context, kind bus.Kind, items []string, redisPart func(context.Context, *remote.Store) error) error {
	rdb, err := e.conn.client(e.getenv)
	if err != nil {
		return err
	}
	defer rdb.Close()
	st, err := remote.New(rdb, remote.Options{Namespace: e.conn.namespace, Timeout: e.conn.timeout, DisableBreaker: true})
	if err != nil {
		return usageError{err.Error()}
	}
	// The bus first, so that a bad --bus-key changes nothing; it publishes
	// only after Redis changed. A message sent without items is a flush:
	// the bus sends one in place of an item too large for a message
	// (every item of a command's message is non-empty, and there is one).
	var sent, flushes atomic.Int64
	b, err := e.newBus(rdb, func(ev bus.Event) {
		if ev.Kind == bus.EventSent {
			sent.Add(1)
			if ev.N == 0 && kind != bus.KindFlush {
				flushes.Add(1)
			}
		}
	})
	if err != nil {
		return err
	}
	defer b.Close()
	if err := redisPart(ctx, st); err != nil {
		return fmt.Errorf("redis %s: %w (nothing was published)", describe(rdb), err)
	}
	if err := b.Publish(ctx, kind, items...); err != nil {
		return fmt.Errorf("Redis changed, but the bus message failed: nodes keep their L1 copies until their L1TTL; run the command again: %w", err)
	}
	ch := tiered.BusChannel(e.conn.namespace)
	switch n, f := sent.Load(), flushes.Load(); {
	case f == 0:
		fmt.Fprintf(e.stdout, "published %d message(s) of kind %s on %s\n", n, kindName(kind), ch)
	case f == n:
		fmt.Fprintf(e.stdout, "published %d message(s) of kind flush on %s: %s\n", n, ch, tooLarge)
	default:
		fmt.Fprintf(e.stdout, "published %d message(s) on %s: %d of kind %s, %d of kind flush: %s\n", n, ch, n-f, kindName(kind), f, tooLarge)
	}
	return nil
}

// tooLarge says why a command's message became a flush.
const tooLarge = "an item is too large for one bus message, so every node flushes its whole L1 instead"

// newBus returns the bus through which a command publishes, with a random
// origin, signing its messages under --bus-key (or $TIERCACHE_BUS_KEY)
// when one is given, as a node with that BusKey does.
func (e *env) newBus(rdb redis.UniversalClient, observe func(bus.Event)) (*bus.Bus, error) {
	key := e.conn.busKey
	if key == "" {
		key = e.getenv(busKeyEnv)
	}
	var keys [][]byte
	if key != "" {
		keys = [][]byte{[]byte(key)}
	}
	b, err := bus.New(bus.Options{
		Keys:    keys,
		Client:  rdb,
		Channel: tiered.BusChannel(e.conn.namespace),
		Handler: ignore{},
		Timeout: e.conn.timeout,
		Sharded: e.conn.sharded,
		Observe: observe,
	})
	if err != nil && key != "" {
		return nil, usagef("--bus-key: %v", err)
	}
	return b, err
}

// ignore is the bus handler of a command that only publishes.
type ignore struct{}

func (ignore) Apply(bus.Message)     {}
func (ignore) Lost(error)            {}
func (ignore) Restored()             {}
func (ignore) Gap(origin bus.NodeID) {}

// kindName names a bus message kind as docs/protocol.md does.
func kindName(k bus.Kind) string {
	switch k {
	case bus.KindKeys:
		return "keys"
	case bus.KindPatterns:
		return "patterns"
	case bus.KindHeartbeat:
		return "heartbeat"
	case bus.KindFlush:
		return "flush"
	case bus.KindTags:
		return "tags"
	}
	return fmt.Sprintf("unknown(%d)", uint8(k))
}

// checkPattern refuses patterns that the command will not send: the empty
// pattern (it matches the empty key only) and one with a [ class that is
// never closed, read as Redis's stringmatchlen reads it.
func checkPattern(p string) error {
	if p == "" {
		return usagef("empty pattern")
	}
	if err := glob.Check(p); err != nil { // the library's limits: it would refuse it too
		return usagef("invalid pattern %.40q...: %v", p, err)
	}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '[':
			start := i
			i++
			if i < len(p) && p[i] == '^' {
				i++
			}
			closed := false
			for ; i < len(p) && !closed; i++ {
				switch {
				case p[i] == '\\' && i+1 < len(p):
					i++
				case p[i] == ']':
					closed = true
					i-- // the outer loop steps over the ]
				case i+2 < len(p) && p[i+1] == '-':
					i += 2 // a range; its end may be ]
				}
			}
			if !closed {
				return usagef("invalid pattern %q: the [ at byte %d is never closed (write \\[ for a literal [)", p, start)
			}
		}
	}
	return nil
}
