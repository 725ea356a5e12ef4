package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrNotReplicated is returned (wrapped) by [Store.Set], [Store.Unlink] and
// [Store.DeletePattern] of a store with Options.WaitReplicas when fewer
// replicas than that acknowledged the write within WaitTimeout. The master
// did apply the write; a failover before the replicas have it may undo it.
var ErrNotReplicated = errors.New("remote: write not acknowledged by enough replicas")

// writeAttempts bounds how many times a write with WaitReplicas is sent to
// the master of a key that answered with a redirection (the slot moved, a
// failover is under way).
const writeAttempts = 3

// adder queues the command that writes one Redis key on p.
type adder func(ctx context.Context, p redis.Pipeliner, rkey string)

// write runs add for every key (local keys) as single-key commands. Without
// WaitReplicas it sends one pipeline through the store's client (a cluster
// client splits it by node and follows redirections). With WaitReplicas it
// sends each master its own pipeline followed by WAIT on the same
// connection, which is what WAIT needs: it counts the replicas that
// acknowledged the writes of its own connection.
func (s *Store) write(ctx context.Context, keys []string, add adder) error {
	if len(keys) == 0 {
		return nil
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok && s.waitReplicas > 0 {
		return s.writeCluster(ctx, cc, keys, add)
	}
	return s.pipeOn(ctx, s.rdb, keys, add)
}

// pipeOn sends the commands of keys through c in one pipeline, followed by
// WAIT when the store has WaitReplicas (c is then one server's client).
func (s *Store) pipeOn(ctx context.Context, c redis.Cmdable, keys []string, add adder) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout+s.waitTimeout)
	defer cancel()
	var wait *redis.Cmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			add(ctx, p, s.prefix+k)
		}
		if s.waitReplicas > 0 {
			wait = s.addWait(ctx, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.checkWait(wait)
}

// addWait queues WAIT WaitReplicas WaitTimeout on p (nothing when a test
// switched waiting off).
func (s *Store) addWait(ctx context.Context, p redis.Pipeliner) *redis.Cmd {
	if s.skipWait {
		return nil
	}
	return p.Do(ctx, "wait", s.waitReplicas, s.waitTimeout.Milliseconds())
}

// checkWait returns ErrNotReplicated when the WAIT of a pipeline counted
// too few replicas.
func (s *Store) checkWait(wait *redis.Cmd) error {
	if wait == nil {
		return nil
	}
	n, err := wait.Int64()
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if n < int64(s.waitReplicas) {
		return fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, n, s.waitReplicas, s.waitTimeout)
	}
	return nil
}

// writeCluster groups keys by the master that serves them and writes each
// group, with WAIT, on that master's own connection. Keys whose master
// answers with a redirection are grouped again after the client reloads
// the cluster's layout, up to writeAttempts times.
func (s *Store) writeCluster(ctx context.Context, cc *redis.ClusterClient, keys []string, add adder) error {
	todo := keys
	for attempt := 1; ; attempt++ {
		groups := make(map[*redis.Client][]string)
		for _, k := range todo {
			node, err := cc.MasterForKey(ctx, s.prefix+k)
			if err != nil {
				return err
			}
			groups[node] = append(groups[node], k)
		}
		var (
			mu    sync.Mutex // protects again and errs
			again []string
			errs  []error
			wg    sync.WaitGroup
		)
		for node, ks := range groups {
			wg.Go(func() {
				moved, err := s.writeNode(ctx, node, ks, add)
				mu.Lock()
				defer mu.Unlock()
				again = append(again, moved...)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", node.Options().Addr, err))
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 || len(again) == 0 {
			return errors.Join(errs...)
		}
		if attempt == writeAttempts {
			return fmt.Errorf("remote: %d keys still redirected after %d attempts", len(again), attempt)
		}
		// ForEachMaster reloads the cluster's layout before it returns, so
		// that MasterForKey sees where the slots went.
		if err := cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil }); err != nil {
			return err
		}
		todo = again
	}
}

// writeNode writes keys on one master, followed by WAIT. It returns the
// keys the master redirected (to be sent again elsewhere) and any other
// error.
func (s *Store) writeNode(ctx context.Context, node *redis.Client, keys []string, add adder) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout+s.waitTimeout)
	defer cancel()
	cmds, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			add(ctx, p, s.prefix+k)
		}
		s.addWait(ctx, p)
		return nil
	})
	var rerr redis.Error
	if err != nil && !errors.As(err, &rerr) {
		return nil, err // the pipeline itself failed, not one command
	}
	var moved []string
	for i, k := range keys {
		switch cerr := cmds[i].Err(); {
		case cerr == nil || cerr == redis.Nil:
		case redirected(cerr):
			moved = append(moved, k)
		default:
			return nil, cerr
		}
	}
	if len(moved) == len(keys) {
		return moved, nil // nothing was written here
	}
	if len(cmds) == len(keys) {
		return moved, nil // a test switched waiting off
	}
	wait, _ := cmds[len(keys)].(*redis.Cmd)
	return moved, s.checkWait(wait)
}

// redirected reports whether err asks the client to send the command to
// another node, or again later.
func redirected(err error) bool {
	for _, p := range []string{"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}
