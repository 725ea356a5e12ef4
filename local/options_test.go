package local

import "testing"

func TestNormalizeDefaults(t *testing.T) {
	for _, tc := range []struct {
		maxCost, wantCounters int64
	}{
		{0, DefaultMaxCost / 256 * 10}, // 64 MiB: 2,621,440
		{1000, minCounters},
		{1 << 62, maxDefaultCounters}, // 10*MaxCost would overflow
	} {
		o, err := Options{MaxCost: tc.maxCost}.normalize()
		if err != nil {
			t.Fatalf("normalize(MaxCost %d): %v", tc.maxCost, err)
		}
		if o.NumCounters != tc.wantCounters || o.BufferItems != DefaultBufferItems {
			t.Errorf("normalize(MaxCost %d) = NumCounters %d, BufferItems %d; want %d, %d",
				tc.maxCost, o.NumCounters, o.BufferItems, tc.wantCounters, DefaultBufferItems)
		}
	}
}
