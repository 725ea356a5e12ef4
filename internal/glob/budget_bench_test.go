package glob_test

import (
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/glob"
)

// BenchmarkBudget measures how long a work budget of 2<<20 steps (the
// tiered package's per-pattern budget) lasts on patterns that cost
// O(pattern x key): the time per op is the time the budget buys.
func BenchmarkBudget(b *testing.B) {
	key := strings.Repeat("a", 100<<10)
	for name, p := range map[string]string{
		"any":   "*" + strings.Repeat("?", 3000) + "b",
		"class": "*" + strings.Repeat("[a]", 31) + "b",
		"lit":   "*" + strings.Repeat("a?", 16) + "b",
	} {
		m := glob.Compile(p)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				m.MatchSteps(key, 2<<20)
			}
		})
	}
}
