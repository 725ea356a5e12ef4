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
