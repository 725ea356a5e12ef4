package glob

// maxNesting is Redis's guard against abusive patterns: stringmatchlen_impl
// recurses once per group of '*' it passes and returns "no match" from any
// call nested deeper than this.
const maxNesting = 1000

// Match reports whether s matches pattern the way Redis 7.0's KEYS pattern and
// SCAN ... MATCH pattern decide it (see the package documentation for the
// exact rules). Every byte string is a valid pattern: Match never panics and
// never fails. It is safe for concurrent use and does not allocate.
func Match(pattern, s string) bool {
	if pattern == "*" {
		// KEYS and SCAN skip stringmatchlen for this pattern, which is the only
		// way a pattern other than "" matches the empty key.
		return true
	}
	return match(pattern, s)
}

// match is stringmatchlen without the recursion. Redis's recursion only ever
// backtracks into the innermost '*' it has reached: once a deeper '*' is
// reached, that call either matches or fails the whole match (its
// skipLongerMatches flag). So one backtrack point (star, starS) is enough, and
// the nesting depth is the number of star groups reached so far.
func match(p, s string) bool {
	if len(s) == 0 {
		return len(p) == 0
	}
	pi, si := 0, 0
	star, starS := -1, 0 // where the pattern resumes after the last '*', and at which byte of s
	depth := 0
	for {
		// Invariant: si < len(s).
		if pi < len(p) && p[pi] == '*' {
			for pi+1 < len(p) && p[pi+1] == '*' {
				pi++
			}
			if pi == len(p)-1 {
				return true // a trailing '*' matches whatever is left
			}
			if depth == maxNesting {
				return false
			}
			depth++
			pi++
			star, starS = pi, si
			continue
		}
		ok := false
		if pi < len(p) {
			if c := p[pi]; c != '?' && c != '[' && c != '\\' {
				ok = c == s[si] // the common case, inlined
				pi++
			} else {
				pi, ok = matchOne(p, pi, s[si])
			}
		}
		if ok {
			si++
			if si < len(s) {
				continue
			}
			// s is used up: only stars may remain.
			for pi < len(p) && p[pi] == '*' {
				pi++
			}
			if pi == len(p) {
				return true
			}
		}
		// Mismatch: let the last '*' swallow one more byte, if there is one.
		if star < 0 || starS+1 == len(s) {
			return false
		}
		starS++
		pi, si = star, starS
	}
}

// matchOne matches the single-byte token at p[i] (anything but '*') against
// c. It returns the index of the next token and whether c matched.
func matchOne(p string, i int, c byte) (int, bool) {
	switch p[i] {
	case '?':
		return i + 1, true
	case '[':
		return matchClass(p, i+1, c)
	case '\\':
		if i+1 < len(p) { // a trailing backslash is a literal backslash
			i++
		}
	}
	return i + 1, p[i] == c
}

// matchClass matches c against the class whose body starts at p[i] (just
// after the '['). It returns the index after the closing ']' (or len(p) when
// the class is unterminated) and whether c matched.
func matchClass(p string, i int, c byte) (int, bool) {
	neg := i < len(p) && p[i] == '^'
	if neg {
		i++
	}
	matched := false
	for ; ; i++ {
		switch {
		case i == len(p):
			return i, matched != neg // unterminated: ends with the pattern
		case p[i] == '\\' && i+1 < len(p):
			i++
			matched = matched || p[i] == c
		case p[i] == ']':
			return i + 1, matched != neg
		case i+2 < len(p) && p[i+1] == '-':
			matched = matched || inRange(p[i], p[i+2], c)
			i += 2
		default:
			matched = matched || p[i] == c
		}
	}
}

// inRange reports whether c lies between a and b (in either order), comparing
// bytes as C's signed char, as Redis does on x86-64.
func inRange(a, b, c byte) bool {
	lo, hi, x := int8(a), int8(b), int8(c)
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo <= x && x <= hi
}
