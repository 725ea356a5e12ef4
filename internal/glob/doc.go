// Package glob matches keys against glob-style patterns exactly as Redis 7.0
// does for KEYS and SCAN ... MATCH, and escapes strings so that they can be
// put into such patterns as literals.
//
// The semantics are those of Redis 7.0's stringmatchlen (src/util.c), byte by
// byte (not rune by rune), including its edges:
//
//   - `*` matches any run of bytes and `?` any single byte.
//   - `[...]` is a class of single bytes; `[^...]` negates it. Inside a class,
//     `\` escapes the next byte and `a-z` is a range; a reversed range such as
//     `[z-a]` means `[a-z]`. A range's end may be `]` or `\`: `[a-]x]` is the
//     range from `]` to `a` plus `x`. `[]` matches nothing and `[^]` any byte.
//   - Range ends are compared as C's signed char (x86-64, the platform Redis is
//     built for most often), so a byte of 0x80 or more sorts below NUL:
//     `[a-\xff]` is the range from 0xff (-1) to 'a' and does not match 'b'.
//     Redis built where char is unsigned (arm64) differs here.
//   - An unterminated class (`[abc` at the end of the pattern) is a class of
//     the bytes given so far; `[` alone matches nothing and `[^` any byte.
//   - `\` outside a class makes the next byte literal; a trailing `\` matches a
//     backslash.
//   - The empty string matches only the empty pattern and the single `*`:
//     stringmatchlen itself never matches an empty string against `*`, but
//     KEYS and SCAN skip matching for the one-byte pattern `*`, so `**` does not
//     match the empty key while `*` does. [Match] follows KEYS and SCAN.
//   - Redis gives up (no match) when a match would need more than 1000 nested
//     levels of `*` (its guard against abusive patterns); so does [Match]. A
//     run of adjacent stars counts once, as in Redis.
//
// [Match] runs in O(len(pattern)·len(s)) time and constant space: it never
// recurses, and never panics on any input. [Compile] precompiles a pattern
// into a [Matcher] for matching many keys (in glob_bench_test.go, 1.5 to 5
// times faster than [Match] per key on typical patterns, and far faster when
// a '*' is followed by literal bytes in a long key). [Escape] turns any byte string into
// a pattern that matches only that string, and [LiteralPrefix] gives the
// literal prefix that every match of a pattern starts with (what a SCAN can
// be narrowed to).
package glob
