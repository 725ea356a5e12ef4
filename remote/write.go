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

// adder queues the command that writes one Redis key on p, and returns
// it, so that each key's outcome can be charged to its own master's
// breaker.
type adder func(ctx context.Context, p redis.Pipeliner, rkey string) redis.Cmder

// write runs add for every key (local keys) as single-key commands. Without
// WaitReplicas it sends one pipeline through the store's client (a cluster
// client splits it by node and follows redirections). With WaitReplicas it
// sends each master its own pipeline followed by WAIT on the same
// connection, which is what WAIT needs: it counts the replicas that
// acknowledged the writes of its own connection.
//
// It returns the write's error, and what each key's write told about the
// key's master (keyErrs[i] for keys[i]): its command's error, or, when the
// command succeeded, the outcome of the WAIT that followed it; for a key
// never sent, the error that stopped it. The breakers are charged with
// keyErrs, so that one failing master does not open the others'.
func (s *Store) write(ctx context.Context, keys []string, add adder) (keyErrs []error, err error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok && s.waitReplicas > 0 {
		return s.writeCluster(ctx, cc, keys, add)
	}
	return s.pipeOn(ctx, s.rdb, keys, add)
}

// pipeOn sends the commands of keys through c in one pipeline, followed by
// WAIT when the store has WaitReplicas (c is then one server's client). It
// returns each key's outcome and the pipeline's error, as write does.
func (s *Store) pipeOn(ctx context.Context, c redis.Cmdable, keys []string, add adder) ([]error, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout+s.waitTimeout)
	defer cancel()
	cmds := make([]redis.Cmder, len(keys))
	var wait *redis.Cmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = add(ctx, p, s.prefix+k)
		}
		if s.waitReplicas > 0 {
			wait = s.addWait(ctx, p)
		}
		return nil
	})
	// A cluster client's pipeline returns the first error of any node;
	// each command holds its own node's.
	var werr error
	switch {
	case err == nil:
		err = s.checkWait(wait)
		werr = err
	case wait != nil:
		werr = wait.Err()
	}
	keyErrs := make([]error, len(keys))
	for i, cmd := range cmds {
		if keyErrs[i] = cmd.Err(); keyErrs[i] == nil {
			keyErrs[i] = werr // WAIT ran on the same server as every command
		}
	}
	return keyErrs, err
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
// the cluster's layout, up to writeAttempts times. It returns each key's
// outcome (that of its last attempt) and the write's error, as write does.
func (s *Store) writeCluster(ctx context.Context, cc *redis.ClusterClient, keys []string, add adder) ([]error, error) {
	keyErrs := make([]error, len(keys))
	stop := func(idx []int, err error) ([]error, error) {
		for _, i := range idx {
			keyErrs[i] = err
		}
		return keyErrs, err
	}
	todo := make([]int, len(keys)) // indices in keys
	for i := range todo {
		todo[i] = i
	}
	for attempt := 1; ; attempt++ {
		groups := make(map[*redis.Client][]int)
		for _, i := range todo {
			node, err := cc.MasterForKey(ctx, s.prefix+keys[i])
			if err != nil {
				return stop(todo, err)
			}
			groups[node] = append(groups[node], i)
		}
		var (
			mu    sync.Mutex // protects again, errs and keyErrs
			again []int
			errs  []error
			wg    sync.WaitGroup
		)
		for node, idx := range groups {
			wg.Go(func() {
				ks := make([]string, len(idx))
				for x, i := range idx {
					ks[x] = keys[i]
				}
				moved, kerrs, err := s.writeNode(ctx, node, ks, add)
				mu.Lock()
				defer mu.Unlock()
				for x, i := range idx {
					keyErrs[i] = kerrs[x]
				}
				for _, x := range moved {
					again = append(again, idx[x])
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", node.Options().Addr, err))
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 || len(again) == 0 {
			return keyErrs, errors.Join(errs...)
		}
		if attempt == writeAttempts {
			return stop(again, fmt.Errorf("remote: %d keys still redirected after %d attempts", len(again), attempt))
		}
		// ForEachMaster reloads the cluster's layout before it returns, so
		// that MasterForKey sees where the slots went.
		if err := cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil }); err != nil {
			return stop(again, err)
		}
		todo = again
	}
}

// writeNode writes keys on one master, followed by WAIT. It returns the
// indices in keys of the keys the master redirected (to be sent again
// elsewhere), each key's outcome (its command's error, or the WAIT's when
// the command succeeded), and any error but a redirection.
func (s *Store) writeNode(ctx context.Context, node *redis.Client, keys []string, add adder) ([]int, []error, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout+s.waitTimeout)
	defer cancel()
	cmds := make([]redis.Cmder, len(keys))
	var wait *redis.Cmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = add(ctx, p, s.prefix+k)
		}
		wait = s.addWait(ctx, p)
		return nil
	})
	keyErrs := make([]error, len(keys))
	var rerr redis.Error
	if err != nil && !errors.As(err, &rerr) {
		for i := range keyErrs {
			keyErrs[i] = err
		}
		return nil, keyErrs, err // the pipeline itself failed, not one command
	}
	var moved []int
	var failed error // the first error of a command, but a redirection
	for i, cmd := range cmds {
		switch cerr := cmd.Err(); {
		case cerr == nil || cerr == redis.Nil:
		case redirected(cerr):
			moved = append(moved, i)
			keyErrs[i] = cerr
		default:
			keyErrs[i] = cerr
			if failed == nil {
				failed = cerr
			}
		}
	}
	if failed != nil {
		return nil, keyErrs, failed
	}
	if len(moved) == len(keys) || wait == nil {
		return moved, keyErrs, nil // nothing was written here, or a test switched waiting off
	}
	werr := s.checkWait(wait)
	for i := range keyErrs {
		if keyErrs[i] == nil {
			keyErrs[i] = werr
		}
	}
	return moved, keyErrs, werr
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
