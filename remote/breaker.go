package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrBreakerOpen is wrapped by the error of a call that a [Store] refused
// without touching the network, because the circuit breaker of a Redis
// endpoint the call needs is open. Test for it with errors.Is.
var ErrBreakerOpen = errors.New("remote: circuit breaker open")

// Defaults of the breaker fields of [Options].
const (
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = time.Second
)

// errStoreTimeout is the cause of the contexts that bound every call
// (Store.ctx): a deadline with this cause is the store's own timeout, which
// counts against the endpoint, not the caller's.
var errStoreTimeout = errors.New("remote: redis call timed out")

// A breaker is in one of three states, kept in the low bits of its word;
// the bits above count the changes (a generation), so that the outcome of
// a call admitted before a change is recognised as stale.
const (
	stateClosed  uint64 = 0 // calls go through; failures are counted
	stateOpen    uint64 = 1 // calls are refused until the cool-down ends
	stateProbing uint64 = 2 // one call (the probe) is in flight; others are refused
	stateMask    uint64 = 3
	genStep      uint64 = 4
)

// next is the word of the generation after w, in state s.
func next(w, s uint64) uint64 { return (w&^stateMask + genStep) | s }

// outcome is what a call tells its breaker.
type outcome uint8

const (
	neutral outcome = iota // tells nothing about the endpoint (the caller gave up)
	success                // the endpoint answered
	failure                // the endpoint did not answer, or answered that it cannot serve
)

// breakerConfig is shared by every breaker of a store.
type breakerConfig struct {
	failures int64
	cooldown int64                                       // ns
	notify   func(endpoint string, open bool, err error) // Options.OnBreaker; may be nil
	now      func() int64                                // ns; tests replace it
}

// breaker is the circuit breaker of one Redis endpoint.
//
// The fast path (closed, success) is one atomic load at admission and one
// at the end, with no allocation and no clock read. Every change of state
// but open -> probing (a compare-and-swap, since the cool-down is fixed for
// the generation) happens under mu, which also holds the notification, so
// that OnBreaker sees opens and closes in the order they happened.
type breaker struct {
	endpoint string
	cfg      *breakerConfig
	openErr  error         // ErrBreakerOpen naming the endpoint, built once
	word     atomic.Uint64 // generation | state
	fails    atomic.Int64  // consecutive failures while closed
	until    atomic.Int64  // while open: when a probe may go (cfg.now), set before the state
	mu       sync.Mutex    // serializes the changes of state other than open -> probing, and their notifications
}

func newBreaker(endpoint string, cfg *breakerConfig) *breaker {
	return &breaker{endpoint: endpoint, cfg: cfg, openErr: &openError{endpoint: endpoint}}
}

// openError is the error of a refused call.
type openError struct{ endpoint string }

func (e *openError) Error() string { return ErrBreakerOpen.Error() + " for " + e.endpoint }
func (e *openError) Unwrap() error { return ErrBreakerOpen }

// admit lets a call through and returns its ticket, to be handed to done;
// or refuses it with an error wrapping ErrBreakerOpen. After the cool-down,
// the first caller becomes the probe.
func (b *breaker) admit() (uint64, error) {
	w := b.word.Load()
	switch w & stateMask {
	case stateClosed:
		return w, nil
	case stateOpen:
		if b.cfg.now() >= b.until.Load() {
			p := next(w, stateProbing)
			if b.word.CompareAndSwap(w, p) {
				return p, nil
			}
		}
	}
	return 0, b.openErr
}

// done records the outcome of the call admitted with ticket; err is the
// call's error, handed to OnBreaker when the breaker opens.
func (b *breaker) done(ticket uint64, o outcome, err error) {
	probe := ticket&stateMask == stateProbing
	switch o {
	case success:
		if !probe {
			if b.fails.Load() != 0 {
				b.fails.Store(0)
			}
			return
		}
		b.change(ticket, stateClosed, nil)
	case failure:
		if !probe {
			if b.word.Load() != ticket {
				return // admitted before a change: stale
			}
			if b.fails.Add(1) < b.cfg.failures {
				return
			}
		}
		b.change(ticket, stateOpen, err)
	default:
		if probe { // no verdict: the next call probes at once
			b.word.CompareAndSwap(ticket, next(ticket, stateOpen))
		}
	}
}

