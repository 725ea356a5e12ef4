package glob

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// A Matcher is a compiled pattern. Its Match gives the same answer as the
// package-level [Match] for the same pattern, and is faster when one pattern is
// matched against many keys: classes become 256-bit sets, runs of literal
// bytes are compared at once, and a '*' followed by literal bytes jumps to
// their next occurrence instead of trying every position.
//
// A Matcher is immutable and safe for concurrent use. The zero value is not
// usable; build one with [Compile].
type Matcher struct {
	pattern string
	all     bool // pattern is exactly "*": KEYS and SCAN match everything
	toks    []token
}

type tokenKind uint8

const (
	tokLiteral tokenKind = iota // lit: these bytes, in order
	tokAny                      // '?': any one byte
	tokClass                    // set: one byte of the set
	tokStar                     // a group of adjacent '*'
)

type token struct {
	kind tokenKind
	lit  string
	set  *byteSet
}

// byteSet is a set of bytes, one bit each.
type byteSet [4]uint64

func (b *byteSet) has(c byte) bool { return b[c>>6]&(1<<(c&63)) != 0 }

func (b *byteSet) add(c byte) { b[c>>6] |= 1 << (c & 63) }

// addRange adds the bytes between x and y (in either order), compared as C's
// signed char like inRange.
func (b *byteSet) addRange(x, y byte) {
	lo, hi := int8(x), int8(y)
	if lo > hi {
		lo, hi = hi, lo
	}
	for c := int(lo); c <= int(hi); c++ {
		b.add(byte(c))
	}
}

// compileClass is matchClass for every byte at once: it parses the class whose
// body starts at p[i] by the same rules and returns the index after it and
// the set of bytes it matches.
func compileClass(p string, i int) (int, *byteSet) {
	var set byteSet
	neg := i < len(p) && p[i] == '^'
	if neg {
		i++
	}
	for ; ; i++ {
		switch {
		case i == len(p):
			return i, set.negated(neg)
		case p[i] == '\\' && i+1 < len(p):
			i++
			set.add(p[i])
		case p[i] == ']':
			return i + 1, set.negated(neg)
		case i+2 < len(p) && p[i+1] == '-':
			set.addRange(p[i], p[i+2])
			i += 2
		default:
			set.add(p[i])
		}
	}
}

// negated returns b, complemented if neg.
func (b byteSet) negated(neg bool) *byteSet {
	if neg {
		for k := range b {
			b[k] = ^b[k]
		}
	}
	return &b
}

// Compile compiles pattern into a [Matcher]. Every byte string is a valid
// pattern, so Compile cannot fail. The Matcher keeps pattern (see
// [Matcher.String]).
func Compile(pattern string) *Matcher {
	m := &Matcher{pattern: pattern, all: pattern == "*"}
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			m.toks = append(m.toks, token{kind: tokLiteral, lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(pattern); {
		switch pattern[i] {
		case '*':
			flush()
			for i < len(pattern) && pattern[i] == '*' {
				i++
			}
			m.toks = append(m.toks, token{kind: tokStar})
		case '?':
			flush()
			m.toks = append(m.toks, token{kind: tokAny})
			i++
		case '[':
			flush()
			var set *byteSet
			i, set = compileClass(pattern, i+1)
			m.toks = append(m.toks, token{kind: tokClass, set: set})
		default:
			next, _ := matchOne(pattern, i, 0)
			lit = append(lit, pattern[next-1]) // the byte itself, unescaped
			i = next
		}
	}
	flush()
	return m
}

// String returns the pattern the Matcher was compiled from.
func (m *Matcher) String() string { return m.pattern }

// Match reports whether s matches the compiled pattern: the same answer as
// Match(m.String(), s). It does not allocate.
func (m *Matcher) Match(s string) bool {
	ok, _, _ := m.MatchSteps(s, math.MaxInt64)
	return ok
}

// MatchSteps is Match with a bound on its work: it stops once it has taken
// more than limit steps (done false, matched false). A step is one token
// tried at one position, or 32 bytes scanned by a literal comparison or
// search; a match costs about len(s) steps for most patterns and up to
// len(s) times the number of tokens for the worst. used is the steps
// taken.
func (m *Matcher) MatchSteps(s string, limit int64) (matched bool, used int64, done bool) {
	if m.all {
		return true, 1, true
	}
	if len(s) == 0 {
		return len(m.toks) == 0, 1, true
	}
	toks := m.toks
	ti, si := 0, 0
	star, starS := -1, 0 // as in match: the single backtrack point
	depth := 0
	for {
		if used++; used > limit {
			return false, used, false
		}
		// Invariant: si < len(s).
		if ti < len(toks) && toks[ti].kind == tokStar {
			if ti == len(toks)-1 {
				return true, used, true
			}
			if depth == maxNesting {
				return false, used, true
			}
			depth++
			ti++
			from := si
			if si = seek(toks[ti], s, si); si < 0 {
				return false, used, true
			}
			used += int64(si-from) / 32
			star, starS = ti, si
			continue
		}
		if ti < len(toks) {
			used += int64(len(toks[ti].lit)) / 32
			if n, ok := toks[ti].match(s[si:]); ok {
				ti++
				if si += n; si < len(s) {
					continue
				}
				for ti < len(toks) && toks[ti].kind == tokStar {
					ti++
				}
				if ti == len(toks) {
					return true, used, true
				}
			}
		}
		if star < 0 || starS+1 == len(s) {
			return false, used, true
		}
		from := starS + 1
		if starS = seek(toks[star], s, starS+1); starS < 0 {
			return false, used, true
		}
		used += int64(starS-from) / 32
		ti, si = star, starS
	}
}

// Limits of the patterns that [Check] accepts: long enough for any
// pattern an application writes, short enough that matching one key costs
// at most about len(key) x (MaxWildcards+1) steps.
const (
	MaxPatternBytes = 1024 // bytes in a pattern
	MaxWildcards    = 32   // '*' runs, '?' and [classes] in a pattern
)

// ErrLimit is returned (wrapped) by [Check] for a pattern beyond the limits.
var ErrLimit = errors.New("glob: pattern beyond limits")

// Check returns an error wrapping [ErrLimit] if pattern is longer than
// MaxPatternBytes or has more than MaxWildcards wildcards; nil otherwise.
// Within those limits patterns keep exactly Redis's semantics.
func Check(pattern string) error {
	if len(pattern) > MaxPatternBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrLimit, len(pattern), MaxPatternBytes)
	}
	if n := Compile(pattern).wildcards(); n > MaxWildcards {
		return fmt.Errorf("%w: %d wildcards (*, ?, [...]), more than %d", ErrLimit, n, MaxWildcards)
	}
	return nil
}

// wildcards counts the tokens that are not literal bytes.
func (m *Matcher) wildcards() int {
	n := 0
	for _, t := range m.toks {
		if t.kind != tokLiteral {
			n++
		}
	}
	return n
}

// seek returns the first position at or after i (and before len(s)) where t
// can start to match, or -1. Only literals skip ahead: at a position where the
// literal does not start, the rest of the pattern cannot match either.
func seek(t token, s string, i int) int {
	if t.kind != tokLiteral {
		return i
	}
	j := strings.Index(s[i:], t.lit)
	if j < 0 {
		return -1
	}
	return i + j
}

// match matches t at the start of s (which is not empty) and returns how many
// bytes it consumed.
func (t *token) match(s string) (int, bool) {
	switch t.kind {
	case tokLiteral:
		return len(t.lit), strings.HasPrefix(s, t.lit)
	case tokClass:
		return 1, t.set.has(s[0])
	default: // tokAny
		return 1, true
	}
}
