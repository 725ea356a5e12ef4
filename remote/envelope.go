package remote

import (
	"encoding/binary"
	"time"
)

// Kind says what a stored envelope holds.
type Kind uint8

// The kinds of [Record]. Only KindValue, KindAbsent, KindLease and
// KindStale are ever written; the others describe what a read found.
const (
	// KindMiss: the key does not exist.
	KindMiss Kind = 0
	// KindValue: a cached value; Payload holds its encoding.
	KindValue Kind = 1
	// KindAbsent: a cached "not found" answer (negative caching).
	KindAbsent Kind = 2
	// KindLease: a node is loading the key; to every reader this is a miss.
	KindLease Kind = 3
	// KindStale: an invalidated value kept as a fallback for its group's
	// MaxStale window (see [Store.MarkStale]); Expire is the window's end,
	// Payload, Begin, Tags and LoadTime are the invalidated value's. To
	// every reader that does not opt into it, this is a miss. Releases
	// that predate it read it as KindForeign.
	KindStale Kind = 4
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
	case KindStale:
		return "stale"
	case KindForeign:
		return "foreign"
	case KindCorrupt:
		return "corrupt"
	}
	return "unknown"
}

// Envelope layout (all integers big-endian). Version 1:
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
// Version 2 (values and "not found" answers; leases stay version 1, which
// every release reads) inserts, after the expiry:
//
//	23     8    load begin: Redis TIME in microseconds when the load began
//	31     1    number of tags n (at most [MaxTags])
//	32     ...  n times: 1 byte length (1 to [MaxTagLen]), the tag's bytes
//	...    ...  payload
//
// Version 3 (stale values only, so that releases that predate them read
// them as KindForeign: a miss, left alone) is the version 1 header of kind
// stale, whose expiry is the end of the MaxStale window, followed by the
// whole version 2 envelope of the invalidated value:
//
//	0      23   header: magic, 3, kind 4, token, load time 0, window end
//	23     ...  the invalidated value's envelope (version 2, kind value)
//
// A lease (version 1) may carry such a stale envelope as its payload: the
// node that took the lease over a stale envelope keeps it there, so that
// the readers that find the lease serve it instead of waiting. Every
// release reads the lease as a lease; the ones that predate stale values
// ignore its payload.
//
// A version 1 value reads as having no tags and a load begin of 0 (before
// every tag invalidation: the first Group.Clear or Cache.Clear of its
// group removes it).
//
// The first 11 bytes identify one write: compare-and-set scripts compare
// them, so a fill succeeds only against the exact lease it took.
const (
	magic         = 0xC7
	version       = 1
	version2      = 2
	version3      = 3
	identityLen   = 11
	headerLen     = 23
	header2Len    = 32
	maxLoadMicros = 1<<32 - 1
)

// Limits of the tags one value carries (see [Record.Tags]).
const (
	// MaxTags is the most tags one value may carry.
	MaxTags = 32
	// MaxTagLen is the longest tag, in bytes.
	MaxTagLen = 128
)

// Record is one decoded envelope. Payload and Raw alias the bytes read from
// Redis; the caller owns them.
type Record struct {
	Kind     Kind
	Token    uint64        // identifies the write (or the lease)
	LoadTime time.Duration // how long the load that produced the value took (microsecond precision)
	Expire   int64         // logical expiry, unix milliseconds
	// Begin is when the load that produced the value began, in Redis TIME
	// microseconds (0: unknown, before every tag invalidation). A value is
	// valid only while none of its tags was invalidated at or after Begin.
	Begin int64
	// Tags are the value's tags (at most MaxTags of 1 to MaxTagLen bytes;
	// Encode does not check: callers validate).
	Tags    []string
	Payload []byte // the codec's encoding of the value (KindValue only)
	Raw     []byte // the whole stored string, for compare-and-delete
}

// encode returns the envelope of r (Raw is ignored): version 1 for a
// lease, version 2 otherwise.
func encode(r Record) []byte {
	n := headerLen
	if r.Kind != KindLease {
		n = header2Len
		for _, t := range r.Tags {
			n += 1 + len(t)
		}
	}
	b := make([]byte, n, n+len(r.Payload))
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
	if r.Kind != KindLease {
		b[1] = version2
		binary.BigEndian.PutUint64(b[23:], uint64(r.Begin))
		b[31] = byte(len(r.Tags))
		i := header2Len
		for _, t := range r.Tags {
			b[i] = byte(len(t))
			i += 1 + copy(b[i+1:], t)
		}
	}
	return append(b, r.Payload...)
}

func putHeader(b []byte, k Kind, token uint64) {
	b[0] = magic
	b[1] = version
	b[2] = byte(k)
	binary.BigEndian.PutUint64(b[3:], token)
}

