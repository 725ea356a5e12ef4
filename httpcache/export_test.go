package httpcache

import "time"

// SetClock makes m read the time of stored entries and of their Age from
// now.
func SetClock(m *Middleware, now func() time.Time) { m.now = now }

// SetNoStoredTime makes m store entries without the time they were
// stored (true), as entries of format version 1 are, so that a test can
// show that Age comes from that time.
func SetNoStoredTime(m *Middleware, off bool) { m.noStoredTime = off }

// MarshalV1 encodes a response as format version 1 did, without the time
// it was stored: what a process of the previous release left in Redis.
func MarshalV1(status int, header map[string][]string, body []byte) []byte {
	b, _ := entryCodec{}.Marshal(entry{status: status, header: header, body: body})
	// Version 2 with a stored time of 0 is version 1 with one more byte.
	return append([]byte{entryVersionV1}, b[2:]...)
}
