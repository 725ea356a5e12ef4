package remote

import (
	"encoding/binary"
	"time"
)

// Kind says what a stored envelope holds.
type Kind uint8

// The kinds of [Record]. Only KindValue, KindAbsent and KindLease are ever
// written; the others describe what a read found.
const (
	// KindMiss: the key does not exist.
	KindMiss Kind = 0
	// KindValue: a cached value; Payload holds its encoding.
	KindValue Kind = 1
	// KindAbsent: a cached "not found" answer (negative caching).
	KindAbsent Kind = 2
	// KindLease: a node is loading the key; to every reader this is a miss.
	KindLease Kind = 3
	// KindForeign: an envelope of a version this release does not know (a
	// newer release wrote it during a rolling upgrade). Readers treat it as a
	// miss and leave it alone.
	KindForeign Kind = 254
	// KindCorrupt: bytes that are not an envelope. Readers treat it as a miss
	// and remove it with [Store.Discard].
	KindCorrupt Kind = 255
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindMiss:
		return "miss"
	case KindValue:
		return "value"
	case KindAbsent:
		return "absent"
	case KindLease:
		return "lease"
	case KindForeign:
		return "foreign"
	case KindCorrupt:
		return "corrupt"
	}
	return "unknown"
}

// Envelope layout, version 1 (all integers big-endian):
//
//	offset size field
//	0      1    magic (0xC7)
//	1      1    version (1)
//	2      1    kind
//	3      8    write token
//	11     4    load time in microseconds (saturating)
//	15     8    logical expiry, unix milliseconds
//	23     ...  payload
//
// The first 11 bytes identify one write: compare-and-set scripts compare
// them, so a fill succeeds only against the exact lease it took.
const (
	magic         = 0xC7
	version       = 1
	identityLen   = 11
	headerLen     = 23
	maxLoadMicros = 1<<32 - 1
)

// Record is one decoded envelope. Payload and Raw alias the bytes read from
// Redis; the caller owns them.
type Record struct {
	Kind     Kind
	Token    uint64        // identifies the write (or the lease)
	LoadTime time.Duration // how long the load that produced the value took (microsecond precision)
	Expire   int64         // logical expiry, unix milliseconds
	Payload  []byte        // the codec's encoding of the value (KindValue only)
	Raw      []byte        // the whole stored string, for compare-and-delete
}

// encode returns the envelope of r (Raw is ignored).
func encode(r Record) []byte {
	b := make([]byte, headerLen+len(r.Payload))
	putHeader(b, r.Kind, r.Token)
	us := r.LoadTime.Microseconds()
	if us < 0 {
		us = 0
	}
	if us > maxLoadMicros {
		us = maxLoadMicros
	}
	binary.BigEndian.PutUint32(b[11:], uint32(us))
	binary.BigEndian.PutUint64(b[15:], uint64(r.Expire))
	copy(b[headerLen:], r.Payload)
	return b
}

func putHeader(b []byte, k Kind, token uint64) {
	b[0] = magic
	b[1] = version
	b[2] = byte(k)
	binary.BigEndian.PutUint64(b[3:], token)
}

// identity returns the bytes that identify one write of kind k.
func identity(k Kind, token uint64) string {
	var b [identityLen]byte
	putHeader(b[:], k, token)
	return string(b[:])
}

// decode parses raw. It never fails: bytes that are not an envelope come back
// as KindCorrupt, a version it does not know as KindForeign.
func decode(raw []byte) Record {
	if len(raw) < 2 || raw[0] != magic {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	if raw[1] != version {
		return Record{Kind: KindForeign, Raw: raw}
	}
	if len(raw) < headerLen {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	k := Kind(raw[2])
	if k != KindValue && k != KindAbsent && k != KindLease {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	return Record{
		Kind:     k,
		Token:    binary.BigEndian.Uint64(raw[3:]),
		LoadTime: time.Duration(binary.BigEndian.Uint32(raw[11:])) * time.Microsecond,
		Expire:   int64(binary.BigEndian.Uint64(raw[15:])),
		Payload:  raw[headerLen:],
		Raw:      raw,
	}
}
