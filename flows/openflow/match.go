package openflow

import "encoding/binary"

// OXM classes.
const (
	OXMClassNXM0         uint16 = 0x0000 // Nicira extension fields, original set
	OXMClassNXM1         uint16 = 0x0001 // Nicira extension fields: registers, tunnel, conntrack, ...
	OXMClassOpenFlow     uint16 = 0x8000 // OpenFlow basic
	OXMClassPacketRegs   uint16 = 0x8001 // xreg0-7 (OF1.5 packet registers; OVS accepts them in OF1.3)
	OXMClassExperimenter uint16 = 0xffff
)

// OXM is one match field TLV. Value and Mask are in network byte order and of
// the field's width; Mask is nil when the field is not masked. Experimenter is
// used only with OXMClassExperimenter.
type OXM struct {
	Class        uint16
	Field        uint8
	Experimenter uint32
	Value        []byte
	Mask         []byte
}

// Match is ofp_match of type OFPMT_OXM: the fields in wire order.
type Match struct {
	Fields []OXM
}

const matchTypeOXM = 1

// Exact32 is the value m requires of the 32-bit field that f names (by its
// class, field and experimenter; f's value and mask do not matter), such as
// the in_port of a flow or the registers a packet-in reports; ok is false
// unless m matches that field exactly, without a mask.
func (m Match) Exact32(f OXM) (v uint32, ok bool) {
	for _, g := range m.Fields {
		if g.Class == f.Class && g.Field == f.Field && g.Experimenter == f.Experimenter && g.Mask == nil && len(g.Value) == 4 {
			return binary.BigEndian.Uint32(g.Value), true
		}
	}
	return 0, false
}

// appendMatch appends ofp_match with its padding to a multiple of 8.
func appendMatch(b []byte, m Match) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, matchTypeOXM)
	b = append(b, 0, 0) // length, set below
	for _, f := range m.Fields {
		b = appendOXM(b, f)
	}
	n := len(b) - start
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return appendZeros(b, pad8(n))
}

func appendOXM(b []byte, f OXM) []byte {
	hasMask := uint8(0)
	n := len(f.Value) + len(f.Mask)
	if f.Mask != nil {
		hasMask = 1
	}
	if f.Class == OXMClassExperimenter {
		n += 4
	}
	b = binary.BigEndian.AppendUint16(b, f.Class)
	b = append(b, f.Field<<1|hasMask, uint8(n))
	if f.Class == OXMClassExperimenter {
		b = binary.BigEndian.AppendUint32(b, f.Experimenter)
	}
	b = append(b, f.Value...)
	return append(b, f.Mask...)
}

// decodeMatch reads ofp_match and its padding. The fields' values and masks
// share one copy of the match's bytes, and the field slice is sized by a
// first walk over the TLV headers: a flow dump decodes thousands of matches,
// and allocating per field (and regrowing the slice) dominated its cost.
func decodeMatch(r *reader) Match {
	typ, n := r.u16(), int(r.u16())
	if r.err != nil {
		return Match{}
	}
	if typ != matchTypeOXM {
		r.err = unsupported("match type %d", typ)
		return Match{}
	}
	if n < 4 {
		r.err = malformed("match length %d", n)
		return Match{}
	}
	body := r.bytes(n - 4)
	r.zeros(pad8(n))
	if r.err != nil || len(body) == 0 {
		return Match{}
	}
	m := Match{Fields: make([]OXM, 0, countOXMs(body))}
	fr := newReader(append([]byte(nil), body...), "oxm")
	for fr.remaining() > 0 && fr.err == nil {
		m.Fields = append(m.Fields, decodeOXMIn(fr, true))
	}
	if fr.err != nil {
		r.err = fr.err
	}
	return m
}

// countOXMs counts the TLVs in a list of OXMs by their headers alone; a
// truncated last one still counts, which only makes the count an upper
// bound for malformed input.
func countOXMs(b []byte) int {
	n := 0
	for off := 0; off < len(b); n++ {
		if len(b)-off < 4 {
			return n + 1
		}
		off += 4 + int(b[off+3])
	}
	return n
}

// decodeOXM reads one OXM whose Value and Mask are copies, independent of
// the bytes being decoded.
func decodeOXM(r *reader) OXM { return decodeOXMIn(r, false) }

// decodeOXMIn reads one OXM. With shared, Value and Mask are sub-slices of
// the reader's bytes (capped, so appending to one cannot overwrite the
// next), which the caller must own.
func decodeOXMIn(r *reader, shared bool) OXM {
	var f OXM
	f.Class = r.u16()
	fm := r.u8()
	n := int(r.u8())
	f.Field = fm >> 1
	if f.Class == OXMClassExperimenter {
		if n < 4 {
			r.err = malformed("experimenter oxm length %d", n)
			return f
		}
		f.Experimenter = r.u32()
		n -= 4
	}
	if fm&1 != 0 {
		if n%2 != 0 || n == 0 {
			r.err = malformed("masked oxm class %#x field %d has length %d", f.Class, f.Field, n)
			return f
		}
		f.Value, f.Mask = r.value(n/2, shared), r.value(n/2, shared)
		return f
	}
	f.Value = r.value(n, shared)
	return f
}

// value reads n bytes of a field's value, as a copy or, with shared, as a
// sub-slice; either way nil when n is 0.
func (r *reader) value(n int, shared bool) []byte {
	if !shared {
		return r.copyBytes(n)
	}
	if v := r.bytes(n); len(v) > 0 {
		return v
	}
	return nil
}

// Instruction is one ofp_instruction.
type Instruction interface {
	appendInstruction(b []byte) ([]byte, error)
}

// Action is one ofp_action (including experimenter actions).
type Action interface {
	appendAction(b []byte) ([]byte, error)
}

// appendInstructions encodes instructions in order.
func appendInstructions(b []byte, is []Instruction) ([]byte, error) {
	var err error
	for _, i := range is {
		if b, err = i.appendInstruction(b); err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendActions encodes actions in order.
func appendActions(b []byte, as []Action) ([]byte, error) {
	var err error
	for _, a := range as {
		if b, err = a.appendAction(b); err != nil {
			return b, err
		}
	}
	return b, nil
}
