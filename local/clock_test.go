package local_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/tiercache/tiercache/local"
)

func TestTickingClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := local.NewTickingClock(0)
		if clk.Resolution() != local.DefaultResolution {
			t.Errorf("Resolution() = %v; want %v", clk.Resolution(), local.DefaultResolution)
		}
		start := time.Now().UnixNano()
		if clk.Now() != start {
			t.Errorf("Now() = %d at start; want %d", clk.Now(), start)
		}
		time.Sleep(10*time.Millisecond + time.Microsecond)
		synctest.Wait()
		if got, want := clk.Now(), start+int64(10*time.Millisecond); got != want {
			t.Errorf("Now() after 10ms = %d; want %d (the last tick)", got, want)
		}
		clk.Stop()
		clk.Stop()
		time.Sleep(10 * time.Millisecond)
		if got := clk.Now(); got != start+int64(10*time.Millisecond) {
			t.Errorf("Now() moved after Stop")
		}
	})
}

// TestOwnedClockExpiry: a cache with its own ticking clock expires entries
// as time passes and stops the clock on Close (synctest fails the test if
// a goroutine of the bubble outlives it).
func TestOwnedClockExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := local.New[string](local.Options{MaxCost: 1000})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		exp := time.Now().Add(5 * time.Millisecond).UnixNano()
		c.Set("k", local.Item[string]{Value: "v", Cost: 1, Expire: exp})
		c.Wait()
		if _, ok := c.Get("k"); !ok {
			t.Fatal("Get before expiry missed")
		}
		time.Sleep(5*time.Millisecond + time.Microsecond)
		synctest.Wait()
		if _, ok := c.Get("k"); ok {
			t.Fatal("Get after expiry hit")
		}
	})
}

func TestManualClock(t *testing.T) {
	var zero local.ManualClock
	if zero.Now() != 0 {
		t.Errorf("zero ManualClock reads %d; want 0", zero.Now())
	}
	clk := local.NewManualClock(t0)
	clk.Add(time.Second)
	if got, want := clk.Now(), t0.Add(time.Second).UnixNano(); got != want {
		t.Errorf("Now() = %d; want %d", got, want)
	}
	clk.Set(t0)
	if got := clk.Now(); got != t0.UnixNano() {
		t.Errorf("Now() after Set = %d; want %d", got, t0.UnixNano())
	}
}
