package tiercache_test

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
)

// documents returns the Markdown files whose links must resolve: the
// README, the changelog, the harness's README and everything in docs/.
func documents(fsys fs.FS) ([]string, error) {
	docs, err := fs.Glob(fsys, "docs/*.md")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"README.md", "CHANGELOG.md", "bench/README.md"} {
		if _, err := fs.Stat(fsys, name); err == nil {
			docs = append(docs, name)
		}
	}
	return docs, nil
}

var (
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s+(\S+)`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
	mdMention  = regexp.MustCompile(`(?:^|[\s(])((?:\.\./|[\w.-]+/)*[\w.-]+\.md)\b`)
	scheme     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// prose returns the lines of a Markdown document outside fenced code
// blocks, with their line numbers.
func prose(text string) map[int]string {
	lines := map[int]string{}
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case fence != "":
			if strings.HasPrefix(t, fence) {
				fence = ""
			}
		case strings.HasPrefix(t, "```"), strings.HasPrefix(t, "~~~"):
			fence = t[:3]
		default:
			lines[i+1] = line
		}
	}
	return lines
}

// anchors returns the heading anchors of a Markdown document as GitHub
// makes them: lower case, punctuation dropped, spaces as hyphens, and a
// -1, -2... suffix on repeats.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	lines := prose(text)
	for i := 1; i <= strings.Count(text, "\n")+1; i++ {
		line, ok := lines[i]
		if !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// checkLinks reports every relative link of the documents that names a
// file the repository does not have, or a heading its target does not
// have, and every mention of a Markdown file that does not exist.
func checkLinks(fsys fs.FS, docs []string) []error {
	var errs []error
	for _, doc := range docs {
		data, err := fs.ReadFile(fsys, doc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lines := prose(string(data))
		for n := 1; n <= strings.Count(string(data), "\n")+1; n++ {
			line, ok := lines[n]
			if !ok {
				continue
			}
			var targets []string
			for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
			}
			if m := refLink.FindStringSubmatch(line); m != nil {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if err := resolve(fsys, doc, target); err != nil {
					errs = append(errs, fmt.Errorf("%s:%d: link %s: %w", doc, n, target, err))
				}
			}
			text := inlineLink.ReplaceAllString(codeSpan.ReplaceAllString(line, ""), "")
			for _, m := range mdMention.FindAllStringSubmatch(text, -1) {
				if !exists(fsys, path.Join(path.Dir(doc), m[1])) && !exists(fsys, path.Clean(m[1])) {
					errs = append(errs, fmt.Errorf("%s:%d: mentions %s, which the repository does not have", doc, n, m[1]))
				}
			}
		}
	}
	return errs
}

func exists(fsys fs.FS, name string) bool {
	_, err := fs.Stat(fsys, name)
	return err == nil
}

// resolve checks one link target of doc.
func resolve(fsys fs.FS, doc, target string) error {
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return nil // absolute: not checked here
	}
	file, anchor, _ := strings.Cut(target, "#")
	name := doc
	if file != "" {
		name = path.Join(path.Dir(doc), file)
		if strings.HasPrefix(name, "../") || path.IsAbs(file) {
			return fmt.Errorf("leaves the repository")
		}
		if !exists(fsys, name) {
			return fmt.Errorf("no file %s", name)
		}
	}
	if anchor == "" {
		return nil
	}
	if !strings.HasSuffix(name, ".md") {
		return fmt.Errorf("an anchor into %s, which is not Markdown", name)
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	if !anchors(string(data))[anchor] {
		return fmt.Errorf("no heading #%s in %s", anchor, name)
	}
	return nil
}

// TestDocLinks: every relative link in the README, the changelog, the
// harness's README and docs/ names a file of the repository and, with an
// anchor, a heading of that file; no text names a Markdown file that does
// not exist.
func TestDocLinks(t *testing.T) {
	fsys := os.DirFS(".")
	docs, err := documents(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 4 {
		t.Fatalf("found only %v", docs)
	}
	for _, err := range checkLinks(fsys, docs) {
		t.Error(err)
	}
}

// TestDocLinksCheck shows that the check fails on each kind of broken link,
// and passes the good ones, on synthetic documents.
func TestDocLinksCheck(t *testing.T) {
	base := fstest.MapFS{
		"LICENSE":      {Data: []byte("text")},
		"docs/a.md":    {Data: []byte("# A\n\n## Fail-open and the breaker\n\n## Side by side (`go run ./bench`)\n\n## Twice\n\n## Twice\n\n```\n# not a heading\n```\n")},
		"bench/run.go": {Data: []byte("package main")},
	}
	for _, tc := range []struct {
		name, doc string
		broken    bool
	}{
		{"a file", "[a](docs/a.md)", false},
		{"a file without extension", "[licence](LICENSE)", false},
		{"a heading", "[x](docs/a.md#fail-open-and-the-breaker)", false},
		{"a heading with code and punctuation", "[x](docs/a.md#side-by-side-go-run-bench)", false},
		{"a repeated heading", "[x](docs/a.md#twice-1)", false},
		{"a reference definition", "[x]: docs/a.md#twice", false},
		{"an absolute URL", "[x](https://example.com/nowhere.md)", false},
		{"a link inside a code block", "```\n[x](docs/missing.md)\n```", false},
		{"a mention of an existing file", "see docs/a.md for more", false},
		{"a mention inside a code span", "`DESIGN.md`", false},
		{"a missing file", "[x](docs/missing.md)", true},
		{"a missing heading", "[x](docs/a.md#no-such-heading)", true},
		{"a heading only inside a code block", "[x](docs/a.md#not-a-heading)", true},
		{"a repeat that does not exist", "[x](docs/a.md#twice-2)", true},
		{"a missing anchor in the same file", "# Top\n\n[x](#bottom)", true},
		{"a broken reference definition", "[x]: docs/gone.md", true},
		{"an anchor into a file that is not Markdown", "[x](LICENSE#top)", true},
		{"a path out of the repository", "[x](../elsewhere.md)", true},
		{"a mention of a missing document", "Stale and late reads follow DESIGN.md.", true},
		{"an image that is missing", "![chart](bench/results.svg)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"README.md": {Data: []byte(tc.doc + "\n")}}
			for k, v := range base {
				fsys[k] = v
			}
			errs := checkLinks(fsys, []string{"README.md"})
			if tc.broken && len(errs) == 0 {
				t.Errorf("%q passed the check", tc.doc)
			}
			if !tc.broken && len(errs) > 0 {
				t.Errorf("%q failed the check: %v", tc.doc, errs)
			}
		})
	}
}
