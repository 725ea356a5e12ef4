package main

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
	jetcache "github.com/mgtv-tech/jetcache-go"
	jetlocal "github.com/mgtv-tech/jetcache-go/local"
	jetlogger "github.com/mgtv-tech/jetcache-go/logger"
	jetremote "github.com/mgtv-tech/jetcache-go/remote"
	"github.com/redis/go-redis/v9"
)

// jetcacheNode is github.com/mgtv-tech/jetcache-go with a local and a
// remote cache, read through with Once, and its local-sync hook wired to
// Redis pub/sub as its README shows: the event handler publishes every
// event, and a subscriber on every node deletes the keys of the other
// nodes' events from its local cache.
type jetcacheNode struct {
	ne      *nodeEnv
	rdb     redis.UniversalClient
	c       jetcache.Cache
	local   *jetlocal.TinyLFU
	stats   *jetStats
	channel string
	sub     *redis.PubSub
	done    sync.WaitGroup

	// carrying maps the key string of each Delete in flight, a copy made
	// for that call, to the version it invalidates: the event jetcache
	// emits holds that very string, so the event handler knows which write
	// the event carries however late it runs.
	mu       sync.Mutex
	carrying map[*byte]uint64
}

var errJetNotFound = errors.New("not found")

func jetcacheSystem() *system {
	return &system{
		name: "jetcache-go",
		config: "v1.2.6: TinyLFU local cache sized to the entry budget (its FreeCache is one instance per process, " +
			"which nodes in one process would share), Once read-through, msgpack, SETEX (TTLs in whole seconds), sync-local events over pub/sub",
		prop: propMessages,
		open: openJetcache,
	}
}

// jetSyncMessage is what the event handler publishes: the event, and for the
// harness the node and the versions each key's invalidation carries.
type jetSyncMessage struct {
	Event   *jetcache.Event `json:"event"`
	Node    int             `json:"node"`
	Covered []uint64        `json:"covered,omitempty"`
}

func openJetcache(ne *nodeEnv) (cacheNode, error) {
	rdb := ne.env.client(ne.cmds)
	n := &jetcacheNode{ne: ne, rdb: rdb, stats: &jetStats{}, channel: ne.prefix + ":jetcache-sync"}
	n.local = jetlocal.NewTinyLFU(ne.budget.entries, ne.l1TTL)
	n.sub = rdb.Subscribe(context.Background(), n.channel)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.sub.Receive(ctx); err != nil { // the subscription confirmed
		n.sub.Close()
		rdb.Close()
		return nil, err
	}
	n.c = jetcache.New(
		jetcache.WithName("bench"),
		jetcache.WithRemote(jetremote.NewGoRedisV9Adapter(rdb)),
		jetcache.WithLocal(n.local),
		jetcache.WithErrNotFound(errJetNotFound),
		jetcache.WithRemoteExpiry(ne.ttl),
		jetcache.WithStatsHandler(n.stats),
		jetcache.WithSourceId(strconv.Itoa(ne.idx)),
		jetcache.WithSyncLocal(true),
		jetcache.WithEventHandler(n.publish),
	)
	n.done.Add(1)
	go n.receive(n.sub.Channel())
	return n, nil
}

// publish is the event handler: it runs on jetcache's event goroutine.
func (n *jetcacheNode) publish(e *jetcache.Event) {
	m := jetSyncMessage{Event: e, Node: n.ne.idx}
	if e.EventType == jetcache.EventTypeDelete {
		m.Covered = n.carried(e.Keys)
	}
	b, _ := json.Marshal(m)
	n.rdb.Publish(context.Background(), n.channel, b)
}

// receive applies the other nodes' events until the subscription closes.
func (n *jetcacheNode) receive(ch <-chan *redis.Message) {
	defer n.done.Done()
	for msg := range ch {
		var m jetSyncMessage
		if err := json.Unmarshal([]byte(msg.Payload), &m); err != nil || m.Event == nil {
			continue
		}
		if m.Event.SourceID == strconv.Itoa(n.ne.idx) {
			continue
		}
		for i, key := range m.Event.Keys {
			n.c.DeleteFromLocalCache(key)
			if k := parseKeyID(key); k >= 0 && k < n.ne.t.keys && i < len(m.Covered) {
				n.ne.log.applied(k, m.Covered[i], m.Covered[i], n.ne.t.rel(time.Now()))
			}
		}
	}
}

