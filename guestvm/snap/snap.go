// Package snap is the little-endian encoding every guestvm component uses to
// save, restore and digest its state. One encoding serves all three: a digest
// is a hash of exactly what a snapshot would contain, so two machines with
// equal digests restore to equal state.
package snap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Writer appends state to an io.Writer (a buffer for snapshots, a hash for
// digests). The first write error is kept and reported by Err; later writes
// are no-ops, so Save methods need not check errors themselves.
type Writer struct {
	w   io.Writer
	buf [8]byte
	err error
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Err returns the first error met while writing.
func (w *Writer) Err() error { return w.err }

func (w *Writer) write(p []byte) {
	if w.err != nil {
		return
	}
	_, w.err = w.w.Write(p)
}

// U8 writes one byte.
func (w *Writer) U8(v uint8) { w.buf[0] = v; w.write(w.buf[:1]) }

// Bool writes a bool as one byte.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// U16 writes a little-endian uint16.
func (w *Writer) U16(v uint16) { binary.LittleEndian.PutUint16(w.buf[:], v); w.write(w.buf[:2]) }

// U32 writes a little-endian uint32.
func (w *Writer) U32(v uint32) { binary.LittleEndian.PutUint32(w.buf[:], v); w.write(w.buf[:4]) }

// U64 writes a little-endian uint64.
func (w *Writer) U64(v uint64) { binary.LittleEndian.PutUint64(w.buf[:], v); w.write(w.buf[:8]) }

// Bytes writes a length-prefixed byte string.
func (w *Writer) Bytes(p []byte) { w.U64(uint64(len(p))); w.write(p) }

// Raw writes p without a length; the reader must know its size.
func (w *Writer) Raw(p []byte) { w.write(p) }

// Tag writes a section name so a restore from a mismatched layout fails
// loudly instead of silently misreading.
func (w *Writer) Tag(name string) { w.Bytes([]byte(name)) }

// Reader reads what a Writer wrote. The first error (short input, bad tag,
// oversized length) sticks; later reads return zeros.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// ErrShort means the snapshot ended early.
var ErrShort = errors.New("snapshot truncated")

// Err returns the first error met while reading.
func (r *Reader) Err() error { return r.err }

// Fail records err (if none is recorded yet); components use it to reject
// values that are well-formed but impossible (a register index out of range).
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Remaining reports how many bytes are left unread.
func (r *Reader) Remaining() int { return len(r.b) }

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = ErrShort
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

// Bool reads a bool.
func (r *Reader) Bool() bool { return r.U8() != 0 }

// U16 reads a little-endian uint16.
func (r *Reader) U16() uint16 {
	if p := r.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

// U32 reads a little-endian uint32.
func (r *Reader) U32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

// U64 reads a little-endian uint64.
func (r *Reader) U64() uint64 {
	if p := r.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// Bytes reads a length-prefixed byte string of at most max bytes. The result
// is a copy.
func (r *Reader) Bytes(max int) []byte {
	n := r.U64()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.Fail(fmt.Errorf("snapshot field of %d bytes exceeds limit %d", n, max))
		return nil
	}
	p := r.take(int(n))
	if p == nil {
		return nil
	}
	return append([]byte(nil), p...)
}

// Raw reads exactly len(dst) bytes into dst.
func (r *Reader) Raw(dst []byte) {
	if p := r.take(len(dst)); p != nil {
		copy(dst, p)
	}
}

// Tag reads a section name and fails unless it equals name.
func (r *Reader) Tag(name string) {
	got := r.Bytes(64)
	if r.err == nil && string(got) != name {
		r.Fail(fmt.Errorf("snapshot section %q where %q was expected", got, name))
	}
}
