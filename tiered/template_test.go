package tiered_test

import (
	"strings"
	"testing"

	"github.com/tiercache/tiercache/internal/glob"
	"github.com/tiercache/tiercache/tiered"
)

func TestTemplateParse(t *testing.T) {
	for _, tc := range []struct {
		src     string
		pattern bool
		names   []string
		wantErr string
	}{
		{src: "user_posts:{user_id}", names: []string{"user_id"}},
		{src: "recent_posts:global"},
		{src: "user_{user_id}_*", pattern: true, names: []string{"user_id"}},
		{src: "{a}:{b}:{a}", names: []string{"a", "b"}},
		{src: "lit{{eral}}", names: nil},
		{src: "", wantErr: "empty"},
		{src: "user_{user_id", wantErr: "unclosed"},
		{src: "user_}", wantErr: "unmatched"},
		{src: "user_{}", wantErr: "bad placeholder"},
		{src: "user_{9x}", wantErr: "bad placeholder"},
		{src: "user_{a-b}", wantErr: "bad placeholder"},
	} {
		parse := tiered.ParseKey
		if tc.pattern {
			parse = tiered.ParsePattern
		}
		tmpl, err := parse(tc.src)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) error = %v; want containing %q", tc.src, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q) error = %v", tc.src, err)
			continue
		}
		if got := tmpl.Names(); strings.Join(got, ",") != strings.Join(tc.names, ",") {
			t.Errorf("Parse(%q).Names() = %v; want %v", tc.src, got, tc.names)
		}
	}
}

func TestTemplateCheckNamesWhatIsMissing(t *testing.T) {
	tmpl := tiered.MustParsePattern("user_{user_id}_{category_id}_*")
	if err := tmpl.Check("user_id", "category_id"); err != nil {
		t.Fatalf("Check with all values: %v", err)
	}
	err := tmpl.Check("post_id")
	if err == nil || !strings.Contains(err.Error(), "{user_id}, {category_id}") {
		t.Fatalf("Check error = %v; want it to name both missing placeholders", err)
	}
}

func TestTemplateExpandEscapesPatternValues(t *testing.T) {
	key := tiered.MustParseKey("user_posts:{id}")
	pat := tiered.MustParsePattern("user_{id}_*")
	for _, id := range []string{"5", "*", "?", "[a-z]", `\`, "a:b", "]["} {
		k, err := key.ExpandMap(map[string]string{"id": id})
		if err != nil || k != "user_posts:"+id {
			t.Errorf("key Expand(%q) = %q, %v", id, k, err)
		}
		p, err := pat.ExpandMap(map[string]string{"id": id})
		if err != nil {
			t.Fatal(err)
		}
		if want := "user_" + tiered.Escape(id) + "_*"; p != want {
			t.Errorf("pattern Expand(%q) = %q; want %q", id, p, want)
		}
	}
	if _, err := pat.ExpandMap(nil); err == nil || !strings.Contains(err.Error(), "{id}") {
		t.Errorf("Expand without a value: error = %v; want it to name {id}", err)
	}
	lit := tiered.MustParseKey("recent_posts:global")
	if k, err := lit.ExpandMap(nil); err != nil || k != "recent_posts:global" {
		t.Errorf("literal Expand = %q, %v", k, err)
	}
}

// TestPatternTemplateRefusesOpenPlaceholders: a placeholder after an
// unpaired backslash or inside a [...] class is refused, since no escaping
// makes its value literal there: `a\{id}` with an id of "*" expanded to
// `a\\*`, a literal backslash then a live wildcard, and in `[{c}]` a value
// "a-z" or "^x" is a range or a negation. Everywhere else, and in key
// templates, the same placeholders are accepted and a value matches itself
// and nothing else.
func TestPatternTemplateRefusesOpenPlaceholders(t *testing.T) {
	for _, tc := range []struct{ src, wantErr string }{
		{`a\{id}`, "unpaired"},
		{`a\\\{id}_*`, "unpaired"},
		{`{a}\{b}`, "unpaired"},
		{`[{c}]`, "class"},
		{`x[a{c}]`, "class"},
		{`[^{c}]`, "class"},
		{`[a-{c}]`, "class"},
		{`[a-]{c}`, "class"}, // the ] ends the range a-], not the class
		{`[\]{c}]`, "class"}, // an escaped ] does not close it
		{`[a]{b}[{c}]`, "class"},
	} {
		_, err := tiered.ParsePattern(tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParsePattern(%q) error = %v; want containing %q", tc.src, err, tc.wantErr)
		}
		if _, err := tiered.ParseKey(tc.src); err != nil {
			t.Errorf("ParseKey(%q) error = %v; want none (a key is literal)", tc.src, err)
		}
	}
	for _, tc := range []struct{ src, prefix, suffix string }{
		{`a\\{id}`, `a\`, ""},
		{`\[{id}]`, "[", "]"},
		{`[a]{id}`, "a", ""},
		{`[a-c]{id}`, "b", ""},
		{`a\*{id}\?`, "a*", "?"},
	} {
		tmpl, err := tiered.ParsePattern(tc.src)
		if err != nil {
			t.Errorf("ParsePattern(%q) error = %v", tc.src, err)
			continue
		}
		for _, v := range []string{"5", "*", "?", "-", "^x", "a-z", `\`, "]"} {
			p, err := tmpl.ExpandMap(map[string]string{"id": v})
			if err != nil {
				t.Fatal(err)
			}
			if key := tc.prefix + v + tc.suffix; !glob.Match(p, key) {
				t.Errorf("%q expanded with %q = %q; does not match %q", tc.src, v, p, key)
			}
			if other := tc.prefix + v + "x" + tc.suffix; glob.Match(p, other) {
				t.Errorf("%q expanded with %q = %q; matches %q too", tc.src, v, p, other)
			}
		}
	}
}
