// Package httpcache caches net/http responses in a [tiered.Cache] and
// invalidates them when a write changes the resource: a web framework's
// caching decorator (key prefix, resource id, expiration, extra keys and
// extra patterns to invalidate), done for net/http and every router built
// on it.
//
// A [Middleware] registers routes with their Go 1.22 [http.ServeMux]
// pattern ([Middleware.Handle], or [Middleware.Wrap] for other routers),
// so that every template is checked against the route's path wildcards at
// start-up: a template naming a value the route cannot supply is an error
// then, not a failed invalidation later.
//
//   - GET reads through the cache: a hit is served from this process's L1
//     (X-Cache: HIT-L1) or Redis (HIT-L2); a miss (MISS) runs the handler
//     once for all concurrent requests of the same key, in this process and
//     across processes (leases), and keeps the status, body and content
//     headers of a cacheable response. A response is not cacheable if its
//     status is not one of [Options.Statuses], it sets a cookie, says
//     Cache-Control no-store, no-cache or private, varies on a request
//     header the key does not include, or exceeds [Options.MaxBodyBytes];
//     concurrent requests that waited for it then run the handler
//     themselves. The run that fills the cache gets the request's values
//     but not its cancellation, bounded by the cache's LoadTimeout, and
//     none of its conditional or Range headers (a cached 200 answers those
//     through [http.ServeContent]); its own client gets the handler's
//     response in full, and hits get the content headers and
//     [Options.StoreHeaders]. A request the cache must not answer (Authorization or
//     Cookie without [Options.Caller], a query parameter the key does not
//     include) runs the handler (X-Cache: BYPASS), and so does a miss whose
//     response is not cacheable: BYPASS says that the next request runs the
//     handler again, where MISS says that the response is now stored.
//   - A response served from the cache (a hit, or a concurrent miss that
//     shares another request's run) carries Age: the seconds since its
//     handler ran (RFC 9111), whichever process stored it. Every response
//     the cache stores goes out with "Cache-Control: private, no-cache"
//     unless [Options.KeepCacheControl]: a write anywhere in the fleet
//     invalidates it here, but not in a CDN or a browser that kept it.
//   - HEAD is answered from a cached GET response (headers only); it never
//     stores anything and never invalidates. OPTIONS and other methods pass
//     through.
//   - POST, PUT, PATCH and DELETE run the handler, then invalidate the
//     resource's key, the extra keys and the extra patterns on every
//     process, before the response reaches the client: after a 2xx or 3xx,
//     and after a 5xx or a panic (the write may have committed) unless
//     [Options.SkipInvalidateOn5xx]; never after a 4xx. Values the route
//     does not carry (a post's owner, its old category) come from the
//     handler through [SetValues]; [Invalidate] and [InvalidatePattern] add
//     keys and patterns the templates do not name.
//
// When Redis is down, reads are served by the handler, and an invalidation
// that could not reach Redis is logged, counted ([Stats]) and retried in
// the background by the [tiered.Cache]; it never turns a committed write
// into an error response.
package httpcache
