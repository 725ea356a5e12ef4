package remote_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/internal/redistest"
	"github.com/tiercache/tiercache/remote"
)

func newStore(t *testing.T, rdb redis.UniversalClient, o remote.Options) *remote.Store {
	t.Helper()
	if o.Namespace == "" {
		o.Namespace = "cl"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second // a loaded machine under -race
	}
	s, err := remote.New(rdb, o)
	if err != nil {
		t.Fatalf("remote.New: %v", err)
	}
	return s
}

// waitWrites runs the three writes that wait for replicas and returns
// their errors by name.
func waitWrites(t *testing.T, s *remote.Store, keys []string) map[string]error {
	t.Helper()
	ctx := context.Background()
	errs := map[string]error{
		"Set":    s.Set(ctx, keys[0], value("v", time.Minute), time.Minute),
		"Unlink": s.Unlink(ctx, keys...),
	}
	for _, k := range keys {
		if err := s.Set(ctx, k, value("v", time.Minute), time.Minute); err != nil && !errors.Is(err, remote.ErrNotReplicated) {
			t.Fatal(err)
		}
	}
	_, errs["DeletePattern"] = s.DeletePattern(ctx, "*")
	return errs
}

// TestWaitReplicasSingle: with WaitReplicas, a write returns nil only once
// the replica acknowledged it. The replica replicates through a proxy that
// the test holds; with WAIT switched off the same writes wrongly report
// success.
func TestWaitReplicasSingle(t *testing.T) {
	t.Parallel()
	primary := redistest.Start(t, redistest.Args("--repl-diskless-sync-delay", "0"))
	proxy := redistest.NewProxy(t, primary.Addr())
	_, port, _ := net.SplitHostPort(proxy.Addr())
	replica := redistest.Start(t, redistest.Args("--replicaof", "127.0.0.1", port))
	rdb := primary.Client(t)
	keys := []string{"a", "b", "c"}
	waitInSync(t, replica.Client(t), rdb)

	s := newStore(t, rdb, remote.Options{WaitReplicas: 1, WaitTimeout: 5 * time.Second})
	for op, err := range waitWrites(t, s, keys) {
		if err != nil {
			t.Fatalf("%s with an attached replica: %v", op, err)
		}
	}
	if n := replica.Client(t).DBSize(context.Background()).Val(); n != 0 {
		t.Fatalf("replica holds %d keys right after DeletePattern returned; want 0", n)
	}

	proxy.Blackhole()
	s = newStore(t, rdb, remote.Options{WaitReplicas: 1, WaitTimeout: 20 * time.Millisecond})
	for op, err := range waitWrites(t, s, keys) {
		if !errors.Is(err, remote.ErrNotReplicated) {
			t.Errorf("%s with replication held = %v; want ErrNotReplicated", op, err)
		}
	}
	remote.SetSkipWait(s, true)
	for op, err := range waitWrites(t, s, keys) {
		if err != nil {
			t.Errorf("%s without WAIT = %v; want the wrong success the switch causes", op, err)
		}
	}

	ring := redis.NewRing(&redis.RingOptions{})
	defer ring.Close()
	if _, err := remote.New(ring, remote.Options{WaitReplicas: 1}); err == nil {
		t.Error("New accepted WaitReplicas on a Ring")
	}
	if _, err := remote.New(rdb, remote.Options{WaitReplicas: -1}); err == nil {
		t.Error("New accepted a negative WaitReplicas")
	}
}

// waitInSync waits until the replica behind r reports its link up and the
// primary behind p counts it online (only then does WAIT count it). A
// bounded wait for the replication handshake, not a test interleaving.
func waitInSync(t *testing.T, r, p *redis.Client) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		role, err := r.Do(ctx, "role").Slice()
		info := p.Info(ctx, "replication").Val()
		if err == nil && len(role) > 3 && role[3] == "connected" && strings.Contains(info, "state=online") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not in sync within 10s: %v, %v; primary: %s", role, err, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWaitReplicasCluster: on a cluster, each master's writes are followed
// by WAIT on that master's connection. With one master's replication held,
// the writes to it report ErrNotReplicated and the others are replicated.
func TestWaitReplicasCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	keys := manyKeys("w:", 60)
	patient := newStore(t, rdb, remote.Options{WaitReplicas: 1, WaitTimeout: 5 * time.Second})
	held := cl.MasterOf(t, patient.RedisKey(keys[0]))
	proxy := cl.ProxyReplication(t, held)
	for op, err := range waitWrites(t, patient, keys) {
		if err != nil {
			t.Fatalf("%s with every replica up: %v", op, err)
		}
	}
	proxy.Blackhole()
	s := newStore(t, rdb, remote.Options{WaitReplicas: 1, WaitTimeout: 20 * time.Millisecond})
	var onHeld, elsewhere []string
	for _, k := range keys {
		if cl.MasterOf(t, s.RedisKey(k)) == held {
			onHeld = append(onHeld, k)
		} else {
			elsewhere = append(elsewhere, k)
		}
	}
	if len(elsewhere) == 0 {
		t.Fatal("every key on one master")
	}
	for op, err := range waitWrites(t, s, keys) {
		if !errors.Is(err, remote.ErrNotReplicated) {
			t.Errorf("%s with %s's replication held = %v; want ErrNotReplicated", op, held.Addr(), err)
		}
	}
	if err := patient.Unlink(context.Background(), elsewhere...); err != nil {
		t.Errorf("Unlink of keys of the other masters = %v; want nil", err)
	}
	remote.SetSkipWait(s, true)
	if err := s.Unlink(context.Background(), onHeld...); err != nil {
		t.Errorf("Unlink without WAIT = %v; want the wrong success the switch causes", err)
	}
}

