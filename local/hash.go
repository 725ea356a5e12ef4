package local

import (
	"hash/maphash"
	"math/bits"
)

// The Ristretto key of a key is the hash of its prefix, mixed, XORed with
// the hash of its suffix, where Options.Split puts the boundary. A Prefix
// carries its mixed hash, so that a hit hashes only the suffix: one
// maphash of a short string (the runtime's own string hash, a few ns),
// where streaming two parts through a streaming hash costs about 25 ns.
// The seed is drawn once per process: the L1 is never shared between
// processes, and a random seed keeps crafted keys from colliding on purpose.
var seed = maphash.MakeSeed()

// Prefix is a key prefix with its hash computed once, for
// [Cache.LookupPrefix]. Make it with [Cache.Prefix]; the zero Prefix is the
// empty prefix. A Prefix is a small immutable value, safe to share.
type Prefix struct {
	s string
	h uint64
}

// String returns the prefix.
func (p Prefix) String() string { return p.s }

// prefixHash is the mixed hash of a prefix: a multiply and a rotation, so
// that a string hashes differently as a prefix and as a suffix. The empty
// prefix hashes to 0: a key without a prefix hashes to its own maphash.
func prefixHash(prefix string) uint64 {
	if prefix == "" {
		return 0
	}
	return bits.RotateLeft64(maphash.String(seed, prefix)*0x9E3779B97F4A7C15, 31)
}

func pairHash(p Prefix, suffix string) uint64 { return p.h ^ maphash.String(seed, suffix) }

// split returns where key's prefix ends, by Options.Split (clamped to the
// key); 0 without it.
func (c *Cache[V]) split(key string) int {
	if c.splitFn == nil {
		return 0
	}
	return min(max(c.splitFn(key), 0), len(key))
}

// keyHash is the Ristretto key of a whole key.
func (c *Cache[V]) keyHash(key string) uint64 {
	if m := c.forced.Load(); m != nil {
		if h, ok := (*m)[key]; ok {
			return h
		}
	}
	i := c.split(key)
	return pairHash(Prefix{h: prefixHash(key[:i])}, key[i:])
}