// change moves the breaker from the word from to state to, unless another
// change came first. It calls OnBreaker when the breaker opens from closed
// (not when a failed probe opens it again) and when it closes.
func (b *breaker) change(from, to uint64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.word.Load() != from {
		return
	}
	if to == stateOpen {
		b.until.Store(b.cfg.now() + b.cfg.cooldown)
	}
	b.fails.Store(0)
	if !b.word.CompareAndSwap(from, next(from, to)) {
		return
	}
	if n := b.cfg.notify; n != nil && (from&stateMask == stateClosed || to == stateClosed) {
		n(b.endpoint, to == stateOpen, err)
	}
}

// isOpen reports whether the breaker refuses calls now (open and cooling
// down, or probing).
func (b *breaker) isOpen() bool {
	w := b.word.Load()
	switch w & stateMask {
	case stateOpen:
		return b.cfg.now() < b.until.Load()
	case stateProbing:
		return true
	}
	return false
}

// BreakersOpen returns how many of the store's endpoints have a breaker
// that refuses calls now: open and still cooling down, or probing. A
// breaker whose cool-down ended counts as closed until a call probes it,
// so that an endpoint no call goes to any more (a cluster master replaced
// by a failover) stops counting one cool-down after it opened. It is 0
// with the breakers off.
func (s *Store) BreakersOpen() int {
	if s.brk == nil {
		return 0
	}
	bs := s.brk
	if bs.one != nil {
		return openCount(bs.one)
	}
	n := openCount(bs.fallback)
	for _, b := range *bs.byAddr.Load() {
		n += openCount(b)
	}
	return n
}

func openCount(b *breaker) int {
	if b.isOpen() {
		return 1
	}
	return 0
}

// classify tells what err, the error of a call made under ctx, says about
// the endpoint. ctx is the caller's context or one derived from it by
// Store.ctx.
//
// Success: no error, redis.Nil, ErrNotReplicated (the master answered; its
// replicas lag), and every reply error but the ones below
// (NOSCRIPT, WRONGTYPE, a syntax error...): the server answered.
// Neutral: the caller's ctx ended (cancelled, or its own deadline passed
// before the store's), and a closed client.
// Failure: everything else: network errors, timeouts, the store's own
// deadline, a pool timeout, and the replies of a server that cannot serve
// (LOADING, BUSY, MASTERDOWN, CLUSTERDOWN, max clients).
// Several errors joined (the masters of one write) classify as the worst
// of them.
func classify(ctx context.Context, err error) outcome {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		o := neutral
		for _, e := range j.Unwrap() {
			switch classify(ctx, e) {
			case failure:
				return failure
			case success:
				o = success
			}
		}
		return o
	}
	if err == nil || err == redis.Nil || errors.Is(err, ErrNotReplicated) {
		return success // a WAIT that counted too few replicas: the master answered
	}
	if dl, ok := ctx.Deadline(); ok && ctx.Err() == nil && ctx.Done() != nil && !time.Now().Before(dl) {
		<-ctx.Done() // the socket's deadline can fire just before ctx's timer: wait for it, to know whose it was
	}
	if ctx.Err() != nil && context.Cause(ctx) != errStoreTimeout {
		return neutral
	}
	if errors.Is(err, redis.ErrClosed) {
		return neutral
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		if unavailable(rerr.Error()) {
			return failure
		}
		return success
	}
	return failure
}

