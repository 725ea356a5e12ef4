package remote

import "strconv"

// cmdArgs builds the arguments of a script call without an allocation per
// argument: their bytes go to one buffer, each argument is a bytesArg
// over its part, and argv points to it. go-redis writes an
// encoding.BinaryMarshaler as its bytes, and boxing a pointer allocates
// nothing where boxing a string or an integer allocates. The slices start
// in arrays of the struct that embeds cmdArgs (see fillArgs), so that the
// whole call is one allocation; past their size they grow as slices do,
// and the arguments already made keep the bytes they point to.
type cmdArgs struct {
	argv []any
	args []bytesArg
	buf  []byte
}

// script begins argv as an EVALSHA of sha with nkeys keys.
func (a *cmdArgs) script(sha any, nkeys int) {
	a.argv = append(a.argv[:0], "evalsha", sha, nkeys)
}

// bytes adds the argument b, which it does not copy.
func (a *cmdArgs) bytes(b []byte) {
	a.args = append(a.args, b)
	a.argv = append(a.argv, &a.args[len(a.args)-1])
}

// mark returns where the next argument's bytes begin in the buffer.
func (a *cmdArgs) mark() int { return len(a.buf) }

// end adds the argument made of the bytes appended since mark m.
func (a *cmdArgs) end(m int) { a.bytes(a.buf[m:len(a.buf):len(a.buf)]) }

// key adds the argument prefix+key.
func (a *cmdArgs) key(prefix, key string) {
	m := a.mark()
	a.buf = append(append(a.buf, prefix...), key...)
	a.end(m)
}

// int adds n, in decimal.
func (a *cmdArgs) int(n int64) {
	m := a.mark()
	a.buf = strconv.AppendInt(a.buf, n, 10)
	a.end(m)
}

// bytesArg is a command argument that go-redis writes as its bytes (see
// cmdArgs); String keeps a command readable where it is printed (errors,
// hooks), and is what a cluster client hashes when the argument is a key.
type bytesArg []byte

func (b *bytesArg) MarshalBinary() ([]byte, error) { return *b, nil }
func (b *bytesArg) String() string                 { return string(*b) }
