// Command blog is a posts service cached by httpcache in a two-tier cache:
// GET /posts/{post_id}, GET /users/{user_id}/posts?page=N,
// GET /categories/{category_id}, GET /categories/{category_id}/posts and
// GET /recent are cached; PUT /posts/{post_id} invalidates the post, the
// owner's post lists, the old and new category lists and the recent posts,
// on every instance. At start-up it warms, through the cached routes,
// reference data (categories), popular posts and active users' first pages,
// printing progress. An in-memory store stands in for the database.
//
//	go run ./examples/blog                      # embedded Redis (miniredis)
//	go run ./examples/blog -redis 127.0.0.1:6379 -addr 127.0.0.1:8081
//
//	curl -i localhost:8080/posts/1              # X-Cache: MISS, then HIT-L1
//	curl -i -X PUT -d '{"title":"new"}' localhost:8080/posts/1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/minitime"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	redisAddr := flag.String("redis", "", "Redis address; empty: an embedded miniredis")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, *redisAddr); err != nil {
		fmt.Fprintln(os.Stderr, "blog:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, redisAddr string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if redisAddr == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return err
		}
		defer mr.Close()
		stopClock := minitime.Follow(mr, 100*time.Millisecond)
		defer stopClock()
		redisAddr = mr.Addr()
		fmt.Println("embedded Redis (miniredis) on", redisAddr)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true})
	defer rdb.Close()

	a, err := newApp(newStore(200, 20, 5), appOptions{Redis: rdb, Namespace: "blog", Logger: log})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.cache.WaitBus(ctx); err != nil {
		return err
	}
	start := time.Now()
	if err := a.warm(ctx, os.Stdout); err != nil {
		fmt.Println("warming finished with errors:", err)
	}
	fmt.Printf("warmed in %v\n", time.Since(start).Round(time.Millisecond))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.handler, ReadHeaderTimeout: 5 * time.Second}
	fmt.Println("listening on http://" + ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
