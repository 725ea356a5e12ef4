package httpcache

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// route pattern: "[METHOD ][HOST]/[PATH]", as net/http.ServeMux reads it.
type pattern struct {
	src       string
	method    string   // "" for every method
	host      string   // "" for every host
	path      string   // from its first "/"
	wildcards []string // the path wildcards' names, in order
}

// parsePattern reads the method and the wildcard names of a ServeMux
// pattern. It checks what the cache relies on; ServeMux checks the rest
// when the pattern is registered.
func parsePattern(s string) (pattern, error) {
	p := pattern{src: s}
	rest := strings.TrimLeft(s, " \t")
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		p.method, rest = rest[:i], strings.TrimLeft(rest[i:], " \t")
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return p, fmt.Errorf("httpcache: pattern %q: no path", s)
	}
	if strings.ContainsAny(rest[:slash], "{}") {
		return p, fmt.Errorf("httpcache: pattern %q: wildcards in the host", s)
	}
	p.host, p.path = rest[:slash], rest[slash:]
	for _, seg := range strings.Split(rest[slash+1:], "/") {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		if seg == "{$}" {
			continue
		}
		if len(seg) < 3 || seg[0] != '{' || seg[len(seg)-1] != '}' {
			return p, fmt.Errorf("httpcache: pattern %q: segment %q: a wildcard must be a whole segment", s, seg)
		}
		name := strings.TrimSuffix(seg[1:len(seg)-1], "...")
		if !isIdent(name) || slices.Contains(p.wildcards, name) {
			return p, fmt.Errorf("httpcache: pattern %q: bad or repeated wildcard %q", s, seg)
		}
		p.wildcards = append(p.wildcards, name)
	}
	return p, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c > 0x7f
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// methods a route may name, and what the cache does with them.
var (
	readMethods  = []string{http.MethodGet, http.MethodHead}
	writeMethods = []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
)

func (p pattern) reads() bool  { return p.method == "" || slices.Contains(readMethods, p.method) }
func (p pattern) writes() bool { return p.method == "" || slices.Contains(writeMethods, p.method) }

// fill returns the escaped path of p with the wildcard name set to value,
// and false if p has another wildcard.
func (p pattern) fill(name, value string) (string, bool) {
	segs := strings.Split(p.path[1:], "/")
	for i, seg := range segs {
		switch {
		case seg == "{$}":
			segs[i] = ""
		case seg == "{"+name+"}":
			segs[i] = url.PathEscape(value)
		case seg == "{"+name+"...}":
			parts := strings.Split(value, "/")
			for j := range parts {
				parts[j] = url.PathEscape(parts[j])
			}
			segs[i] = strings.Join(parts, "/")
		case strings.HasPrefix(seg, "{"):
			return "", false
		}
	}
	return "/" + strings.Join(segs, "/"), true
}
