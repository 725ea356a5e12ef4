package httpcache

import (
	"fmt"
	"net/http"
	"slices"
	"time"
)

// DefaultMaxBodyBytes is the largest body cached when
// [Options.MaxBodyBytes] is zero.
const DefaultMaxBodyBytes = 1 << 20

// Options configure one route, like the decorator's arguments. The zero
// value of every field is its documented default.
type Options struct {
	// Prefix is the key prefix (key_prefix): a route that caches keeps its
	// responses in the [tiered.Group] of that name, under the key
	// Prefix:ID; a write route invalidates the key Prefix:ID of the
	// resource it changes. Required on a route that caches; two routes
	// that cache cannot share one.
	Prefix string
	// ID names the path wildcard that identifies the resource
	// (resource_id_name): "post_id" for "/posts/{post_id}". Required with
	// Prefix unless IDFunc is set.
	ID string
	// IDFunc computes the resource's id from the request instead; false
	// means the request is not cached (or, on a write, that there is no
	// resource key to invalidate).
	IDFunc func(r *http.Request) (string, bool)

	// Caller keys cached responses by caller too, for responses that
	// depend on who asks: its result is part of the key, and requests
	// carrying Authorization or Cookie are cached only with it (without
	// it they bypass the cache). False means the request bypasses the
	// cache. Default: responses are shared by every caller.
	Caller func(r *http.Request) (string, bool)
	// Query names the query parameters that are part of the key: a
	// request carrying another one bypasses the cache (the response might
	// depend on it). "*" keys by every parameter. Default: none, so a
	// request with a query string bypasses the cache.
	Query []string
	// VaryHeaders names the request headers that are part of the key; a
	// response may say Vary on them (and, with Caller, on Authorization
	// and Cookie). A response that varies on another header is not cached.
	// "Host" keys by the request's host: a pattern without a host matches
	// every host, and its responses are otherwise shared by all of them.
	VaryHeaders []string

	// TTL is how long a response stays cached (jittered by the cache).
	// Default: the cache's TTL.
	TTL time.Duration
	// StaleIfError keeps a cached response for this long past its TTL and
	// serves it (X-Cache: STALE) instead of the handler's answer when the
	// refill of the expired response answers 5xx or passes the cache's
	// LoadTimeout: RFC 5861's stale-if-error for the route. It is the
	// FailSafe window of the route's group ([tiered.GroupOptions]), with
	// its default throttle ([tiered.DefaultFailSafeThrottle], 5s): after a
	// failed refill, no process of the fleet runs the handler for that
	// resource again for the throttle, and each request meanwhile gets the
	// stale response. Any other uncacheable refill (a 404, a response with
	// Set-Cookie or no-store) means the resource no longer has a cacheable
	// response: the stale copy is dropped and the handler's answer goes to
	// the client. Only an expired response is served stale, never one a
	// write or a tag invalidated. The handler's own Cache-Control
	// stale-if-error is not read. Default: 0, off.
	StaleIfError time.Duration
	// RevalidateTimeout, with StaleIfError, bounds how long a request
	// waits for the refill of an expired response: past it, the stale
	// response is served at once while the handler finishes in the
	// background and refills the cache (RFC 5861's stale-while-revalidate,
	// with StaleIfError as its window). Default: 0, wait for the refill.
	RevalidateTimeout time.Duration
	// Statuses are the statuses that are cached. Default: 200 only. 206
	// and 304 answer one request only and are refused.
	Statuses []int
	// MaxBodyBytes bounds the body of a cached response; larger ones are
	// served but not cached. Default: 1 MiB.
	MaxBodyBytes int
	// StoreHeaders names response headers a cached response keeps besides
	// the content headers (Content-Type, Content-Encoding,
	// Content-Language, Content-Disposition, Content-Location,
	// Content-Security-Policy, Cache-Control, ETag, Expires, Last-Modified,
	// Link, Location, Vary, X-Content-Type-Options) and those a status
	// needs (Allow, Retry-After, WWW-Authenticate), such as
	// "X-Total-Count". Never Set-Cookie or Set-Cookie2, a hop-by-hop
	// header (Connection, Keep-Alive, Proxy-Connection, Proxy-Authenticate,
	// Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade) or
	// Date, which belong to one response;
	// never Age, which a hit computes (the handler's Age is counted in it).
	StoreHeaders []string
	// KeepCacheControl sends the Cache-Control header of a response the
	// cache stores as the handler wrote it. Default (false): such a
	// response goes out, on the miss that stored it and on every hit, with
	// "Cache-Control: private, no-cache" instead, so that no shared cache
	// (a CDN, a proxy) keeps it and a browser asks again each time (a
	// conditional request the cache answers with 304 when the handler set
	// an ETag or Last-Modified): a write on any process of the fleet
	// invalidates the response here, but could not reach those copies.
	// Set it when the handler's own freshness (max-age, s-maxage) is
	// meant, staleness for that long included. Responses the cache does
	// not store (X-Cache BYPASS) always keep the handler's header.
	KeepCacheControl bool

	// ExtraKeys are further resources a write invalidates
	// (to_invalidate_extra): key prefix -> id template, such as
	// "user_posts": "{user_id}" or "recent_posts": "global". Every
	// variant of the resource (its query strings, callers) goes too when
	// the route caching that prefix is registered on the same Middleware.
	ExtraKeys map[string]string
	// ExtraPatterns are Redis glob patterns over keys a write invalidates
	// (pattern_to_invalidate_extra), such as "user_posts:{user_id}|*".
	// Substituted values are escaped: an id of "*" matches one id.
	ExtraPatterns []string
	// Supplied names the values a write's handler supplies with
	// [SetValues] (the post's owner, its old category), for the templates
	// of ExtraKeys and ExtraPatterns. Every placeholder of a template must
	// be a path wildcard of the route or a supplied name.
	Supplied []string
	// Tags are tag templates a route that caches (GET or HEAD) gives each
	// response it stores, such as "user:{user_id}" on the routes of a
	// user's profile, posts and feed; their {name} placeholders, as in
	// ExtraKeys, name the route's path wildcards. At most tiered.MaxTags.
	// InvalidateTags are tag templates a write invalidates, over its path
	// wildcards and Supplied names (a name with several values yields one
	// tag per value), through [tiered.Cache.InvalidateTags]: every
	// response tagged so goes, whatever its route, in O(1) Redis work.
	// Substituted values are escaped as ids in keys are ("%" and "|"), so
	// a value cannot forge another template's tag. Templates are checked
	// when the route is registered: Handle and Wrap refuse an empty one, a
	// placeholder that names no wildcard (or Supplied name), Tags on a
	// route that does not cache, and InvalidateTags on one that does not
	// write. A template a request lacks a value for (or whose values make
	// more than 1024 combinations) is left out, logged at Error and counted
	// in Stats.MissingValues; a response is then stored without that tag.
	// Default: none.
	Tags           []string
	InvalidateTags []string
	// SkipInvalidateOn5xx keeps the cache as it is when a write answers
	// 5xx or panics. Default: invalidate, since the write may have
	// committed before it failed.
	SkipInvalidateOn5xx bool
}

