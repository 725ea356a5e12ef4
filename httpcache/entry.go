package httpcache

import (
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// entry is a cached GET response: status, content headers, body, and
// when it was generated.
type entry struct {
	status int
	header http.Header
	body   []byte
	// stored is when the handler's response was generated, in unix
	// milliseconds (earlier than the fill by the Age the handler's own
	// response carried); 0 when unknown: entries of format version 1,
	// written before the time was kept.
	stored int64
	tags   []string // given at load (route tags); kept by the cache's envelope, not by entryCodec
}

// age returns the entry's Age in whole seconds at now (RFC 9111 section
// 5.1: resident time plus the handler's own Age), and false when the entry
// does not know when it was stored. A stored time ahead of now (clocks of
// two processes that disagree) is an age of 0.
func (e entry) age(now time.Time) (int64, bool) {
	if e.stored == 0 {
		return 0, false
	}
	return max(0, now.UnixMilli()-e.stored) / 1000, true
}

// storedHeaders are the response headers an entry keeps: those that
// describe the content, never per-request or per-connection ones.
var storedHeaders = []string{
	"Allow", "Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language",
	"Content-Location", "Content-Security-Policy", "Content-Type", "Etag", "Expires",
	"Last-Modified", "Link", "Location", "Retry-After", "Vary", "Www-Authenticate",
	"X-Content-Type-Options",
}

// entryCodec encodes entries compactly: a version byte, the time the
// response was stored, the status, the headers, then the body as it is
// (JSON would base64 it). It reads version 1 too, which has no stored
// time: entries written before the time was kept stay readable, and get
// no Age.
type entryCodec struct{}

const (
	entryVersion   = 2 // what Marshal writes: the stored time after the version byte, then as version 1
	entryVersionV1 = 1 // no stored time
)

var errBadEntry = errors.New("httpcache: malformed cached response")

func (entryCodec) Marshal(v any) ([]byte, error) {
	e := v.(entry)
	names := make([]string, 0, len(e.header))
	for k := range e.header {
		names = append(names, k)
	}
	slices.Sort(names)
	b := []byte{entryVersion}
	b = binary.AppendUvarint(b, uint64(max(0, e.stored)))
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
	if len(data) == 0 || (data[0] != entryVersion && data[0] != entryVersionV1) {
		return errBadEntry
	}
	d.b = d.b[1:]
	var stored uint64
	if data[0] == entryVersion {
		stored = d.uvarint()
	}
	status := d.uvarint()
	n := d.uvarint()
	if d.err || status < 100 || status > 999 || n > uint64(len(d.b)) || stored > 1<<53 {
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
	*p = entry{status: int(status), header: h, body: d.b, stored: int64(stored)}
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
	wrote  bool // the handler called WriteHeader or Write (finish sets status 200 without)
}

func newRecorder() *recorder { return &recorder{header: make(http.Header)} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	r.wrote = true
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
// content headers and those named in extra (canonical names), stored at
// now less the Age the handler's response declares (a handler that
// relays a cached response from elsewhere). A zero now stores no time.
func (r *recorder) toEntry(extra []string, now time.Time) entry {
	h := make(http.Header)
	for _, list := range [][]string{storedHeaders, extra} {
		for _, k := range list {
			if v, ok := r.header[k]; ok && k != "Age" {
				h[k] = slices.Clone(v)
			}
		}
	}
	e := entry{status: r.status, header: h, body: r.body}
	if !now.IsZero() {
		e.stored = max(1, now.UnixMilli()-1000*headerAge(r.header))
	}
	return e
}

// headerAge returns the value of h's Age header in seconds, 0 when it has
// none or one that is not a non-negative integer (RFC 9111 section 5.1:
// such a value is ignored). Values beyond ten years are capped.
func headerAge(h http.Header) int64 {
	v, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return min(v, 10*365*24*3600)
}

// forbidsStore reports whether h's Cache-Control forbids a shared cache to
// keep the response.
func forbidsStore(h http.Header) bool {
	return cacheControlHas(h, "no-store", "private", "no-cache")
}

// cacheControlHas reports whether h's Cache-Control carries one of
// directives (lower case), with or without an argument.
func cacheControlHas(h http.Header, directives ...string) bool {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			d, _, _ = strings.Cut(strings.TrimSpace(d), "=")
			if slices.Contains(directives, strings.ToLower(d)) {
				return true
			}
		}
	}
	return false
}
