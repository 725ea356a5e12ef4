package glob_test

import (
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/glob"
)

// benchCases are typical invalidation patterns with a key that matches and
// one that does not. path.Match, run on the same inputs, is the baseline:
// compare ratios within one run, not absolute times.
var benchCases = []struct {
	name, pattern string
	keys          []string
}{
	{"literal", "app:user:42:profile", []string{"app:user:42:profile", "app:user:42:profilx"}},
	{"prefix", "app:user:42:*", []string{"app:user:42:profile:settings", "app:user:43:profile:settings"}},
	{"infix", "app:*:42:profile", []string{"app:user:42:profile", "app:user:42:settings"}},
	{"class", "app:user:[0-9][0-9]:*", []string{"app:user:42:profile", "app:user:4x:profile"}},
	{"stars", "app:*:*:profile:*", []string{"app:user:42:profile:settings", "app:user:42:settings:profile"}},
	{"long", "*x*", []string{strings.Repeat("ab", 256) + "x", strings.Repeat("ab", 256)}},
}

func BenchmarkMatch(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				for _, k := range bc.keys {
					glob.Match(bc.pattern, k)
				}
			}
		})
	}
}

func BenchmarkMatcher(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			m := glob.Compile(bc.pattern)
			for b.Loop() {
				for _, k := range bc.keys {
					m.Match(k)
				}
			}
		})
	}
}

// BenchmarkPathMatch is the baseline: the standard library's glob, which has
// different rules but does the same kind of work.
func BenchmarkPathMatch(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				for _, k := range bc.keys {
					_, _ = path.Match(bc.pattern, k)
				}
			}
		})
	}
}

// BenchmarkManyKeys matches one pattern against many keys, the shape of a
// pattern invalidation filtering SCAN results: Match against Compile+Match.
func BenchmarkManyKeys(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("app:user:%d:profile:%d", i%97, i)
	}
	const pattern = "app:user:4[0-9]:*:1*"
	b.Run("Match", func(b *testing.B) {
		for b.Loop() {
			for _, k := range keys {
				glob.Match(pattern, k)
			}
		}
	})
	b.Run("Compile", func(b *testing.B) {
		for b.Loop() {
			m := glob.Compile(pattern)
			for _, k := range keys {
				m.Match(k)
			}
		}
	})
}

func BenchmarkCompile(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				glob.Compile(bc.pattern)
			}
		})
	}
}
