// Package prometheus exports the metrics of a [tiered.Cache] to Prometheus.
//
// A [Collector] is both the cache's [tiered.Recorder], from which it keeps
// histograms of load latency, lease waits, refreshes and invalidation
// propagation lag, and a prometheus.Collector that, when scraped, reads the
// cache's counters ([tiered.Cache.StatsByGroup]) and the state of its L1
// ([tiered.Cache.L1State]). Counting hits on the hit path would cost every
// hit an atomic add on a shared counter; reading the cache's own striped
// counters at scrape time costs the hit path nothing.
//
//	import tcprom "github.com/tiercache/tiercache/prometheus"
//
//	col, err := tcprom.New(tcprom.Options{})
//	c, err := tiered.New(tiered.Options{Redis: rdb, Recorder: col})
//	col.Attach(c)
//	registry.MustRegister(col) // and serve it with promhttp on /metrics
//
// Every metric is named tiercache_*; the per-group ones carry a group label
// (the group's name; "" for the events of the cache itself). One Collector
// serves one Cache at a time ([Collector.Attach] may replace it): to export
// several caches, give each Collector distinct [Options.ConstLabels].
// docs/metrics.md, in the repository, lists every metric, its type and what
// to alert on.
package prometheus
