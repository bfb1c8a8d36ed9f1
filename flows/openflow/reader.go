package openflow

import "encoding/binary"

// reader decodes big-endian fields from a byte slice with a sticky error: the
// first read past the end records ErrMalformed and every later read returns
// zero values, so decoders check err once at the end and never index out of
// range.
type reader struct {
	b   []byte
	off int
	err error
	ctx string // what is being decoded, for the error
}

func newReader(b []byte, ctx string) *reader { return &reader{b: b, ctx: ctx} }

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = malformed("%s: need %d bytes at offset %d, have %d", r.ctx, n, r.off, len(r.b)-r.off)
		return false
	}
	return true
}

func (r *reader) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

// bytes returns the next n bytes (a sub-slice, not a copy).
func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// copyBytes returns a copy of the next n bytes, for values kept after decoding.
func (r *reader) copyBytes(n int) []byte {
	v := r.bytes(n)
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}

// skip passes over n bytes of padding.
func (r *reader) skip(n int) { r.bytes(n) }

// rest returns everything not yet read.
func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b[r.off:]
	r.off = len(r.b)
	return v
}

func (r *reader) remaining() int {
	if r.err != nil {
		return 0
	}
	return len(r.b) - r.off
}

// done returns the sticky error, or ErrMalformed if bytes are left over.
func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.err = malformed("%s: %d trailing bytes", r.ctx, len(r.b)-r.off)
	}
	return r.err
}

// pad8 is the padding that rounds n up to a multiple of 8.
func pad8(n int) int { return (8 - n%8) % 8 }

// appendZeros appends n zero bytes.
func appendZeros(b []byte, n int) []byte {
	for range n {
		b = append(b, 0)
	}
	return b
}

// appendIDRequest encodes the body that requests naming one port, group,
// meter or queue set share: a 32-bit id and 4 bytes of padding.
func appendIDRequest(b []byte, id uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, id)
	return append(b, 0, 0, 0, 0)
}

// decodeIDRequest decodes what appendIDRequest encodes.
func decodeIDRequest(b []byte, what string, id *uint32) error {
	r := newReader(b, what)
	*id = r.u32()
	r.zeros(4)
	return r.done()
}