// validate checks o against the route p and fills in defaults.
func (o Options) validate(p pattern) (Options, error) {
	if !p.reads() && !p.writes() {
		return o, fmt.Errorf("method %s is neither cached nor invalidating", p.method)
	}
	if p.reads() && !p.writes() && (len(o.ExtraKeys) > 0 || len(o.ExtraPatterns) > 0 || len(o.Supplied) > 0) {
		return o, fmt.Errorf("extra keys, patterns and supplied values need a write method")
	}
	if p.reads() && o.Prefix == "" {
		return o, fmt.Errorf("a route that caches needs a Prefix")
	}
	if o.Prefix != "" && o.ID == "" && o.IDFunc == nil && (p.reads() || len(p.wildcards) > 0) {
		return o, fmt.Errorf("the Prefix %q needs an ID (a path wildcard) or an IDFunc", o.Prefix)
	}
	if o.ID != "" && !slices.Contains(p.wildcards, o.ID) {
		return o, fmt.Errorf("ID %q is not a wildcard of the route (wildcards: %v)", o.ID, p.wildcards)
	}
	if o.ID != "" && o.IDFunc != nil {
		return o, fmt.Errorf("set ID or IDFunc, not both")
	}
	if o.TTL < 0 || o.MaxBodyBytes < 0 {
		return o, fmt.Errorf("negative TTL or MaxBodyBytes")
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if len(o.Statuses) == 0 {
		o.Statuses = []int{http.StatusOK}
	}
	for _, s := range o.Statuses {
		if s < 200 || s > 599 || s == http.StatusPartialContent || s == http.StatusNotModified {
			return o, fmt.Errorf("status %d cannot be cached", s)
		}
	}
	for _, q := range o.Query {
		if q == "" || q == "*" && len(o.Query) > 1 {
			return o, fmt.Errorf("option Query %q: empty name, or \"*\" with other names", o.Query)
		}
	}
	vary := make([]string, len(o.VaryHeaders))
	for i, h := range o.VaryHeaders {
		if h == "" {
			return o, fmt.Errorf("empty VaryHeaders name")
		}
		vary[i] = http.CanonicalHeaderKey(h)
	}
	o.VaryHeaders = vary
	store := make([]string, len(o.StoreHeaders))
	for i, h := range o.StoreHeaders {
		store[i] = http.CanonicalHeaderKey(h)
		if h == "" || slices.Contains(unstorable, store[i]) {
			return o, fmt.Errorf("StoreHeaders: %q cannot be stored", h)
		}
	}
	o.StoreHeaders = store
	for _, n := range o.Supplied {
		if !isIdent(n) || slices.Contains(p.wildcards, n) {
			return o, fmt.Errorf("supplied value %q: not a name, or a wildcard of the route already", n)
		}
	}
	return o, nil
}

// variants reports whether a route keyed by o keeps several keys per
// resource (query strings, callers, header values); a route keyed by its
// path too keeps several whatever o says (route.pathKeyed).
func (o Options) variants() bool {
	return len(o.Query) > 0 || o.Caller != nil || len(o.VaryHeaders) > 0
}

// unstorable are the response headers StoreHeaders refuses: they belong to
// one response (cookies, the connection's own headers, its Date).
var unstorable = []string{
	"Set-Cookie", "Set-Cookie2", "Connection", "Keep-Alive", "Proxy-Connection",
	"Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding",
	"Upgrade", "Date",
}
