package otel_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	tcotel "github.com/tiercache/tiercache/otel"
	"github.com/tiercache/tiercache/tiered"
)

// BenchmarkL1Hit measures an L1 hit through Group.Fetch without a
// Recorder and with Metrics as the Recorder, in the same run: recording
// must add nothing measurable to a hit.
func BenchmarkL1Hit(b *testing.B) {
	b.Run("tiered", func(b *testing.B) { benchL1Hit(b, nil) })
	b.Run("tiered-otel", func(b *testing.B) {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		defer mp.Shutdown(context.Background())
		m, err := tcotel.NewMetrics(mp)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		benchL1Hit(b, m)
	})
}

func benchL1Hit(b *testing.B, rec tiered.Recorder) {
	const keys = 1024
	o := tiered.Options{}
	if rec != nil {
		o.Recorder = rec
	}
	c, err := tiered.New(o)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	g, err := tiered.NewGroup[string](c, "user_profile", tiered.GroupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, keys)
	ctx := context.Background()
	for i := range ids {
		ids[i] = fmt.Sprint(i)
		if _, err := g.Fetch(ctx, ids[i], loadProfile); err != nil {
			b.Fatal(err)
		}
	}
	c.WaitL1()
	b.ReportAllocs()
	b.ResetTimer()
	var start atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(start.Add(397))
		for pb.Next() {
			if _, err := g.Fetch(ctx, ids[i%keys], loadProfile); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.StopTimer()
	if s := g.Stats(); s.Loads != keys {
		b.Fatalf("the benchmark loaded: %+v", s)
	}
}

// BenchmarkRecord measures Record of the events that reach a histogram: a
// load of a group (whose attribute set is built once, at its first event)
// and a received invalidation. Neither may allocate.
func BenchmarkRecord(b *testing.B) {
	for _, e := range recordedEvents() {
		b.Run(e.Kind.String(), func(b *testing.B) {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			defer mp.Shutdown(context.Background())
			m, err := tcotel.NewMetrics(mp)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			m.Record(e)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				m.Record(e)
			}
		})
	}
}

// recordedEvents are events that Record writes to a histogram.
func recordedEvents() []tiered.Event {
	return []tiered.Event{
		{Kind: tiered.EventLoad, Group: "user_profile", Duration: 3 * time.Millisecond},
		{Kind: tiered.EventInvalidationReceived, Duration: 400 * time.Microsecond},
	}
}
