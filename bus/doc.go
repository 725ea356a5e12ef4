// Package bus is a building block of package tiered, not an API to use:
// tiered.Cache runs one [Bus] to send and receive its invalidations. Use
// package tiered (github.com/tiercache/tiercache/tiered); this package's
// API may change in any release. Other programs that need the wire format
// read [Message], [Encode] and [Decode].
//
// The bus carries invalidations between the processes that share one
// namespace, over Redis pub/sub, and tells each process when it may have
// missed some.
//
// Redis pub/sub is at-most-once: a message published while a subscriber is
// reconnecting is lost. The bus therefore runs its own receive loop, not
// PubSub.Channel, which hides errors and drops messages: a blocking
// PubSub.Receive without a deadline (a read timeout could cut a large
// message in two), beside a watcher goroutine that pings when nothing
// arrived for Options.PingInterval and closes the subscription when the
// ping goes unanswered or this node's own heartbeats stop. ReceiveTimeout
// bounds only the wait for a subscription's confirmation (and the earlier
// timed loop that tests restore). The bus reports every way a message can
// go missing to its [Handler]: a receive error, a failed or unanswered
// ping, a server-side unsubscribe, a gap in a sender's sequence numbers, a
// heartbeat that carries a sequence number this node never received, and
// the absence of this node's own heartbeats. The handler (the cache)
// flushes its L1 when the subscription is lost and again when it is back.
//
// On a Redis Cluster the bus works with plain pub/sub (PUBLISH reaches the
// subscribers of every node) or, with Options.Sharded, with sharded pub/sub
// (SPUBLISH and SSUBSCRIBE, Redis 7.0+), where the server ends a
// subscription when the channel's slot fails over or moves: a loss like
// any other. After every loss on a cluster client the bus has the client
// reload the cluster's layout before it subscribes again.
//
// Every message carries a version byte, the origin node's random 128-bit ID,
// a per-origin sequence number, the time it was sent, and keys or patterns;
// with Options.Keys it ends with an HMAC-SHA256 (version 2), and messages
// not signed under one of the keys are dropped. Publishing is serialized
// per node and assigns the sequence numbers, so one sender's messages
// arrive in order. Sequence numbers are compared modulo 2^64 within a
// window, so a message with a made-up number costs one flush and switches
// no check off. Messages larger than Options.MaxMessageBytes are neither
// sent nor read.
package bus
