package httpcache

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tiercache/tiercache/tiered"
)

// variantSep separates a resource's id from the variant part of a key (its
// query string, caller, header values): "user_posts:5|q=page%3D2". It is
// not a glob metacharacter, so a pattern such as "user_posts:{user_id}|*"
// needs no escape.
const variantSep = "|"

var idEscaper = strings.NewReplacer("%", "%25", "|", "%7C")

// escapeID percent-encodes "%" and "|" in id, so that the first "|" of a
// key always starts its variant part and two ids never share a key.
func escapeID(id string) string {
	if !strings.ContainsAny(id, "%|") {
		return id
	}
	return idEscaper.Replace(id)
}

// resourceKey is the key, within the namespace, of the resource id in the
// group prefix, without variant.
func resourceKey(prefix, id string) string {
	return tiered.EncodeName(prefix) + ":" + escapeID(id)
}

// variantPattern matches every variant of the resource key.
func variantPattern(key string) string { return tiered.Escape(key+variantSep) + "*" }

// resourceID returns the resource's id of r, false if the route has none
// for it.
func (rt *route) resourceID(r *http.Request) (string, bool) {
	if rt.opts.IDFunc != nil {
		id, ok := rt.opts.IDFunc(r)
		return id, ok && id != ""
	}
	if rt.opts.ID == "" {
		return "", false
	}
	id := r.PathValue(rt.opts.ID)
	return id, id != ""
}

// cacheID returns the id, within the route's group, under which r's
// response is cached, or false when r must bypass the cache.
func (rt *route) cacheID(r *http.Request) (string, bool) {
	o := &rt.opts
	if o.Caller == nil && carriesCredentials(r) {
		return "", false
	}
	if requestNoStore(r) {
		return "", false // RFC 9111 5.2.1.5: nothing of it, or of its response, is stored
	}
	id, ok := rt.resourceID(r)
	if !ok {
		return "", false
	}
	if r.URL.RawQuery == "" && len(o.VaryHeaders) == 0 && o.Caller == nil && !rt.pathKeyed {
		return escapeID(id), true // the common case allocates nothing
	}
	v := url.Values{}
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return "", false
		}
		if len(o.Query) == 0 || o.Query[0] != "*" {
			for name := range q {
				if !slices.Contains(o.Query, name) {
					return "", false
				}
			}
		}
		if len(q) > 0 {
			v.Set("q", q.Encode())
		}
	}
	if rt.pathKeyed {
		v.Set("p", r.URL.EscapedPath())
	}
	for _, h := range o.VaryHeaders {
		vals := r.Header.Values(h)
		if h == "Host" && r.Host != "" { // net/http moves it out of the header map
			vals = []string{r.Host}
		}
		if len(vals) > 0 {
			v["h."+h] = vals
		}
	}
	if o.Caller != nil {
		c, ok := o.Caller(r)
		if !ok {
			return "", false
		}
		v.Set("c", c)
	}
	if len(v) == 0 {
		return escapeID(id), true
	}
	return escapeID(id) + variantSep + v.Encode(), true
}

// carriesCredentials reports whether r has an Authorization or Cookie
// header line, whatever its value: a handler may read any of the lines
// (r.Cookies reads them all), so an empty first line hides nothing.
func carriesCredentials(r *http.Request) bool {
	return len(r.Header.Values("Authorization")) > 0 || len(r.Header.Values("Cookie")) > 0
}

// varyAllowed reports whether every header a response varies on is part
// of the key.
func (rt *route) varyAllowed(h http.Header) bool {
	for _, line := range h.Values("Vary") {
		for _, f := range strings.Split(line, ",") {
			f = http.CanonicalHeaderKey(strings.TrimSpace(f))
			switch {
			case f == "":
			case f == "*":
				return false
			case slices.Contains(rt.opts.VaryHeaders, f):
			case rt.opts.Caller != nil && (f == "Authorization" || f == "Cookie"):
			default:
				return false
			}
		}
	}
	return true
}

// requestNoStore reports whether r's Cache-Control carries no-store. (A
// request's no-cache and max-age=0 are not honoured: any client could
// otherwise make every request of a resource a load of the database.)
func requestNoStore(r *http.Request) bool { return cacheControlHas(r.Header, "no-store") }
