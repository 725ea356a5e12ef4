package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"sync"
	"time"
)

// scenario is a named workload with its defaults.
type scenario struct {
	name string
	// about says what the scenario does, with the run's parameters.
	about func(c *config) string
	// keys is the size of the scenario's key space.
	keys func(c *config) int
	// ttl is the TTL the caches write with.
	ttl func(c *config) time.Duration
	// warmPhases is how many warm-up steps every host runs, in order,
	// each finished everywhere before the next starts.
	warmPhases int
	warm       func(ctx context.Context, h *host, phase int) error
	// length is how long run takes (for progress; stampede ends earlier).
	length func(c *config) time.Duration
	run    func(ctx context.Context, h *host, start time.Time) error
	// ideal is the fewest loader calls a perfect fleet would make.
	ideal func(c *config, t *truth) uint64
	// prepare, if set, runs in the parent before run, with run's start.
	prepare func(c *config, t *truth, start time.Time)
}

func scenarios() []*scenario {
	return []*scenario{zipfScenario(), stampedeScenario(), expiryScenario(), invalidateScenario(), outageScenario()}
}

func findScenario(name string) *scenario {
	for _, s := range scenarios() {
		if s.name == name {
			return s
		}
	}
	return nil
}

func fixedTTL(c *config) time.Duration { return c.ttl }

// distinctIdeal: each version of each key needs one load, once, fleet-wide.
func distinctIdeal(c *config, t *truth) uint64 { return t.distinct() }

func zipfScenario() *scenario {
	return &scenario{
		name: "zipf",
		about: func(c *config) string {
			return fmt.Sprintf("%d workers per node read %d keys (Zipf %.2f); %.1f%% of operations write (%.0f%% of writes change a group of %d keys, invalidated by pattern)",
				c.workers, c.keys, c.skew, 100*c.writes, 100*c.patterns, groupSize)
		},
		keys:       func(c *config) int { return c.keys },
		ttl:        fixedTTL,
		warmPhases: 1,
		warm: func(ctx context.Context, h *host, phase int) error {
			return warmMixed(ctx, h, h.cfg.keys)
		},
		length: func(c *config) time.Duration { return c.duration },
		run: func(ctx context.Context, h *host, start time.Time) error {
			return mixed(ctx, h, start, h.cfg.keys, h.cfg.writes, h.cfg.duration)
		},
		ideal: distinctIdeal,
	}
}

func invalidateScenario() *scenario {
	return &scenario{
		name: "invalidate",
		about: func(c *config) string {
			return fmt.Sprintf("%d workers per node over %d keys (Zipf %.2f); %.0f%% of operations write, so invalidations cross the fleet all the time",
				c.workers, c.invalidateKeys, c.skew, 100*c.invalidateWrites)
		},
		keys:       func(c *config) int { return c.invalidateKeys },
		ttl:        fixedTTL,
		warmPhases: 1,
		warm: func(ctx context.Context, h *host, phase int) error {
			return warmMixed(ctx, h, h.cfg.invalidateKeys)
		},
		length: func(c *config) time.Duration { return c.duration },
		run: func(ctx context.Context, h *host, start time.Time) error {
			return mixed(ctx, h, start, h.cfg.invalidateKeys, h.cfg.invalidateWrites, h.cfg.duration)
		},
		ideal: distinctIdeal,
	}
}

// outageScenario: read-only Zipf traffic during which the source of truth
// works for a phase, fails every load for a phase, answers ten times
// slower for a phase, and works again for a phase. Values live one phase,
// so that most of those cached before the outage expire during it.
func outageScenario() *scenario {
	return &scenario{
		name: "outage",
		about: func(c *config) string {
			return fmt.Sprintf("%d workers per node read %d keys (Zipf %.2f) with a TTL of %v; the source of truth works for %v, fails every load for %v, answers %dx slower for %v, then works again for %v (phases by the time a load starts)",
				c.workers, c.outageKeys, c.skew, c.outagePhase, c.outagePhase, c.outagePhase, slowFactor, c.outagePhase, c.outagePhase)
		},
		keys:       func(c *config) int { return c.outageKeys },
		ttl:        func(c *config) time.Duration { return c.outagePhase },
		warmPhases: 1,
		warm: func(ctx context.Context, h *host, phase int) error {
			return warmMixed(ctx, h, h.cfg.outageKeys)
		},
		length: outageLength,
		run: func(ctx context.Context, h *host, start time.Time) error {
			return mixed(ctx, h, start, h.cfg.outageKeys, 0, outageLength(h.cfg))
		},
		ideal: distinctIdeal,
		prepare: func(c *config, t *truth, start time.Time) {
			t.setOutage(t.rel(start), c.outagePhase)
		},
	}
}

func outageLength(c *config) time.Duration { return phases * c.outagePhase }

// warmMixed reads the scenario's keys, Zipf-distributed, for a third of
// the run time without measuring: the run then starts from warm caches, as
// a service in production does.
func warmMixed(ctx context.Context, h *host, keys int) error {
	err := mixed(ctx, h, time.Now(), keys, 0, h.cfg.duration/3)
	for _, hn := range h.nodes {
		hn.mu.Lock()
		errs, first := hn.acc.Errors, hn.acc.FirstError
		hn.acc = partial{Errors: errs, FirstError: first}
		hn.mu.Unlock()
		hn.log.checked.Store(0)
	}
	return err
}

