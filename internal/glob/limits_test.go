package glob_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/glob"
)

func TestMatchStepsAgreesAndStops(t *testing.T) {
	for _, c := range []struct{ p, s string }{
		{"user:*", "user:42"}, {"*a?b*", "xxaybzz"}, {"[a-c]*x", "bqqqx"}, {"h?llo", "hallo"}, {"*", ""}, {"a*b", "acd"},
	} {
		m := glob.Compile(c.p)
		got, used, done := m.MatchSteps(c.s, 1<<40)
		if want := glob.Match(c.p, c.s); !done || got != want || used <= 0 {
			t.Errorf("MatchSteps(%q, %q) = %v, %d, %v; want %v, >0, true", c.p, c.s, got, used, done, want)
		}
	}
	// The pathological pattern of issue 17: O(pattern x key) per key.
	p := "*" + strings.Repeat("?", 3000) + "b"
	key := strings.Repeat("a", 100<<10)
	got, used, done := glob.Compile(p).MatchSteps(key, 1<<20)
	if done || got || used != 1<<20+1 {
		t.Errorf("MatchSteps(pathological) = %v, %d, %v; want false, %d, false", got, used, done, 1<<20+1)
	}
}

func TestCheckLimits(t *testing.T) {
	for _, p := range []string{"", "*", "user:*:x", strings.Repeat("a", glob.MaxPatternBytes), strings.Repeat("?", glob.MaxWildcards), strings.Repeat(`\*`, 100)} {
		if err := glob.Check(p); err != nil {
			t.Errorf("Check(%.40q) = %v; want nil", p, err)
		}
	}
	for _, p := range []string{strings.Repeat("a", glob.MaxPatternBytes+1), strings.Repeat("?", glob.MaxWildcards+1), strings.Repeat("[a]", glob.MaxWildcards+1), strings.Repeat("*a", glob.MaxWildcards+1)} {
		if err := glob.Check(p); !errors.Is(err, glob.ErrLimit) {
			t.Errorf("Check(%.40q) = %v; want ErrLimit", p, err)
		}
	}
}
