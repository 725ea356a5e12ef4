package otel

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// groupAttrs are the attribute sets of one group's data points, the
// Metrics' own attributes included, built once at the group's first use.
// They are slices so that passing them on (h.Record(ctx, v, a.record...))
// allocates nothing.
type groupAttrs struct {
	record  []metric.RecordOption  // {attrs..., group}
	observe []metric.ObserveOption // the same set
	l1, l2  []metric.ObserveOption // {attrs..., group, tier}
}

func newGroupAttrs(base []attribute.KeyValue, group string) *groupAttrs {
	set := func(kv ...attribute.KeyValue) metric.MeasurementOption {
		all := append(append([]attribute.KeyValue{attribute.String("group", group)}, base...), kv...)
		return metric.WithAttributeSet(attribute.NewSet(all...))
	}
	g := set()
	return &groupAttrs{
		record:  []metric.RecordOption{g},
		observe: []metric.ObserveOption{g},
		l1:      []metric.ObserveOption{set(attribute.String("tier", "l1"))},
		l2:      []metric.ObserveOption{set(attribute.String("tier", "l2"))},
	}
}

// groupAttrs returns the attribute sets of group, built once.
func (m *Metrics) groupAttrs(group string) *groupAttrs {
	if a, ok := m.groups.Load(group); ok {
		return a.(*groupAttrs)
	}
	a, _ := m.groups.LoadOrStore(group, newGroupAttrs(m.attrs, group))
	return a.(*groupAttrs)
}
