package remote

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A tag's stamp is the Redis time (microseconds) of its last invalidation,
// kept under [Store.TagKey]. A value carries the tags it was loaded with and
// the time its load began ([Record.Begin]); it is valid only while none of
// its tags' stamps is at or after that time. Invalidating a tag is one write,
// whatever the number of values that carry it: the values leave Redis
// lazily (a reader that finds one invalid removes it, or its TTL ends).

// TagKey returns the key (within the namespace) of the stamp of the tag
// named id. Stamp keys begin with ":", which no group key does.
func (s *Store) TagKey(id string) string { return ":tag:" + id }

// Clustered reports whether the store runs on a Redis Cluster, where a
// fill cannot check tag stamps in its script (they live in other slots).
func (s *Store) Clustered() bool {
	_, ok := s.rdb.(*redis.ClusterClient)
	return ok
}

// Time returns the TIME, in microseconds, of the Redis server that holds
// key (on a cluster, of the key's master).
func (s *Store) Time(ctx context.Context, key string) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rkey := s.prefix + key
	g, err := s.enter(ctx, rkey)
	if err != nil {
		return 0, fmt.Errorf("remote: time: %w", err)
	}
	var c redis.Cmdable = s.rdb
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		if c, err = cc.MasterForKey(ctx, rkey); err != nil {
			g.exit(ctx, err)
			return 0, s.fail("time", err)
		}
	}
	t, err := c.Time(ctx).Result()
	g.exit(ctx, err)
	if err != nil {
		return 0, s.fail("time", err)
	}
	return t.UnixMicro(), nil
}

// StampTags records an invalidation of the tags named ids, now: each stamp
// becomes the Redis TIME of its own server in microseconds (never less
// than one more than what it held), kept for ttl. It returns the stamps,
// in the order of ids, in one pipeline of one single-key script each.
func (s *Store) StampTags(ctx context.Context, ids []string, ttl time.Duration) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	args := make([][]any, len(ids))
	for i, id := range ids {
		keys[i] = s.TagKey(id)
		args[i] = []any{pxArg(ttl)}
	}
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return nil, fmt.Errorf("remote: stamp tags: %w", err)
	}
	cmds, err := s.runMany(ctx, stampScript, keys, nil, args, nil)
	g.exitEach(ctx, err, len(keys), func(i int) error { return cmdErr(cmds, i, err) })
	if err != nil {
		return nil, s.fail("stamp tags", err)
	}
	out := make([]int64, len(ids))
	for i, c := range cmds {
		txt, err := c.Text()
		if err != nil {
			return nil, s.fail("stamp tags", err)
		}
		if out[i], err = strconv.ParseInt(txt, 10, 64); err != nil {
			return nil, fmt.Errorf("remote: stamp tags: %w", err)
		}
	}
	return out, nil
}

// TagStamps reads the stamps of the tags named ids, in one pipeline of
// single-key GETs: 0 for a tag with no stamp (never invalidated, or so
// long ago that the stamp expired).
func (s *Store) TagStamps(ctx context.Context, ids []string) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.TagKey(id)
	}
	recs, err := s.getRaw(ctx, keys)
	if err != nil {
		return nil, s.fail("tag stamps", err)
	}
	out := make([]int64, len(ids))
	for i, raw := range recs {
		if raw == nil {
			continue
		}
		if out[i], err = strconv.ParseInt(string(raw), 10, 64); err != nil {
			return nil, fmt.Errorf("remote: tag stamps: %q: %w", raw, err)
		}
	}
	return out, nil
}

// getRaw reads keys (local keys) with one pipeline of GETs; a missing key
// is nil.
func (s *Store) getRaw(ctx context.Context, keys []string) ([][]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	g, err := s.enterOn(ctx, s.rdb, keys)
	if err != nil {
		return nil, err
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.prefix+k)
		}
		return nil
	})
	g.exitEach(ctx, err, len(keys), func(i int) error { return cmds[i].Err() })
	if err != nil && err != redis.Nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, c := range cmds {
		b, err := c.Bytes()
		switch {
		case err == redis.Nil:
		case err != nil:
			return nil, err
		default:
			out[i] = b
		}
	}
	return out, nil
}
