package bus

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// NodeID identifies one process (one cache) on the bus.
type NodeID [16]byte

// NewNodeID returns a random NodeID.
func NewNodeID() NodeID {
	var id NodeID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails on supported platforms
	return id
}

// String returns the ID in hex.
func (id NodeID) String() string { return hex.EncodeToString(id[:]) }

// Kind says what a [Message] carries.
type Kind uint8

// The kinds of message.
const (
	KindKeys      Kind = 1 // Items are keys to invalidate
	KindPatterns  Kind = 2 // Items are glob patterns to invalidate
	KindHeartbeat Kind = 3 // no items; Seq is the sender's last sequence number
	KindFlush     Kind = 4 // no items; invalidate everything
	// KindTags: Items are tag invalidations, each the tag's stamp (Redis
	// microseconds, decimal), ":", then the tag's name. Receivers older
	// than this kind drop the message as malformed.
	KindTags Kind = 5
)

// Message is one invalidation (or heartbeat) on the bus.
type Message struct {
	Kind   Kind
	Origin NodeID
	// Seq numbers an origin's messages from 1 with no gaps; a heartbeat
	// carries the last number its sender assigned.
	Seq   uint64
	Sent  int64    // unix nanoseconds at the sender, for lag measurement
	Items []string // keys or patterns
}

// The wire versions: version 1 is a message without authentication;
// version 2 is the same layout followed by an HMAC-SHA256 of everything
// before it ([EncodeSigned]). A reader without keys reads both.
const (
	wireVersion       = 1
	wireVersionSigned = 2
)

// MACSize is the length of the HMAC-SHA256 that ends a signed message.
const MACSize = sha256.Size

// headerSize is the fixed part of an encoded message.
const headerSize = 1 + 1 + 16 + 8 + 8

// ErrMalformed is returned (wrapped) by [Decode] for bytes that are not a
// message of a version this release reads.
var ErrMalformed = errors.New("bus: malformed message")

// Encode returns the wire form of m.
func Encode(m Message) []byte {
	n := headerSize + binary.MaxVarintLen64
	for _, it := range m.Items {
		n += binary.MaxVarintLen64 + len(it)
	}
	b := make([]byte, headerSize, n)
	b[0] = wireVersion
	b[1] = byte(m.Kind)
	copy(b[2:18], m.Origin[:])
	binary.BigEndian.PutUint64(b[18:], m.Seq)
	binary.BigEndian.PutUint64(b[26:], uint64(m.Sent))
	b = binary.AppendUvarint(b, uint64(len(m.Items)))
	for _, it := range m.Items {
		b = binary.AppendUvarint(b, uint64(len(it)))
		b = append(b, it...)
	}
	return b
}

// EncodeSigned returns the signed wire form of m: Encode's bytes with the
// version byte 2, followed by HMAC-SHA256(key, those bytes).
func EncodeSigned(m Message, key []byte) []byte {
	b := Encode(m)
	b[0] = wireVersionSigned
	return appendMAC(b, key)
}

func appendMAC(b, key []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(b)
}

// Verify reports whether b is a signed message (version 2) whose MAC is
// the HMAC-SHA256 of the bytes before it under one of keys. It says nothing
// of whether the rest of b decodes. It compares MACs in constant time.
func Verify(b []byte, keys [][]byte) bool {
	if len(b) < headerSize+MACSize || b[0] != wireVersionSigned {
		return false
	}
	body, mac := b[:len(b)-MACSize], b[len(b)-MACSize:]
	for _, k := range keys {
		h := hmac.New(sha256.New, k)
		h.Write(body)
		if hmac.Equal(h.Sum(nil), mac) {
			return true
		}
	}
	return false
}

// Decode parses a message of either version; it does not check a signed
// message's MAC (see [Verify]). It never panics: anything malformed is an
// error wrapping [ErrMalformed].
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) > 0 && b[0] == wireVersionSigned {
		if len(b) < headerSize+MACSize {
			return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
		}
		b = b[:len(b)-MACSize]
	} else if len(b) > 0 && b[0] != wireVersion {
		return m, fmt.Errorf("%w: version %d", ErrMalformed, b[0])
	}
	if len(b) < headerSize {
		return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	m.Kind = Kind(b[1])
	if m.Kind < KindKeys || m.Kind > KindTags {
		return m, fmt.Errorf("%w: kind %d", ErrMalformed, b[1])
	}
	copy(m.Origin[:], b[2:18])
	m.Seq = binary.BigEndian.Uint64(b[18:])
	m.Sent = int64(binary.BigEndian.Uint64(b[26:]))
	rest := b[headerSize:]
	count, n := binary.Uvarint(rest)
	if n <= 0 || count > uint64(len(rest)) {
		return m, fmt.Errorf("%w: item count", ErrMalformed)
	}
	rest = rest[n:]
	m.Items = make([]string, 0, count)
	for i := uint64(0); i < count; i++ {
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return m, fmt.Errorf("%w: item %d", ErrMalformed, i)
		}
		m.Items = append(m.Items, string(rest[n:n+int(l)]))
		rest = rest[n+int(l):]
	}
	if len(rest) != 0 {
		return m, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	if (m.Kind == KindHeartbeat || m.Kind == KindFlush) && len(m.Items) != 0 {
		return m, fmt.Errorf("%w: %v with items", ErrMalformed, m.Kind)
	}
	return m, nil
}

// overhead is the most an encoded message adds to its items' bytes: the
// header, the item count and a signed message's MAC.
const overhead = headerSize + binary.MaxVarintLen64 + MACSize

// split cuts items into batches whose encoded messages (signed or not) stay
// within max bytes; an item larger than that travels alone (the publisher
// sends a flush in its place).
func split(items []string, max int) [][]string {
	var out [][]string
	size := overhead
	start := 0
	for i, it := range items {
		n := binary.MaxVarintLen64 + len(it)
		if i > start && size+n > max {
			out = append(out, items[start:i])
			start, size = i, overhead
		}
		size += n
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}