func (n *jetcacheNode) get(ctx context.Context, k int) (value, error) {
	var v value
	err := n.c.Once(ctx, n.ne.keys[k], jetcache.Value(&v), jetcache.TTL(n.ne.ttl),
		jetcache.Do(func(ctx context.Context) (any, error) { return n.ne.load(ctx, k) }))
	return v, err
}

// carried returns the version each key of a Delete event invalidates (0
// if none): the one its Delete was called for, or, for a Delete the
// harness did not name (none does in a run), the oldest write of this
// node not yet carried, as when events leave in write order.
func (n *jetcacheNode) carried(keys []string) []uint64 {
	out := make([]uint64, len(keys))
	for i, key := range keys {
		if v, ok := n.untrack(key); ok {
			out[i] = v
		} else if k := parseKeyID(key); k >= 0 && k < n.ne.t.keys {
			out[i] = n.ne.t.claimOldest(k, n.ne.idx)
		}
	}
	return out
}

// track returns a copy of key to delete with, noted as invalidating
// version v of k.
func (n *jetcacheNode) track(key string, k int, v uint64) string {
	key = strings.Clone(key)
	n.ne.t.claim(k, v) // so that claimOldest never takes it for another event
	n.mu.Lock()
	if n.carrying == nil {
		n.carrying = make(map[*byte]uint64)
	}
	n.carrying[unsafe.StringData(key)] = v
	n.mu.Unlock()
	return key
}

// untrack forgets key, returning the version track noted for it.
func (n *jetcacheNode) untrack(key string) (uint64, bool) {
	p := unsafe.StringData(key)
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.carrying[p]
	delete(n.carrying, p)
	return v, ok
}

func (n *jetcacheNode) invalidate(ctx context.Context, keys []int) error {
	var errs []error
	for _, k := range keys {
		key := n.ne.keys[k]
		if v := writeOf(ctx, k); v > 0 {
			key = n.track(key, k, v)
		}
		err := n.c.Delete(ctx, key)
		if err != nil {
			n.untrack(key) // jetcache sends no event for a failed Delete
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (n *jetcacheNode) invalidateGroup(ctx context.Context, g int) error {
	return n.invalidate(ctx, groupKeys(g, n.ne.t.keys))
}

func (n *jetcacheNode) tiers() tierCounts {
	return tierCounts{L1Hits: n.stats.local.Load(), L2Hits: n.stats.remote.Load()}
}

func (n *jetcacheNode) close() error {
	n.c.Close()
	n.sub.Close()
	n.done.Wait()
	closeJetTinyLFU(n.local)
	return n.rdb.Close()
}

// closeJetTinyLFU stops the Ristretto inside jetcache-go's TinyLFU, which
// has no Close of its own: without it every run would leave its goroutines
// and counters behind.
func closeJetTinyLFU(l *jetlocal.TinyLFU) {
	f := reflect.ValueOf(l).Elem().FieldByName("cache")
	if !f.IsValid() {
		return
	}
	c, ok := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface().(*ristretto.Cache[string, []byte])
	if ok && c != nil {
		c.Close()
	}
}

// jetStats counts jetcache's hits per tier.
type jetStats struct{ local, remote atomic.Uint64 }

func (s *jetStats) IncrHit()              {}
func (s *jetStats) IncrMiss()             {}
func (s *jetStats) IncrLocalHit()         { s.local.Add(1) }
func (s *jetStats) IncrLocalMiss()        {}
func (s *jetStats) IncrRemoteHit()        { s.remote.Add(1) }
func (s *jetStats) IncrRemoteMiss()       {}
func (s *jetStats) IncrQuery()            {}
func (s *jetStats) IncrQueryFail(e error) {}

// jetLog receives jetcache-go's log lines (a process-wide logger): it
// counts warnings, such as an event dropped because its buffer was full,
// and prints nothing.
type jetLog struct{ warnings atomic.Uint64 }

func (l *jetLog) Debug(string, ...any) {}
func (l *jetLog) Info(string, ...any)  {}
func (l *jetLog) Warn(string, ...any)  { l.warnings.Add(1) }
func (l *jetLog) Error(string, ...any) { l.warnings.Add(1) }

var jetLogger = &jetLog{}

// quietJetcache routes jetcache-go's process-wide logger to jetLogger; the
// program calls it once, before any goroutine starts.
func quietJetcache() { jetlogger.SetDefaultLogger(jetLogger) }
