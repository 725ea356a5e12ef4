package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/tiercache/tiercache/internal/glob"
	"github.com/tiercache/tiercache/tiered"
)

// TestCheckPattern checks which patterns the command refuses: the empty
// one and those whose [ class Redis never sees closed.
func TestCheckPattern(t *testing.T) {
	cases := []struct {
		p  string
		ok bool
	}{
		{"user:*", true}, {`user:\[12`, true}, {"user:[12]", true}, {"[]", true}, {"[^]", true},
		{"[a-]x]", true}, {`[\]]`, true}, {`a\`, true}, {"[a]*[b]", true},
		{"", false}, {"[", false}, {"user:[12", false}, {"[^", false}, {`[\]`, false}, {"[a]*[b", false}, {"[a-]", false},
	}
	for _, tc := range cases {
		if err := checkPattern(tc.p); (err == nil) != tc.ok {
			t.Errorf("checkPattern(%q) = %v; want ok %v", tc.p, err, tc.ok)
		}
	}
}

// TestGroupPattern checks that clearing a group matches its keys and no
// other group's, whatever its name holds.
func TestGroupPattern(t *testing.T) {
	for _, name := range []string{"user", "us:er", "a*", "50%", `x\[`} {
		p := groupPattern(name)
		for _, other := range []string{"user", "us:er", "a*", "50%", `x\[`, "userx", "a", "ab"} {
			key := encodeForTest(other) + ":42"
			if got, want := glob.Match(p, key), other == name; got != want {
				t.Errorf("groupPattern(%q) = %q matches %q: %v; want %v", name, p, key, got, want)
			}
		}
	}
}

func encodeForTest(name string) string { return tiered.EncodeName(name) }

// TestGroupPatternVectors checks the "groups" vectors of
// testdata/protocol/keys.json, which docs/protocol.md cites.
func TestGroupPatternVectors(t *testing.T) {
	b, err := os.ReadFile("../../testdata/protocol/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Groups []struct{ Group, Pattern string }
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Groups) == 0 {
		t.Fatal("keys.json: no groups")
	}
	for _, g := range v.Groups {
		if got := groupPattern(g.Group); got != g.Pattern {
			t.Errorf("groupPattern(%q) = %q; want %q", g.Group, got, g.Pattern)
		}
	}
}
