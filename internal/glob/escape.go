package glob

import "strings"

// special reports whether b must be escaped to stand for itself in a pattern.
// '^' and '-' are special only inside a class, and Escape never opens one.
func special(b byte) bool {
	switch b {
	case '*', '?', '[', ']', '\\':
		return true
	}
	return false
}

// Escape returns a pattern that matches s and nothing else: Match(Escape(s), t)
// is true if and only if t == s, for every byte string s (non-ASCII bytes,
// invalid UTF-8 and NUL bytes included). It puts a backslash before each of
// `*`, `?`, `[`, `]` and `\` and copies every other byte. Escape("") is "",
// which matches only the empty key. It returns s itself when nothing needs
// escaping.
func Escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if special(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + n)
	for i := 0; i < len(s); i++ {
		if special(s[i]) {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Open reports whether pattern ends inside a token that would take bytes
// appended to it as its own: escape, after a backslash that escapes nothing
// yet (the last of an odd run of them); class, inside a [...] class that no
// ']' has closed. An escaped string appended to such a pattern is not read
// literally: after `a\` the escape of `*` reads as a literal backslash and
// a live `*`, and in a class `-` and `^` keep their meaning. When Open
// reports neither, every byte of Escape(s) appended to pattern stands for
// itself.
func Open(pattern string) (escape, class bool) {
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			if i+1 == len(pattern) {
				return true, false
			}
			i++
		case '[':
			end, ok := classEnd(pattern, i+1)
			if !ok {
				return false, true
			}
			i = end - 1
		}
	}
	return false, false
}

// classEnd parses the class whose body starts at p[i] by matchClass's rules
// and returns the index after its closing ']', or ok false if p ends first
// (bytes appended to p would then be read inside the class).
func classEnd(p string, i int) (end int, ok bool) {
	if i < len(p) && p[i] == '^' {
		i++
	}
	for ; i < len(p); i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
		case p[i] == ']':
			return i + 1, true
		case i+2 < len(p) && p[i+1] == '-':
			i += 2
		}
	}
	return len(p), false
}

// LiteralPrefix returns the literal (unescaped) bytes that pattern starts with,
// up to its first `*`, `?` or `[`: every string that matches pattern starts
// with prefix. exact reports whether pattern has no wildcard at all, in which
// case Match(pattern, s) is true if and only if s == prefix.
//
// A class is never looked into, even one that admits a single byte such as
// `[a]`, so prefix may be shorter than the longest common prefix of all
// matches; it is never longer. For example `user_42_*` gives ("user_42_",
// false), `a\*b` gives ("a*b", true) and `*x` gives ("", false). The returned
// prefix shares memory with pattern when pattern has no backslash before its
// first wildcard.
func LiteralPrefix(pattern string) (prefix string, exact bool) {
	i := strings.IndexAny(pattern, `*?[\`)
	if i < 0 {
		return pattern, true
	}
	if pattern[i] != '\\' {
		return pattern[:i], false
	}
	b := []byte(pattern[:i])
	for ; i < len(pattern); i++ {
		switch pattern[i] {
		case '*', '?', '[':
			return string(b), false
		case '\\':
			if i+1 < len(pattern) { // a trailing backslash is a literal backslash
				i++
			}
		}
		b = append(b, pattern[i])
	}
	return string(b), true
}
