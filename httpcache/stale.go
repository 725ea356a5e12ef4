package httpcache

import (
	"fmt"
	"net/http"

	"github.com/tiercache/tiercache/tiered"
)

// stale is the X-Cache header of a stale response served by StaleIfError or
// RevalidateTimeout.
const stale = "STALE"

// groupOptions are the options of the group that keeps the route's
// responses. StaleIfError maps onto the group's FailSafe window and
// RevalidateTimeout onto its LoadSoftTimeout; the throttle is the group's
// default (tiered.DefaultFailSafeThrottle): after a failed refill, the
// fleet serves the stale response without running the handler for that
// long.
func (o Options) groupOptions() tiered.GroupOptions {
	return tiered.GroupOptions{
		TTL: o.TTL, Codec: entryCodec{}, Tags: entryTags,
		FailSafe: o.StaleIfError, LoadSoftTimeout: o.RevalidateTimeout,
	}
}

// errUpstream is the refill error of a response that answered 5xx: with
// StaleIfError the stale response is served instead.
type errUpstream struct{ status int }

func (e errUpstream) Error() string {
	return fmt.Sprintf("httpcache: the handler answered %d", e.status)
}

// Unwrap makes an upstream error an uncacheable one too.
func (e errUpstream) Unwrap() error { return errUncacheable }

// refillError is what the loader returns for an uncacheable response rec.
// Without StaleIfError, errUncacheable. With it, a 5xx is a failure (the
// stale response is served); any other uncacheable answer (a 404, a
// response with Set-Cookie or no-store) says the resource no longer has a
// cacheable response: it is a "not found" to the cache, which then drops
// the stale copy rather than serve it.
func (o Options) refillError(rec *recorder) error {
	switch {
	case o.StaleIfError <= 0:
		return errUncacheable
	case rec.status >= http.StatusInternalServerError:
		return errUpstream{rec.status}
	}
	return fmt.Errorf("%w: %w", errUncacheable, tiered.ErrNotFound)
}
