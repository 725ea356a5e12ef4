package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tiercache/tiercache/tiered"
)

func init() {
	failSafeCases["WarmWaitsPastSoftTimeout"] = failSafeWarmWaitsPastSoftTimeout
}

// failSafeWarmWaitsPastSoftTimeout: Group.Warm of expired ids in a group
// with LoadSoftTimeout waits for its loader, past the soft timeout: it
// exists to load, so it returns the load's outcome (here id a failed, id b
// loaded), never the fallbacks, and never while its loader still runs
// (which raced with the loader's per-id failures).
func failSafeWarmWaitsPastSoftTimeout(t *testing.T, rdb redis.UniversalClient) {
	r := newSoftRig(t, rdb, tiered.GroupOptions{})
	r.cached("wa")
	r.cached("wb")
	entered, release, done, errA := gatedWarm(r.groups[1])
	<-entered
	r.fire <- time.Now()
	// A soft timeout would serve the fallbacks now and end Warm before its
	// loader returns: Warm's result below would then lack wa's failure.
	close(release)
	err := within(t, done, "Warm")
	var we *tiered.WarmError
	if !errors.As(err, &we) || fmt.Sprint(we.Failed) != "[wa]" || !errors.Is(err, errA) {
		t.Fatalf("Warm = %v; want a WarmError naming wa, with its loader's error", err)
	}
	r.caches[1].WaitL1()
	if v, ok := r.groups[1].Peek("wb"); !ok || v != "v2" {
		t.Fatalf("Peek(wb) after Warm = %q, %v; want the loaded v2", v, ok)
	}
}

// gatedWarm starts a Warm of wa and wb on g whose loader signals entered,
// waits for release to be closed, then fails wa with errA and loads wb as
// v2; done receives Warm's result.
func gatedWarm(g *tiered.Group[string]) (entered, release chan struct{}, done chan error, errA error) {
	entered, release = make(chan struct{}, 2), make(chan struct{})
	errA = errors.New("wa failed")
	done = make(chan error, 1)
	go func() {
		done <- g.Warm(context.Background(), []string{"wa", "wb"}, tiered.WarmOptions[string]{
			Load: func(_ context.Context, id string) (string, error) {
				entered <- struct{}{}
				<-release
				if id == "wa" {
					return "", errA
				}
				return "v2", nil
			},
		})
	}()
	return entered, release, done, errA
}
