package tiered

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tiercache/tiercache/internal/glob"
)

// Template is a key or a pattern with named placeholders, the decorator's
// to_invalidate_extra ("user_posts:{user_id}", "recent_posts:global") and
// pattern_to_invalidate_extra ("user_{user_id}_*"). A placeholder is
// {name}, name being a letter or "_" followed by letters, digits or "_";
// "{{" and "}}" stand for literal braces. A Template is immutable and safe
// for concurrent use.
//
// In a key template a value is substituted as it is (a key is literal). In
// a pattern template the literal text is glob syntax, written by the
// programmer, and every substituted value is escaped: a user_id of "*"
// yields the pattern for the one key with that id, never every user's.
// Nothing is appended: "user_{user_id}" never also matches "user_50".
// ParsePattern refuses a placeholder where no escaping could make its value
// literal: after an unpaired backslash (`a\{id}`, which would escape only
// the value's first byte) and inside a [...] class (`[{c}]`, where `-` and
// `^` keep their meaning).
type Template struct {
	src     string
	pattern bool
	parts   []tmplPart
	names   []string // distinct placeholder names, in order of appearance
}

type tmplPart struct {
	lit  string // literal text, when name is empty
	name string
}

// ParseKey parses a key template.
func ParseKey(src string) (*Template, error) { return parseTemplate(src, false) }

// ParsePattern parses a pattern template.
func ParsePattern(src string) (*Template, error) { return parseTemplate(src, true) }

// MustParseKey is ParseKey that panics on error, for templates written in
// code (package-level variables).
func MustParseKey(src string) *Template { return must(ParseKey(src)) }

// MustParsePattern is ParsePattern that panics on error.
func MustParsePattern(src string) *Template { return must(ParsePattern(src)) }

func must(t *Template, err error) *Template {
	if err != nil {
		panic(err)
	}
	return t
}

func parseTemplate(src string, pattern bool) (*Template, error) {
	if src == "" {
		return nil, fmt.Errorf("tiered: empty template")
	}
	t := &Template{src: src, pattern: pattern}
	var lit strings.Builder
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case c == '{' && strings.HasPrefix(src[i:], "{{"), c == '}' && strings.HasPrefix(src[i:], "}}"):
			lit.WriteByte(c)
			i++
		case c == '}':
			return nil, fmt.Errorf("tiered: template %q: unmatched } at byte %d (write }} for a literal brace)", src, i)
		case c == '{':
			end := strings.IndexByte(src[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("tiered: template %q: unclosed { at byte %d", src, i)
			}
			name := src[i+1 : i+end]
			if !validName(name) {
				return nil, fmt.Errorf("tiered: template %q: bad placeholder {%s}: want a letter or _ then letters, digits or _", src, name)
			}
			if pattern {
				if err := checkPlaceholder(src, i, name, lit.String()); err != nil {
					return nil, err
				}
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, tmplPart{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, tmplPart{name: name})
			if !slices.Contains(t.names, name) {
				t.names = append(t.names, name)
			}
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, tmplPart{lit: lit.String()})
	}
	return t, nil
}

// checkPlaceholder returns an error if the placeholder name at byte i of
// the pattern template src, after the literal glob text lit (since the
// previous placeholder, which leaves nothing open), is where an escaped
// value would not be read literally.
func checkPlaceholder(src string, i int, name, lit string) error {
	switch escape, class := glob.Open(lit); {
	case escape:
		return fmt.Errorf(`tiered: template %q: {%s} at byte %d follows an unpaired \, which would escape only its value's first byte (write \\ for a literal backslash)`, src, name, i)
	case class:
		return fmt.Errorf("tiered: template %q: {%s} at byte %d is inside a [...] class, where its value cannot be escaped", src, name, i)
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// String returns the template as written.
func (t *Template) String() string { return t.src }

// IsPattern reports whether t is a pattern template.
func (t *Template) IsPattern() bool { return t.pattern }

// Names returns the placeholders t needs, each once, in order of
// appearance. The caller must not modify the slice.
func (t *Template) Names() []string { return t.names }

// Check returns an error naming every placeholder of t that is not in
// available, so that a template a route cannot fill is an error when it is
// registered, not when a request comes.
func (t *Template) Check(available ...string) error {
	var missing []string
	for _, n := range t.names {
		if !slices.Contains(available, n) {
			missing = append(missing, "{"+n+"}")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("tiered: template %q needs %s; available: %v", t.src, strings.Join(missing, ", "), available)
	}
	return nil
}

// Expand fills the placeholders with the values that value returns (escaped
// in a pattern template). A placeholder value does not know is an error.
func (t *Template) Expand(value func(name string) (string, bool)) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.lit)
			continue
		}
		v, ok := value(p.name)
		if !ok {
			return "", fmt.Errorf("tiered: template %q: no value for {%s}", t.src, p.name)
		}
		if t.pattern {
			v = glob.Escape(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// ExpandMap is Expand with the values in a map.
func (t *Template) ExpandMap(values map[string]string) (string, error) {
	return t.Expand(func(n string) (string, bool) { v, ok := values[n]; return v, ok })
}