// identity returns the bytes that identify one write of kind k, in the
// version encode writes for that kind.
func identity(k Kind, token uint64) string {
	var b [identityLen]byte
	putIdentity(&b, k, token)
	return string(b[:])
}

// putIdentity writes the identity of the write of kind k into b.
func putIdentity(b *[identityLen]byte, k Kind, token uint64) {
	putHeader(b[:], k, token)
	switch k {
	case KindLease:
	case KindStale:
		b[1] = version3
	default:
		b[1] = version2
	}
}

// recordIdentity returns the identity of the write r was decoded from.
func recordIdentity(r Record) string {
	if len(r.Raw) >= identityLen {
		return string(r.Raw[:identityLen])
	}
	return identity(r.Kind, r.Token)
}

// decode parses raw. It never fails: bytes that are not an envelope come back
// as KindCorrupt, a version it does not know as KindForeign.
func decode(raw []byte) Record {
	if len(raw) < 2 || raw[0] != magic {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	if raw[1] == version3 {
		return decodeStale(raw)
	}
	if raw[1] != version && raw[1] != version2 {
		return Record{Kind: KindForeign, Raw: raw}
	}
	if len(raw) < headerLen {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	k := Kind(raw[2])
	if k != KindValue && k != KindAbsent && k != KindLease {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	r := Record{
		Kind:     k,
		Token:    binary.BigEndian.Uint64(raw[3:]),
		LoadTime: time.Duration(binary.BigEndian.Uint32(raw[11:])) * time.Microsecond,
		Expire:   int64(binary.BigEndian.Uint64(raw[15:])),
		Payload:  raw[headerLen:],
		Raw:      raw,
	}
	if raw[1] == version {
		return r
	}
	if len(raw) < header2Len || raw[31] > MaxTags {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	r.Begin = int64(binary.BigEndian.Uint64(raw[23:]))
	i := header2Len
	if n := int(raw[31]); n > 0 {
		r.Tags = make([]string, n)
		for j := range n {
			if i >= len(raw) {
				return Record{Kind: KindCorrupt, Raw: raw}
			}
			l := int(raw[i])
			if l == 0 || l > MaxTagLen || i+1+l > len(raw) {
				return Record{Kind: KindCorrupt, Raw: raw}
			}
			r.Tags[j] = string(raw[i+1 : i+1+l])
			i += 1 + l
		}
	}
	r.Payload = raw[i:]
	return r
}

// Encode returns the envelope of r as a store writes it (Raw is ignored),
// so that a caller can remove exactly what it wrote with [Store.Discard].
func Encode(r Record) []byte { return encode(r) }

// decodeStale parses a version 3 envelope: a stale value, or KindForeign
// for a kind this release does not know in that version.
func decodeStale(raw []byte) Record {
	if len(raw) < headerLen {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	if Kind(raw[2]) != KindStale {
		return Record{Kind: KindForeign, Raw: raw}
	}
	// Only a version 2 value follows the header, as the protocol says:
	// checking it first also keeps nested stale headers (corrupt bytes)
	// from recursing without bound.
	if len(raw) < headerLen+2 || raw[headerLen] != magic || raw[headerLen+1] != version2 {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	in := decode(raw[headerLen:])
	if in.Kind != KindValue {
		return Record{Kind: KindCorrupt, Raw: raw}
	}
	return Record{
		Kind: KindStale, Token: binary.BigEndian.Uint64(raw[3:]),
		Expire: int64(binary.BigEndian.Uint64(raw[15:])), LoadTime: in.LoadTime,
		Begin: in.Begin, Tags: in.Tags, Payload: in.Payload, Raw: raw,
	}
}

// staleHeader returns the header of a stale envelope (see [decode]) with
// token and the window's end (unix ms); the invalidated value's envelope
// follows it.
func staleHeader(token uint64, end int64) []byte {
	b := make([]byte, headerLen)
	putHeader(b, KindStale, token)
	b[1] = version3
	binary.BigEndian.PutUint64(b[15:], uint64(end))
	return b
}

// EncodeStale returns the stale envelope that keeps the value envelope
// value (as Redis held it) until end (unix ms), as [Store.MarkStale]
// writes it.
func EncodeStale(token uint64, end int64, value []byte) []byte {
	return append(staleHeader(token, end), value...)
}

// StaleOf returns the stale value a lease carries (see [decode]): the
// lease taken over a stale envelope keeps it as its payload. ok is false
// for a record that is not a lease, and for a lease that carries none.
func (r Record) StaleOf() (stale Record, ok bool) {
	if r.Kind != KindLease || len(r.Payload) == 0 {
		return Record{}, false
	}
	s := decode(r.Payload)
	return s, s.Kind == KindStale
}
