package remote

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/glob"
)

// scanCount is the COUNT hint of each SCAN call.
const scanCount = 1000

// DeletePattern removes every key of the namespace whose local key (the
// part after "Namespace:") matches the glob pattern, with Redis's own
// matching semantics. It SCANs from cursor 0 until the cursor is 0 again,
// sending as MATCH only the namespace and the pattern's literal prefix
// (escaped), filters every key exactly with the pattern, and UNLINKs each
// batch with single-key commands. On a cluster client it does so on every
// master. It returns how many keys it removed.
//
// Keys of the library's own (a local key beginning with ":", such as a
// tag's stamp or a hand-off) are never removed, whatever the pattern: a
// stamp removed would let the values its tag invalidated be served again.
//
// SCAN guarantees every key present for the whole scan is returned; a key
// written during the scan may or may not be. The leases of such keys are
// removed like any other key, so a load in flight will not fill.
func (s *Store) DeletePattern(ctx context.Context, pattern string) (int, error) {
	return s.DeletePatternWith(ctx, pattern, nil)
}

// DeletePatternWith is [Store.DeletePattern] in which each batch of
// matching keys (local keys, all on one server) is first offered to
// invalidate, when it is not nil: it invalidates the keys it takes in its
// own way (as [Store.MarkStale] does for a group with a MaxStale window)
// and returns the others, which are unlinked. On a cluster client the
// masters are scanned at once, so invalidate may be called concurrently,
// one goroutine per master. An error from it ends that master's scan with
// that error. The count returned includes the keys it took.
func (s *Store) DeletePatternWith(ctx context.Context, pattern string, invalidate func(ctx context.Context, keys []string) ([]string, error)) (int, error) {
	prefix, _ := glob.LiteralPrefix(pattern)
	match := glob.Escape(s.prefix+prefix) + "*"
	m := glob.Compile(pattern)
	scanOne := func(ctx context.Context, c *redis.Client) (int, error) {
		return s.scanDelete(ctx, c, match, m, invalidate)
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var total atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			n, err := scanOne(ctx, c)
			total.Add(int64(n))
			return err
		})
		return int(total.Load()), err
	}
	if c, ok := s.rdb.(*redis.Client); ok {
		return scanOne(ctx, c)
	}
	return 0, fmt.Errorf("remote: delete pattern: unsupported client %T", s.rdb)
}

func (s *Store) scanDelete(ctx context.Context, c *redis.Client, match string, m *glob.Matcher, invalidate func(context.Context, []string) ([]string, error)) (int, error) {
	var cursor uint64
	removed := 0
	for {
		sctx, cancel := s.ctx(ctx)
		g, err := s.enterOn(sctx, c, nil)
		var keys []string
		var next uint64
		if err == nil {
			keys, next, err = c.Scan(sctx, cursor, match, scanCount).Result()
			g.exit(sctx, err)
		}
		cancel()
		if err != nil {
			return removed, s.fail("scan", err)
		}
		var batch []string
		for _, k := range keys {
			if local, ok := s.localKey(k); ok && !ownKey(local) && m.Match(local) {
				batch = append(batch, local)
			}
		}
		n := len(batch)
		if invalidate != nil && n > 0 {
			if batch, err = invalidate(ctx, batch); err != nil {
				return removed, err
			}
		}
		if err := s.unlinkOn(ctx, c, batch); err != nil {
			return removed, err
		}
		removed += n
		if next == 0 {
			return removed, nil
		}
		cursor = next
	}
}

// unlinkOn removes keys (local keys) from the one server c, one UNLINK per
// key in one pipeline, followed by WAIT with WaitReplicas.
func (s *Store) unlinkOn(ctx context.Context, c *redis.Client, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	g, err := s.enterOn(ctx, c, keys)
	if err != nil {
		return fmt.Errorf("remote: unlink: %w", err)
	}
	_, err = s.pipeOn(ctx, c, keys, addUnlink) // one master, one breaker: its whole outcome
	g.exit(ctx, err)
	if err != nil {
		return s.fail("unlink", err)
	}
	return nil
}

// ownKey reports whether the local key is one of the library's own (a
// tag's stamp, a hand-off), which no group key is: they begin with ":".
func ownKey(local string) bool { return strings.HasPrefix(local, ":") }
