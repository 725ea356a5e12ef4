package glob_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/glob"
)

// short keeps test names and messages readable for the many-star rows.
func short(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", s[:20], len(s))
	}
	return s
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range matchCases {
		t.Run(fmt.Sprintf("%q/%q", short(tc.pattern), short(tc.s)), func(t *testing.T) {
			if got := glob.Match(tc.pattern, tc.s); got != tc.want {
				t.Errorf("Match(%q, %q) = %v; want %v", short(tc.pattern), short(tc.s), got, tc.want)
			}
			if got := glob.Compile(tc.pattern).Match(tc.s); got != tc.want {
				t.Errorf("Compile(%q).Match(%q) = %v; want %v", short(tc.pattern), short(tc.s), got, tc.want)
			}
		})
	}
}

func TestCompileString(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "*", "a\\*[b-c]?"} {
		if got := glob.Compile(p).String(); got != p {
			t.Errorf("Compile(%q).String() = %q; want %q", p, got, p)
		}
	}
}

var escapeCases = []struct{ in, want string }{
	{"", ""},
	{"user_42", "user_42"},
	{"*", `\*`},
	{"a?b", `a\?b`},
	{"[x]", `\[x\]`},
	{`\`, `\\`},
	{"^-", "^-"},
	{"é\xff\x00", "é\xff\x00"},
	{`*?[]\`, `\*\?\[\]\\`},
}

func TestEscape(t *testing.T) {
	t.Parallel()
	for _, tc := range escapeCases {
		if got := glob.Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q; want %q", tc.in, got, tc.want)
		}
		if !glob.Match(glob.Escape(tc.in), tc.in) {
			t.Errorf("Match(Escape(%q), %q) = false; want true", tc.in, tc.in)
		}
	}
}

func TestLiteralPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, prefix string
		exact           bool
	}{
		{"", "", true},
		{"abc", "abc", true},
		{"user_42_*", "user_42_", false},
		{`a\*b`, "a*b", true},
		{"*x", "", false},
		{"ab?c", "ab", false},
		{"ab[c]", "ab", false},
		{`a\[b*`, "a[b", false},
		{`a\`, `a\`, true},
		{`a\\`, `a\`, true},
		{`\*\?\[\]\\`, `*?[]\`, true},
		{"é\xff\x00*", "é\xff\x00", false},
		{"a]b", "a]b", true},
	} {
		prefix, exact := glob.LiteralPrefix(tc.pattern)
		if prefix != tc.prefix || exact != tc.exact {
			t.Errorf("LiteralPrefix(%q) = %q, %v; want %q, %v", tc.pattern, prefix, exact, tc.prefix, tc.exact)
		}
	}
}

// TestLiteralPrefixContract checks the contract of LiteralPrefix on the
// edge-case table: every match starts with the prefix, and an exact pattern
// matches the prefix itself.
func TestLiteralPrefixContract(t *testing.T) {
	t.Parallel()
	for _, tc := range matchCases {
		prefix, exact := glob.LiteralPrefix(tc.pattern)
		if tc.want && !strings.HasPrefix(tc.s, prefix) {
			t.Errorf("LiteralPrefix(%q) = %q, but %q matches", short(tc.pattern), prefix, short(tc.s))
		}
		if exact && glob.Match(tc.pattern, tc.s) != (tc.s == prefix) {
			t.Errorf("LiteralPrefix(%q) = %q, exact, but Match(_, %q) = %v", tc.pattern, prefix, tc.s, tc.want)
		}
	}
}

// FuzzEscape checks that Escape(x) matches x and nothing else.
func FuzzEscape(f *testing.F) {
	for _, tc := range escapeCases {
		f.Add(tc.in, tc.in+"x")
	}
	f.Add("a*", "ab")
	f.Add("[a-z]", "b")
	f.Add(`\`, `\\`)
	f.Add("?", "x")
	f.Fuzz(func(t *testing.T, x, y string) {
		p := glob.Escape(x)
		if !glob.Match(p, x) {
			t.Errorf("Match(Escape(%q) = %q, %q) = false; want true", x, p, x)
		}
		if y != x && glob.Match(p, y) {
			t.Errorf("Match(Escape(%q) = %q, %q) = true; want false", x, p, y)
		}
		if prefix, exact := glob.LiteralPrefix(p); prefix != x || !exact {
			t.Errorf("LiteralPrefix(Escape(%q)) = %q, %v; want %q, true", x, prefix, exact, x)
		}
	})
}

func ExampleMatch() {
	fmt.Println(glob.Match("user_42_*", "user_42_profile"))
	fmt.Println(glob.Match("user_42_*", "user_420"))
	fmt.Println(glob.Match("[z-a]?", "mx"))
	// Output:
	// true
	// false
	// true
}

func ExampleEscape() {
	id := "*" // a request value put into a pattern
	pattern := "user_" + glob.Escape(id) + "_*"
	fmt.Println(pattern)
	fmt.Println(glob.Match(pattern, "user_*_profile"))
	fmt.Println(glob.Match(pattern, "user_42_profile"))
	// Output:
	// user_\*_*
	// true
	// false
}

func ExampleLiteralPrefix() {
	fmt.Println(glob.LiteralPrefix("user_42_*"))
	fmt.Println(glob.LiteralPrefix(`a\*b`))
	// Output:
	// user_42_ false
	// a*b true
}

func ExampleCompile() {
	m := glob.Compile("session:*:[0-9]")
	for _, key := range []string{"session:ab:1", "session:ab:x", "user:1"} {
		fmt.Println(key, m.Match(key))
	}
	// Output:
	// session:ab:1 true
	// session:ab:x false
	// user:1 false
}

func TestOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern       string
		escape, class bool
	}{
		{"", false, false},
		{"user_*", false, false},
		{`a\`, true, false},
		{`a\\`, false, false},
		{`a\\\`, true, false},
		{`\*`, false, false},
		{"[", false, true},
		{"[ab", false, true},
		{"[ab]", false, false},
		{"[^", false, true},
		{"[^a]x", false, false},
		{"[a-", false, true},
		{"[a-]", false, true}, // the ] ends the range
		{"[a-]]", false, false},
		{`[\]`, false, true}, // an escaped ]
		{`[\]]`, false, false},
		{`[a\`, false, true},
		{"[]", false, false}, // an empty class
		{"[[]", false, false},
		{`[a]\`, true, false},
		{"]", false, false},
	} {
		escape, class := glob.Open(tc.pattern)
		if escape != tc.escape || class != tc.class {
			t.Errorf("Open(%q) = %v, %v; want %v, %v", tc.pattern, escape, class, tc.escape, tc.class)
		}
	}
}