// mixed runs cfg.workers goroutines per node over keys Zipf-distributed
// keys, a share writes of whose operations write, from start for d.
func mixed(ctx context.Context, h *host, start time.Time, keys int, writes float64, d time.Duration) error {
	if err := sleepUntil(ctx, start); err != nil {
		return err
	}
	ctx, cancel := context.WithDeadline(ctx, start.Add(d))
	defer cancel()
	var wg sync.WaitGroup
	for _, hn := range h.nodes {
		for i := range h.cfg.workers {
			wg.Add(1)
			go func(seed int64) {
				defer wg.Done()
				w := &worker{hn: hn}
				defer w.done()
				r := rand.New(rand.NewSource(seed))
				z := rand.NewZipf(r, h.cfg.skew, 1, uint64(keys-1))
				for ctx.Err() == nil {
					k := int(z.Uint64())
					if writes > 0 && r.Float64() < writes {
						if r.Float64() < h.cfg.patterns {
							g := k / groupSize
							w.write(ctx, groupKeys(g, keys), g)
						} else {
							w.write(ctx, []int{k}, -1)
						}
						continue
					}
					w.read(ctx, k)
				}
			}(int64(hn.ne.idx*1000 + i))
		}
	}
	wg.Wait()
	setElapsed(h, d)
	return nil
}

// setElapsed records how long the run lasted on every node.
func setElapsed(h *host, d time.Duration) {
	for _, hn := range h.nodes {
		hn.mu.Lock()
		hn.acc.Elapsed = d
		hn.mu.Unlock()
	}
}

func stampedeScenario() *scenario {
	return &scenario{
		name: "stampede",
		about: func(c *config) string {
			return fmt.Sprintf("%d rounds: a cold key read by %d goroutines on every node at once (%d readers)",
				c.stampedeRounds, c.stampedeGoroutines, c.stampedeGoroutines*c.nodes)
		},
		keys:   func(c *config) int { return max(c.stampedeRounds, groupSize) },
		ttl:    fixedTTL,
		length: func(c *config) time.Duration { return time.Duration(c.stampedeRounds) * stampedeGap },
		run:    stampede,
		ideal:  func(c *config, t *truth) uint64 { return uint64(c.stampedeRounds) },
	}
}

// stampedeGap is the time between rounds: every host fires round r at
// start + r*stampedeGap (or when its previous round ends, if later).
const stampedeGap = 250 * time.Millisecond

func stampede(ctx context.Context, h *host, start time.Time) error {
	var elapsed time.Duration
	for r := range h.cfg.stampedeRounds {
		at := start.Add(time.Duration(r) * stampedeGap)
		var wg, ready sync.WaitGroup
		fire := make(chan struct{})
		for _, hn := range h.nodes {
			for range h.cfg.stampedeGoroutines {
				wg.Add(1)
				ready.Add(1)
				go func() {
					defer wg.Done()
					w := &worker{hn: hn}
					defer w.done()
					ready.Done()
					<-fire
					w.read(ctx, r)
				}()
			}
		}
		ready.Wait()
		if err := sleepUntil(ctx, at); err != nil {
			close(fire)
			wg.Wait()
			return err
		}
		t0 := time.Now()
		close(fire)
		wg.Wait()
		elapsed += time.Since(t0)
	}
	setElapsed(h, elapsed)
	return nil
}

func expiryScenario() *scenario {
	return &scenario{
		name: "expiry",
		about: func(c *config) string {
			return fmt.Sprintf("%d keys warmed together with a TTL of %v, then read uniformly by %d workers per node for %v",
				c.expiryKeys, c.expiryTTL, c.workers, expiryLength(c))
		},
		keys:       func(c *config) int { return c.expiryKeys },
		ttl:        func(c *config) time.Duration { return c.expiryTTL },
		warmPhases: 2,
		warm:       expiryWarm,
		length:     expiryLength,
		run: func(ctx context.Context, h *host, start time.Time) error {
			return uniformReads(ctx, h, start, h.cfg.expiryKeys, expiryLength(h.cfg))
		},
		ideal: func(c *config, t *truth) uint64 {
			return uint64(c.expiryKeys) * uint64(1+expiryLength(c)/c.expiryTTL)
		},
	}
}

func expiryLength(c *config) time.Duration { return 2*c.expiryTTL + c.expiryTTL/4 }

// expiryWarm: phase 0, node 0 loads every key at once (they are written to
// Redis together); phase 1, every node reads every key (its L1 fills).
func expiryWarm(ctx context.Context, h *host, phase int) error {
	for _, hn := range h.nodes {
		if phase == 0 && hn.ne.idx != 0 {
			continue
		}
		keys := make(chan int)
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range keys {
					if _, err := hn.node.get(ctx, k); err != nil {
						hn.mu.Lock()
						hn.acc.Errors++
						if hn.acc.FirstError == "" {
							hn.acc.FirstError = "warm-up: " + err.Error()
						}
						hn.mu.Unlock()
					}
				}
			}()
		}
		for k := range h.cfg.expiryKeys {
			keys <- k
		}
		close(keys)
		wg.Wait()
	}
	return ctx.Err()
}

// uniformReads reads keys uniformly at random from start for d.
func uniformReads(ctx context.Context, h *host, start time.Time, keys int, d time.Duration) error {
	if err := sleepUntil(ctx, start); err != nil {
		return err
	}
	ctx, cancel := context.WithDeadline(ctx, start.Add(d))
	defer cancel()
	var wg sync.WaitGroup
	for _, hn := range h.nodes {
		for i := range h.cfg.workers {
			wg.Add(1)
			go func(seed int64) {
				defer wg.Done()
				w := &worker{hn: hn}
				defer w.done()
				r := rand.New(rand.NewSource(seed))
				for ctx.Err() == nil {
					w.read(ctx, r.Intn(keys))
				}
			}(int64(hn.ne.idx*1000 + i))
		}
	}
	wg.Wait()
	setElapsed(h, d)
	return nil
}

// encodedSize is the JSON size of v: the unit of the byte budget.
func encodedSize(v value) int {
	b, _ := json.Marshal(v)
	return len(b)
}