// unavailable reports whether a reply error says that the server cannot
// serve at all for now.
func unavailable(msg string) bool {
	for _, p := range unavailablePrefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

var unavailablePrefixes = [...]string{
	"LOADING ", "BUSY ", "MASTERDOWN ", "CLUSTERDOWN ", "ERR max number of clients reached",
}

// breakers are the circuit breakers of a store, one per endpoint:
//
//   - a *redis.Client (a failover client included) is one endpoint;
//   - a *redis.ClusterClient has one endpoint per master address: a
//     single-key call is guarded by the breaker of the master that
//     MasterForKey names for the key (calls whose master cannot be told,
//     because the cluster state cannot be loaded, by one cluster-wide
//     breaker); a pipeline over keys of several masters needs every one of
//     their breakers to admit it (else it fails whole, touching no master)
//     and each master is charged with the outcome of its own keys'
//     commands only; a scan runs on each master under that master's
//     breaker;
//   - any other client (a Ring, a wrapper) is one endpoint, its type.
//
// A cluster's breakers are created as masters are first seen and never
// removed (one small struct per address ever used).
type breakers struct {
	cfg      breakerConfig
	one      *breaker // the only endpoint; nil for a cluster
	cluster  *redis.ClusterClient
	fallback *breaker // cluster calls whose master cannot be told

	mu     sync.Mutex                          // serializes additions to byAddr
	byAddr atomic.Pointer[map[string]*breaker] // cluster masters; copied on write
}

func newBreakers(rdb redis.UniversalClient, cfg breakerConfig) *breakers {
	bs := &breakers{cfg: cfg}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		bs.cluster = c
		bs.fallback = newBreaker("cluster", &bs.cfg)
		m := make(map[string]*breaker)
		bs.byAddr.Store(&m)
	case *redis.Client:
		bs.one = newBreaker(c.Options().Addr, &bs.cfg)
	default:
		bs.one = newBreaker(typeName(rdb), &bs.cfg)
	}
	return bs
}

