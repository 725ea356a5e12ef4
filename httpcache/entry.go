package httpcache

import (
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
	"strings"
)

// entry is a cached GET response: status, content headers, body.
type entry struct {
	status int
	header http.Header
	body   []byte
	tags   []string // given at load (route tags); kept by the cache's envelope, not by entryCodec
}

// storedHeaders are the response headers an entry keeps: those that
// describe the content, never per-request or per-connection ones.
var storedHeaders = []string{
	"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language",
	"Content-Location", "Content-Security-Policy", "Content-Type", "Etag", "Expires",
	"Last-Modified", "Link", "Location", "Vary", "X-Content-Type-Options",
}

// entryCodec encodes entries compactly: a version byte, the status, the
// headers, then the body as it is (JSON would base64 it).
type entryCodec struct{}

const entryVersion = 1

var errBadEntry = errors.New("httpcache: malformed cached response")

func (entryCodec) Marshal(v any) ([]byte, error) {
	e := v.(entry)
	names := make([]string, 0, len(e.header))
	for k := range e.header {
		names = append(names, k)
	}
	slices.Sort(names)
	b := []byte{entryVersion}
	b = binary.AppendUvarint(b, uint64(e.status))
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(e.header[k])))
		for _, v := range e.header[k] {
			b = appendString(b, v)
		}
	}
	return append(b, e.body...), nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func (entryCodec) Unmarshal(data []byte, v any) error {
	p := v.(*entry)
	d := decoder{b: data}
	if len(data) == 0 || data[0] != entryVersion {
		return errBadEntry
	}
	d.b = d.b[1:]
	status := d.uvarint()
	n := d.uvarint()
	if d.err || status < 100 || status > 999 || n > uint64(len(d.b)) {
		return errBadEntry
	}
	h := make(http.Header, n)
	for range n {
		k := d.str()
		m := d.uvarint()
		if d.err || m > uint64(len(d.b)) {
			return errBadEntry
		}
		vals := make([]string, 0, m)
		for range m {
			vals = append(vals, d.str())
		}
		h[k] = vals
	}
	if d.err {
		return errBadEntry
	}
	*p = entry{status: int(status), header: h, body: d.b}
	return nil
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// recorder is the http.ResponseWriter a handler writes to when its
// response may be cached or must wait for an invalidation: it keeps
// everything until the handler returns.
type recorder struct {
	header http.Header
	status int // 0 until WriteHeader or Write
	body   []byte
}

func newRecorder() *recorder { return &recorder{header: make(http.Header)} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 && status >= 200 { // 1xx informational headers are not kept
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	r.body = append(r.body, p...)
	return len(p), nil
}

// Flush does nothing: the response is sent when the handler returns.
func (r *recorder) Flush() {}

// finish completes the response as net/http would: 200 if nothing was
// written, and a sniffed Content-Type if the handler set none.
func (r *recorder) finish() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if _, set := r.header["Content-Type"]; !set && len(r.body) > 0 && r.header.Get("Content-Encoding") == "" {
		r.header.Set("Content-Type", http.DetectContentType(r.body))
	}
}

// sendTo writes the recorded response to w; HEAD gets no body.
func (r *recorder) sendTo(w http.ResponseWriter, head bool) {
	dst := w.Header()
	for k, v := range r.header {
		dst[k] = v
	}
	w.WriteHeader(r.status)
	if !head {
		_, _ = w.Write(r.body)
	}
}

// toEntry returns the cacheable part of the recorded response: the
// content headers and those named in extra (canonical names).
func (r *recorder) toEntry(extra []string) entry {
	h := make(http.Header)
	for _, list := range [][]string{storedHeaders, extra} {
		for _, k := range list {
			if v, ok := r.header[k]; ok {
				h[k] = slices.Clone(v)
			}
		}
	}
	return entry{status: r.status, header: h, body: r.body}
}

// forbidsStore reports whether h's Cache-Control forbids a shared cache to
// keep the response.
func forbidsStore(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			d, _, _ = strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(d) {
			case "no-store", "private", "no-cache":
				return true
			}
		}
	}
	return false
}
