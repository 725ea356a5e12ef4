package glob_test

import (
	"testing"

	"github.com/tiercache/tiercache/internal/glob"
)

// refMatch is a line-by-line Go transcription of Redis 7.0's recursive
// stringmatchlen_impl (src/util.c), kept as simple as possible so that it can
// serve as a second oracle next to the server itself. It reads the byte after
// the end of the pattern as NUL, as the C code does with the sds terminator.
func refMatch(pattern, s string) bool {
	if pattern == "*" {
		return true // KEYS and SCAN never call stringmatchlen for "*"
	}
	skip := false
	return refImpl(pattern, s, &skip, 0)
}

func refImpl(p, s string, skip *bool, nesting int) bool {
	at := func(i int) byte { // p[i], or the NUL terminator
		if i < len(p) {
			return p[i]
		}
		return 0
	}
	if nesting > 1000 {
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && at(1) == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if refImpl(p[1:], s, skip, nesting+1) {
					return true
				}
				if *skip {
					return false
				}
				s = s[1:]
			}
			*skip = true
			return false
		case '?':
			s = s[1:]
		case '[':
			var ok bool
			if p, ok = refClass(p[1:], s[0]); !ok {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// refClass matches c against the class body p and returns the pattern from the
// class's last byte on (the C code's pointer before its final pattern++).
func refClass(p string, c byte) (string, bool) {
	whole := p
	not := len(p) > 0 && p[0] == '^'
	if not {
		p = p[1:]
	}
	match := false
	for {
		if len(p) >= 2 && p[0] == '\\' {
			p = p[1:]
			if p[0] == c {
				match = true
			}
		} else if len(p) > 0 && p[0] == ']' {
			break
		} else if len(p) == 0 {
			// pattern--: back to the last byte of the whole pattern, which
			// is whole's last byte, or the '[' itself when whole is empty.
			if len(whole) == 0 {
				return "[", match != not
			}
			p = whole[len(whole)-1:]
			break
		} else if len(p) >= 3 && p[1] == '-' {
			start, end, x := int(int8(p[0])), int(int8(p[2])), int(int8(c))
			if start > end {
				start, end = end, start
			}
			p = p[2:]
			if x >= start && x <= end {
				match = true
			}
		} else if p[0] == c {
			match = true
		}
		p = p[1:]
	}
	return p, match != not
}

func TestReferenceAgreesWithCases(t *testing.T) {
	t.Parallel()
	for _, tc := range matchCases {
		if got := refMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("refMatch(%q, %q) = %v; want %v", short(tc.pattern), short(tc.s), got, tc.want)
		}
	}
}

// FuzzMatchReference compares Match and Matcher.Match with refMatch. It needs
// no server, so it explores much faster than FuzzMatchAgainstRedis.
func FuzzMatchReference(f *testing.F) {
	for _, tc := range matchCases {
		if len(tc.pattern)+len(tc.s) < 200 {
			f.Add(tc.pattern, tc.s)
		}
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		want := refMatch(pattern, s)
		if got := glob.Match(pattern, s); got != want {
			t.Errorf("Match(%q, %q) = %v; want %v", pattern, s, got, want)
		}
		if got := glob.Compile(pattern).Match(s); got != want {
			t.Errorf("Compile(%q).Match(%q) = %v; want %v", pattern, s, got, want)
		}
	})
}