// TestMasterAddedLater: a master that joins after the store was made (and
// that has never seen the store's scripts) gets a slot with keys and a
// lease in flight; filling the lease loads the scripts there, and
// DeletePattern reaches the keys on it.
func TestMasterAddedLater(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.ReplicasPerMaster(0))
	rdb := cl.Client(t)
	s := newStore(t, rdb, remote.Options{})
	ctx := context.Background()
	keys := manyKeys("p:", 300)
	for _, k := range keys {
		if err := s.Set(ctx, k, value("v", time.Minute), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	lease, won, _, err := s.Acquire(ctx, "leased", time.Minute)
	if err != nil || !won {
		t.Fatalf("Acquire = %v, %v", won, err)
	}
	added := cl.AddMaster(t)
	for _, k := range []string{"leased", keys[0], keys[1]} {
		cl.MoveSlot(t, cl.Slot(t, s.RedisKey(k)), added)
	}
	ok, err := s.FillMany(ctx, []remote.Fill{{Lease: lease, Record: value("filled", time.Minute), TTL: time.Minute}})
	if err != nil || !ok[0] {
		t.Fatalf("FillMany on the added master = %v, %v; want filled", ok, err)
	}
	if n := added.Admin().DBSize(ctx).Val(); n < 3 {
		t.Fatalf("the added master holds %d keys; want at least 3", n)
	}
	n, err := s.DeletePattern(ctx, "*")
	if err != nil || n != len(keys)+1 {
		t.Fatalf("DeletePattern(*) = %d, %v; want %d", n, err, len(keys)+1)
	}
	if n := added.Admin().DBSize(ctx).Val(); n != 0 {
		t.Fatalf("the added master still holds %d keys after DeletePattern", n)
	}
}

// TestScriptsAfterRestartAndFailover: a master is killed, and its keys are
// read from the replica that replaced it (the store makes the client look
// for the new layout after the first failed call, instead of waiting for
// its periodic reload); the node comes back as a replica with an empty
// script cache and is failed over to again; the pipelined scripts that
// then meet NOSCRIPT are loaded and run.
func TestScriptsAfterRestartAndFailover(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	s := newStore(t, rdb, remote.Options{})
	ctx := context.Background()
	m := cl.MasterOf(t, s.RedisKey("k0"))
	fillAll := func(round int) {
		t.Helper()
		keys := manyKeys("r"+strconv.Itoa(round)+":", 30)
		acq, err := s.AcquireMany(ctx, keys, time.Minute)
		if err != nil {
			t.Fatalf("round %d: AcquireMany: %v", round, err)
		}
		fills := make([]remote.Fill, len(acq))
		for i, a := range acq {
			if !a.Won {
				t.Fatalf("round %d: %s not won", round, keys[i])
			}
			fills[i] = remote.Fill{Lease: a.Lease, Record: value("v", time.Minute), TTL: time.Minute}
		}
		ok, err := s.FillMany(ctx, fills)
		if err != nil {
			t.Fatalf("round %d: FillMany: %v", round, err)
		}
		for i, filled := range ok {
			if !filled {
				t.Fatalf("round %d: %s not filled", round, keys[i])
			}
		}
	}
	fillAll(1)
	var onM string
	for i := range 30 {
		if k := "r1:" + strconv.Itoa(i); cl.MasterOf(t, s.RedisKey(k)) == m {
			onM = k
		}
	}
	cl.WaitReplicated(t)
	r := cl.KillMaster(t, m)
	deadline := time.Now().Add(10 * time.Second) // a hang guard: the periodic reload comes after 60s
	for {
		rec, err := s.Get(ctx, onM)
		if err == nil {
			if rec.Kind != remote.KindValue {
				t.Fatalf("Get(%s) from the promoted replica = %v; want its value", onM, rec.Kind)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%s) still fails 10s after the failover: %v", onM, err)
		}
	}
	cl.Restart(t, m)
	if got, _ := m.Admin().ScriptExists(ctx, remote.ScriptSHAs()...).Result(); len(got) == 0 || got[0] {
		t.Fatalf("a restarted node has scripts: %v", got)
	}
	cl.Failover(t, m)
	if cl.MasterOf(t, s.RedisKey("k0")) != m || cl.ReplicaOf(t, m) != r {
		t.Fatal("the failover back did not restore the roles")
	}
	fillAll(2)
}
