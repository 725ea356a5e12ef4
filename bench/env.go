package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// env is the Redis the nodes share.
type env struct {
	name  string
	addr  string
	close func()
}

// newEnv connects to addr, or starts an embedded miniredis whose clock is
// advanced in real time (miniredis does not count TTLs down by itself).
func newEnv(addr string) (*env, error) {
	if addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		if err := c.Ping(context.Background()).Err(); err != nil {
			return nil, fmt.Errorf("redis %s: %w", addr, err)
		}
		return &env{name: "redis at " + addr, addr: addr, close: func() {}}, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return &env{name: "embedded miniredis", addr: m.Addr(), close: func() {
		close(stop)
		wg.Wait()
		m.Close()
	}}, nil
}

// client returns a new client (its own connections) for one node.
func (e *env) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: e.addr, ContextTimeoutEnabled: true, PoolSize: 32})
}
