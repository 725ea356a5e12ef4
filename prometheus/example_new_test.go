package prometheus_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	tcprom "github.com/tiercache/tiercache/prometheus"
	"github.com/tiercache/tiercache/tiered"
)

// New checks its options at once: ConstLabels tell two caches of one
// process apart, and buckets must be strictly increasing.
func ExampleNew() {
	col, err := tcprom.New(tcprom.Options{
		ConstLabels: prometheus.Labels{"cache": "sessions"},
		LoadBuckets: []float64{.001, .01, .1, 1},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, _ := tiered.New(tiered.Options{Recorder: col})
	defer c.Close()
	col.Attach(c)
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)

	sessions, _ := tiered.NewGroup[string](c, "session", tiered.GroupOptions{})
	_, _ = sessions.Fetch(context.Background(), "s1", func(context.Context, string) (string, error) { return "alice", nil })
	families, _ := reg.Gather()
	for _, f := range families {
		switch f.GetName() {
		case "tiercache_loads_total":
			m := f.GetMetric()[0]
			for _, l := range m.GetLabel() {
				fmt.Printf("%s=%s ", l.GetName(), l.GetValue())
			}
			fmt.Println(f.GetName(), m.GetCounter().GetValue())
		case "tiercache_load_duration_seconds":
			fmt.Println(f.GetName(), "buckets:", len(f.GetMetric()[0].GetHistogram().GetBucket()))
		}
	}

	_, err = tcprom.New(tcprom.Options{ConstLabels: prometheus.Labels{"group": "x"}})
	fmt.Println(err)
	_, err = tcprom.New(tcprom.Options{LagBuckets: []float64{1, 0.5}})
	fmt.Println(err)
	// Output:
	// tiercache_load_duration_seconds buckets: 4
	// cache=sessions group=session tiercache_loads_total 1
	// prometheus: const label "group" is reserved
	// prometheus: buckets [1 0.5] are not strictly increasing
}
