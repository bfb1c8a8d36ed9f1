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

// decodeMatch reads ofp_match and its padding.
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
	r.skip(pad8(n))
	if r.err != nil {
		return Match{}
	}
	var m Match
	fr := newReader(body, "oxm")
	for fr.remaining() > 0 && fr.err == nil {
		m.Fields = append(m.Fields, decodeOXM(fr))
	}
	if fr.err != nil {
		r.err = fr.err
	}
	return m
}

func decodeOXM(r *reader) OXM {
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
		f.Value, f.Mask = r.copyBytes(n/2), r.copyBytes(n/2)
		return f
	}
	f.Value = r.copyBytes(n)
	return f
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
