// Command quickstart runs two nodes of a service on one Redis, as two
// processes would: a miss that loads, an L1 hit, and an invalidation on node
// A that node B applies before its next read.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

// User is the cached value; a group stores it as JSON.
type User struct{ ID, Name string }

// database stands in for the source of truth and counts its queries.
type database struct {
	mu      sync.Mutex
	names   map[string]string
	queries int
}

// loadUser is the loader: one query.
func (db *database) loadUser(_ context.Context, id string) (User, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.queries++
	return User{ID: id, Name: db.names[id]}, nil
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := run(ctx, os.Stdout, os.Getenv("REDIS_ADDR"))
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// node is one process of a service.
type node struct {
	name  string
	rdb   *redis.Client
	cache *tiered.Cache
	users *tiered.Group[User]
}

func (n node) close() error { return errors.Join(n.cache.Close(), n.rdb.Close()) }

// newNode does what each process does at start-up.
func newNode(ctx context.Context, name, addr string, rec tiered.Recorder) (node, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	c, err := tiered.New(tiered.Options{Redis: rdb, Namespace: "quickstart", Recorder: rec, RedisTimeout: time.Second})
	if err != nil {
		return node{}, errors.Join(err, rdb.Close())
	}
	users, err := tiered.NewGroup[User](c, "users", tiered.GroupOptions{TTL: time.Hour})
	if err == nil {
		err = c.WaitBus(ctx) // until the bus is up, L1 keeps entries for a second only
	}
	if err != nil {
		return node{}, errors.Join(fmt.Errorf("node %s, redis %s: %w", name, addr, err), c.Close(), rdb.Close())
	}
	return node{name, rdb, c, users}, nil
}

// fetch reads user 42 on n and prints where the value came from.
func fetch(ctx context.Context, out io.Writer, db *database, n node) error {
	before := n.users.Stats()
	u, err := n.users.Fetch(ctx, "42", db.loadUser)
	if err != nil {
		return err
	}
	n.cache.WaitL1() // L1 takes fills asynchronously: let the next read hit
	after, from := n.users.Stats(), "loaded from the database"
	if after.L1Hits > before.L1Hits {
		from = "an L1 hit"
	} else if after.L2Hits > before.L2Hits {
		from = "from Redis"
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	_, err = fmt.Fprintf(out, "node %s: user 42 is %s (%s; database queries: %d)\n", n.name, u.Name, from, db.queries)
	return err
}

func run(ctx context.Context, out io.Writer, addr string) error {
	if addr == "" { // no REDIS_ADDR: an embedded Redis
		mr, err := miniredis.Run()
		if err != nil {
			return err
		}
		defer mr.Close()
		mr.ClockTTL(true) // TTLs run on the wall clock, as on Redis
		addr = mr.Addr()
	}
	a, err := newNode(ctx, "A", addr, nil)
	if err != nil {
		return err
	}
	defer a.close()
	heard := make(chan struct{}, 1) // node B applied an invalidation from node A
	b, err := newNode(ctx, "B", addr, tiered.RecorderFunc(func(e tiered.Event) {
		if e.Kind == tiered.EventInvalidationReceived {
			select {
			case heard <- struct{}{}:
			default: // a Recorder must never block
			}
		}
	}))
	if err != nil {
		return err
	}
	defer b.close()
	invalidate := func() error { // on node A; returns once node B applied it
		if err := a.users.Invalidate(ctx, "42"); err != nil {
			return err
		}
		select {
		case <-heard:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("node B never applied the invalidation: %w", ctx.Err())
		}
	}

	if err := invalidate(); err != nil { // start cold, even on a Redis that kept the last run's value
		return err
	}
	db := &database{names: map[string]string{"42": "Ada"}}
	for _, n := range []node{a, a, b, b} {
		if err := fetch(ctx, out, db, n); err != nil {
			return err
		}
	}
	db.mu.Lock()
	db.names["42"] = "Grace" // a write to the database, then its invalidation
	db.mu.Unlock()
	if err := invalidate(); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(out, "node A: renamed user 42 and invalidated it"); err != nil {
		return err
	}
	return fetch(ctx, out, db, b)
}