// forAddr returns the breaker of the master at addr, creating it.
func (bs *breakers) forAddr(addr string) *breaker {
	if b := (*bs.byAddr.Load())[addr]; b != nil {
		return b
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	old := *bs.byAddr.Load()
	if b := old[addr]; b != nil {
		return b
	}
	m := make(map[string]*breaker, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	b := newBreaker(addr, &bs.cfg)
	m[addr] = b
	bs.byAddr.Store(&m)
	return b
}

// forKey returns the breaker of the endpoint that holds the Redis key rkey.
func (bs *breakers) forKey(ctx context.Context, rkey string) *breaker {
	if bs.one != nil {
		return bs.one
	}
	m, err := bs.cluster.MasterForKey(ctx, rkey)
	if err != nil {
		return bs.fallback
	}
	return bs.forAddr(m.Options().Addr)
}

// forClient returns the breaker of c, one node's client (a master that a
// scan runs on).
func (bs *breakers) forClient(c *redis.Client) *breaker {
	if bs.one != nil {
		return bs.one
	}
	return bs.forAddr(c.Options().Addr)
}

// typeName names the one endpoint of a client that is neither a Client nor
// a ClusterClient: its type.
func typeName(rdb redis.UniversalClient) string { return fmt.Sprintf("%T", rdb) }

// guard is what a call admitted by the breakers carries to its end.
type guard struct {
	b      *breaker // the single endpoint; nil with the breakers off or several endpoints
	ticket uint64
	multi  *multiGuard
}

// multiGuard is the admission of a pipeline over several endpoints.
type multiGuard struct {
	bs      []*breaker
	tickets []uint64
	of      []int // of[i] is the index in bs of key i's endpoint
}

// enter admits a call on the Redis key rkey through the store's client.
func (s *Store) enter(ctx context.Context, rkey string) (guard, error) {
	if s.brk == nil {
		return guard{}, nil
	}
	return admitOne(s.brk.forKey(ctx, rkey))
}

// enterOn admits a pipeline over keys (local keys) through c: the store's
// client, or one node's client (a master that a scan runs on).
func (s *Store) enterOn(ctx context.Context, c redis.Cmdable, keys []string) (guard, error) {
	if s.brk == nil {
		return guard{}, nil
	}
	if s.brk.one != nil {
		return admitOne(s.brk.one)
	}
	if n, ok := c.(*redis.Client); ok {
		return admitOne(s.brk.forClient(n))
	}
	return s.enterMany(ctx, keys)
}

func admitOne(b *breaker) (guard, error) {
	t, err := b.admit()
	if err != nil {
		return guard{}, err
	}
	return guard{b: b, ticket: t}, nil
}

// enterMany admits a pipeline over keys of a cluster: every master involved
// must admit it. A refusal releases the admissions taken (a probe taken is
// given back, so the next call probes).
func (s *Store) enterMany(ctx context.Context, keys []string) (guard, error) {
	m := &multiGuard{of: make([]int, len(keys))}
	for i, k := range keys {
		b := s.brk.forKey(ctx, s.prefix+k)
		j := 0
		for j < len(m.bs) && m.bs[j] != b {
			j++
		}
		if j == len(m.bs) {
			t, err := b.admit()
			if err != nil {
				for x, ab := range m.bs {
					ab.done(m.tickets[x], neutral, nil)
				}
				return guard{}, err
			}
			m.bs = append(m.bs, b)
			m.tickets = append(m.tickets, t)
		}
		m.of[i] = j
	}
	if len(m.bs) == 1 {
		return guard{b: m.bs[0], ticket: m.tickets[0]}, nil
	}
	return guard{multi: m}, nil
}

// exit records the outcome of a single call whose error is err.
func (g guard) exit(ctx context.Context, err error) {
	if g.b != nil {
		g.b.done(g.ticket, classify(ctx, err), err)
		return
	}
	if g.multi != nil {
		o := classify(ctx, err)
		for i, b := range g.multi.bs {
			b.done(g.multi.tickets[i], o, err)
		}
	}
}

// exitEach records the outcome of a pipeline of n commands, one per key:
// keyErr(i) is the error of key i's command (the pipeline's own error when
// it did not run), err the pipeline's own error. Each endpoint gets
// the worst outcome of its keys (failure, then success, then neutral); a
// failure of err that no key shows (a step outside the pipeline) is charged
// to every endpoint involved.
func (g guard) exitEach(ctx context.Context, err error, n int, keyErr func(i int) error) {
	if g.b == nil && g.multi == nil {
		return
	}
	whole := classify(ctx, err)
	if g.b != nil {
		o, e := worst(ctx, 0, n, nil, keyErr)
		if o != failure && whole == failure {
			o, e = failure, err
		}
		if o == neutral && whole == success {
			o = success
		}
		g.b.done(g.ticket, o, e)
		return
	}
	m := g.multi
	charged := false
	outs := make([]outcome, len(m.bs))
	errs := make([]error, len(m.bs))
	for j := range m.bs {
		outs[j], errs[j] = worst(ctx, j, n, m.of, keyErr)
		charged = charged || outs[j] == failure
	}
	for j, b := range m.bs {
		o, e := outs[j], errs[j]
		if whole == failure && !charged {
			o, e = failure, err
		}
		b.done(m.tickets[j], o, e)
	}
}

// worst returns the worst outcome, and its error, of the keys i < n whose
// endpoint is j (every key when of is nil).
func worst(ctx context.Context, j, n int, of []int, keyErr func(i int) error) (outcome, error) {
	o := neutral
	var oe error
	for i := 0; i < n; i++ {
		if of != nil && of[i] != j {
			continue
		}
		e := keyErr(i)
		switch classify(ctx, e) {
		case failure:
			return failure, e
		case success:
			o, oe = success, nil
		}
	}
	return o, oe
}

// setBreakers validates the breaker fields of o and, unless they are
// disabled, gives s its breakers.
func (s *Store) setBreakers(o Options) error {
	if o.BreakerFailures < 0 {
		return fmt.Errorf("remote: negative BreakerFailures %d", o.BreakerFailures)
	}
	if o.BreakerCooldown < 0 {
		return fmt.Errorf("remote: negative BreakerCooldown %v", o.BreakerCooldown)
	}
	if o.DisableBreaker {
		return nil
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = DefaultBreakerFailures
	}
	if o.BreakerCooldown == 0 {
		o.BreakerCooldown = DefaultBreakerCooldown
	}
	start := time.Now()
	s.brk = newBreakers(s.rdb, breakerConfig{
		failures: int64(o.BreakerFailures),
		cooldown: int64(o.BreakerCooldown),
		notify:   o.OnBreaker,
		now:      func() int64 { return int64(time.Since(start)) }, // monotonic
	})
	return nil
}

// cmdErr is the error of command i of cmds, or err, the pipeline's, when
// the pipeline did not run (cmds or cmds[i] nil).
func cmdErr(cmds []*redis.Cmd, i int, err error) error {
	if i < len(cmds) && cmds[i] != nil {
		return cmds[i].Err()
	}
	return err
}
