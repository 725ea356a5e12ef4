package otel

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
)

// Option configures [NewMetrics].
type Option interface{ apply(*config) }

// config is what the options of NewMetrics set.
type config struct {
	attrs []attribute.KeyValue // added to every data point
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithAttributes adds kv to every data point the [Metrics] reports:
// counters, gauges and histograms alike. Use it to tell apart caches whose
// Metrics share a MeterProvider (say attribute.String("cache",
// "sessions")), whose series would otherwise merge. The keys group and
// tier are the Metrics' own: [NewMetrics] refuses them, and an empty key,
// with an error. Several WithAttributes add up; of two attributes with one
// key, the last wins. kv is copied. Default: none.
func WithAttributes(kv ...attribute.KeyValue) Option {
	kv = append([]attribute.KeyValue(nil), kv...)
	return optionFunc(func(c *config) { c.attrs = append(c.attrs, kv...) })
}

// newConfig applies opts and checks the result.
func newConfig(opts []Option) (config, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	for _, kv := range c.attrs {
		switch {
		case kv.Key == "group" || kv.Key == "tier":
			return config{}, fmt.Errorf("otel: attribute %q is reserved", kv.Key)
		case !kv.Valid():
			return config{}, errors.New("otel: an attribute has an empty key")
		}
	}
	return c, nil
}
