package prometheus_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	tcprom "github.com/tiercache/tiercache/prometheus"
	"github.com/tiercache/tiercache/tiered"
)

func loadProfile(_ context.Context, id string) (string, error) { return "profile " + id, nil }

// A Collector is the cache's Recorder, attached to the cache once it
// exists, and registered with a registry served on /metrics.
func Example() {
	col, err := tcprom.New(tcprom.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := tiered.New(tiered.Options{Recorder: col}) // add Redis: your client
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	col.Attach(c)
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	profiles, _ := tiered.NewGroup[string](c, "user_profile", tiered.GroupOptions{})
	ctx := context.Background()
	profiles.Fetch(ctx, "42", loadProfile) // a miss: loaded
	c.WaitL1()
	profiles.Fetch(ctx, "42", loadProfile) // an L1 hit

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		l := lines.Text()
		for _, p := range []string{`tiercache_hits_total{group="user_profile",tier="l1"}`, "tiercache_loads_total", "tiercache_l1_entries"} {
			if strings.HasPrefix(l, p) {
				fmt.Println(l)
			}
		}
	}
	// Output:
	// tiercache_hits_total{group="user_profile",tier="l1"} 1
	// tiercache_l1_entries 1
	// tiercache_loads_total{group="user_profile"} 1
}
