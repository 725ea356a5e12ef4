package glob_test

import "strings"

// matchCase is one row of the edge-case table. Every row is also checked
// against a real redis-server by TestCasesAgainstRedis, so want is what Redis
// 7.0 itself answers, not what a glob "should" do.
type matchCase struct {
	pattern, s string
	want       bool
}

var matchCases = []matchCase{
	// Empty pattern, empty string, and the KEYS/SCAN special case of "*".
	{"", "", true},
	{"", "a", false},
	{"*", "", true}, // KEYS and SCAN skip matching for exactly "*"
	{"**", "", false},
	{"*?", "", false},
	{"?", "", false},
	{"a", "", false},
	{"*", "abc", true},
	{"a*", "a", true},
	{"a**", "a", true},
	{"a*?", "a", false},
	{"*?", "a", true},

	// Plain globbing.
	{"abc", "abc", true},
	{"abc", "abcd", false},
	{"?", "a", true},
	{"?", "ab", false},
	{"a?c", "abc", true},
	{"a?c", "ac", false},
	{"*a", "ba", true},
	{"*a", "ab", false},
	{"a*b*c", "aXbYc", true},
	{"a*b*c", "abcabc", true},
	{"a*b*c", "abcab", false},
	{"user_42_*", "user_42_", true},
	{"user_42_*", "user_420", false},

	// Classes, ranges, negation.
	{"[abc]", "b", true},
	{"[abc]", "d", false},
	{"[abc]", "", false},
	{"[a-c]", "b", true},
	{"[c-a]", "b", true}, // a reversed range is the range
	{"[z-a]", "m", true},
	{"[z-a]", "A", false},
	{"[^abc]", "d", true},
	{"[^abc]", "a", false},
	{"[^a-c]", "b", false},
	{"[a-c-e]", "d", false},
	{"[a-c-e]", "-", true},
	{"[-a]", "-", true},
	{"[--a]", "0", true}, // range from '-' to 'a'
	{"[]", "]", false},   // ']' right after '[' closes an empty class
	{"[]]", "]", false},
	{"[^]", "x", true},
	{"[^]", "xy", false},
	{"[^]]", "x]", true},
	{"[a-]", "_", true}, // range from ']' to 'a', and the class is unterminated
	{"[a-]", "-", false},
	{"[a-]", "]", true},
	{"[a-]x]", "x", true},
	{"[a-]x]", "x]", false},
	{"[a-\\]", "_", true}, // range from '\' to 'a'
	{"[a-\\]", "b", false},

	// Escapes inside classes.
	{"[a\\]]", "]", true},
	{"[\\]", "]", true}, // escaped ']', then unterminated
	{"[\\]", "\\", false},
	{"[\\", "\\", true}, // a backslash at the very end is literal
	{"[\\a-c]", "b", false},
	{"[\\a-c]", "-", true},
	{"[\\^a]", "^", true},
	{"[\\-]", "-", true},

	// Unterminated classes.
	{"[", "[", false},
	{"[", "", false},
	{"[^", "x", true},
	{"[^", "[", true},
	{"[abc", "b", true},
	{"[abc", "bx", false},
	{"x[abc", "xc", true},
	{"[a-z", "m", true},
	{"[a-", "-", true},
	{"[a-", "b", false},
	{"[^a", "b", true},
	{"*[", "x[", false},

	// Escapes outside classes, trailing backslash.
	{"\\*", "*", true},
	{"\\*", "a", false},
	{"\\?", "?", true},
	{"\\?", "x", false},
	{"\\[a]", "[a]", true},
	{"\\a", "a", true},
	{"\\\\", "\\", true},
	{"\\", "\\", true},
	{"\\", "", false},
	{"a\\", "a\\", true},
	{"a\\", "a", false},
	{"a\\*b", "a*b", true},
	{"a\\*b", "axb", false},
	{"*\\", "x\\", true},

	// NUL bytes.
	{"a\x00b", "a\x00b", true},
	{"a?b", "a\x00b", true},
	{"[\x00]", "\x00", true},
	{"[^\x00]", "\x00", false},
	{"*\x00", "abc\x00", true},
	{"\x00", "", false},
	{"\x00*", "\x00", true},

	// Bytes >= 0x80: byte-wise, and ranges compare as signed char.
	{"é", "é", true},
	{"?", "é", false},
	{"??", "é", true},
	{"[é]", "\xc3", true},
	{"\xff*", "\xff\xfe", true},
	{"[\x80-\xff]", "\x90", true},
	{"[\x80-\xff]", "a", false},
	{"[\xff-\x80]", "\x90", true},
	{"[a-\xff]", "a", true},
	{"[a-\xff]", "\xff", true},
	{"[a-\xff]", "\x00", true},
	{"[a-\xff]", "b", false},
	{"[a-\xff]", "\xfe", false},
	{"[\x7f-\x80]", "a", true}, // -128..127: every byte
	{"[\x00-\x7f]", "\x80", false},
	{"[^\x80-\xff]", "\x80", false},

	// Many stars and Redis's nesting guard (1000 levels of '*').
	{strings.Repeat("*", 10000), "", false},
	{strings.Repeat("*", 10000), "abc", true},
	{strings.Repeat("*", 10000) + "x", strings.Repeat("a", 5000), false},
	{"a" + strings.Repeat("*", 10000) + "b", "ab", true},
	{strings.Repeat("a*", 1000) + "b", strings.Repeat("a", 1000) + "b", true},
	{strings.Repeat("a*", 1001) + "b", strings.Repeat("a", 1001) + "b", false},
	{strings.Repeat("*a", 1000), strings.Repeat("a", 1000), true},
	{strings.Repeat("*a", 1001), strings.Repeat("a", 1001), false},
	{strings.Repeat("*a", 1000) + "*", strings.Repeat("a", 1000) + "b", true},
	{strings.Repeat("*a", 1001) + "*", strings.Repeat("a", 1001), false},
	{strings.Repeat("*a", 1001) + "*", strings.Repeat("a", 1001) + "b", false},
	{strings.Repeat("*a", 5000), strings.Repeat("a", 10000), false},
	{"a*b*c*d*e*f*g*h*i*j*k", strings.Repeat("a", 3000) + "x", false},
}
