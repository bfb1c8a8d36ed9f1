package openflow

import (
	"encoding/binary"
	"fmt"
)

// Instruction types (ofp_instruction_type).
const (
	instGotoTable     = 1
	instWriteMetadata = 2
	instWriteActions  = 3
	instApplyActions  = 4
	instClearActions  = 5
	instMeter         = 6
	instExperimenter  = 0xffff
)

// GotoTable is OFPIT_GOTO_TABLE: continue in a later table.
type GotoTable struct{ Table uint8 }

// WriteMetadata is OFPIT_WRITE_METADATA: set the metadata bits in Mask.
type WriteMetadata struct{ Metadata, Mask uint64 }

// WriteActions is OFPIT_WRITE_ACTIONS: merge into the action set.
type WriteActions struct{ Actions []Action }

// ApplyActions is OFPIT_APPLY_ACTIONS: run the actions now, in order.
type ApplyActions struct{ Actions []Action }

// ClearActions is OFPIT_CLEAR_ACTIONS: empty the action set.
type ClearActions struct{}

// MeterInstruction is OFPIT_METER: send the packet through a meter.
type MeterInstruction struct{ MeterID uint32 }

func (i GotoTable) appendInstruction(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, instGotoTable)
	b = binary.BigEndian.AppendUint16(b, 8)
	return append(b, i.Table, 0, 0, 0), nil
}

func (i WriteMetadata) appendInstruction(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, instWriteMetadata)
	b = binary.BigEndian.AppendUint16(b, 24)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, i.Metadata)
	return binary.BigEndian.AppendUint64(b, i.Mask), nil
}

func (i WriteActions) appendInstruction(b []byte) ([]byte, error) {
	return appendActionsInstruction(b, instWriteActions, i.Actions)
}

func (i ApplyActions) appendInstruction(b []byte) ([]byte, error) {
	return appendActionsInstruction(b, instApplyActions, i.Actions)
}

func (ClearActions) appendInstruction(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, instClearActions)
	b = binary.BigEndian.AppendUint16(b, 8)
	return append(b, 0, 0, 0, 0), nil
}

func (i MeterInstruction) appendInstruction(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, instMeter)
	b = binary.BigEndian.AppendUint16(b, 8)
	return binary.BigEndian.AppendUint32(b, i.MeterID), nil
}

func appendActionsInstruction(b []byte, typ uint16, as []Action) ([]byte, error) {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = append(b, 0, 0, 0, 0, 0, 0) // length, then 4 bytes of padding
	b, err := appendActions(b, as)
	if err != nil {
		return b[:start], fmt.Errorf("instruction %d: %w", typ, err)
	}
	return putLen16(b, start)
}

// putLen16 stores the length of the element that starts at b[start] in its
// 16-bit length field (bytes 2-3), which every OpenFlow TLV here has.
func putLen16(b []byte, start int) ([]byte, error) {
	n := len(b) - start
	if n > 0xffff {
		return b[:start], fmt.Errorf("element of %d bytes overflows its 16-bit length", n)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b, nil
}

// tlvs splits a list of 8-byte-aligned type-length elements (instructions,
// actions): each must have a length of at least 8, a multiple of 8, within
// the list.
func tlvs(b []byte, what string, each func(typ uint16, body []byte) error) error {
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return malformed("%s at offset %d: %d bytes left, header needs 4", what, off, len(b)-off)
		}
		typ, n := binary.BigEndian.Uint16(b[off:]), int(binary.BigEndian.Uint16(b[off+2:]))
		if n < 8 || n%8 != 0 || n > len(b)-off {
			return malformed("%s type %d at offset %d: length %d (%d bytes left; want a multiple of 8, at least 8)", what, typ, off, n, len(b)-off)
		}
		if err := each(typ, b[off:off+n]); err != nil {
			return fmt.Errorf("%s type %d at offset %d: %w", what, typ, off, err)
		}
		off += n
	}
	return nil
}

// zeros reads n bytes of padding, which must be zero so that re-encoding
// (which writes zeros) reproduces the input.
func (r *reader) zeros(n int) {
	for _, c := range r.bytes(n) {
		if c != 0 && r.err == nil {
			r.err = malformed("%s: non-zero padding", r.ctx)
		}
	}
}

// decodeInstructions decodes a whole instruction list.
func decodeInstructions(b []byte) ([]Instruction, error) {
	var is []Instruction
	err := tlvs(b, "instruction", func(typ uint16, body []byte) error {
		i, err := decodeInstruction(typ, body)
		if err == nil {
			is = append(is, i)
		}
		return err
	})
	return is, err
}

func decodeInstruction(typ uint16, b []byte) (Instruction, error) {
	r := newReader(b, "instruction")
	r.skip(4)
	var i Instruction
	switch typ {
	case instGotoTable:
		t := r.u8()
		r.zeros(3)
		i = GotoTable{Table: t}
	case instWriteMetadata:
		r.zeros(4)
		md, mask := r.u64(), r.u64()
		i = WriteMetadata{Metadata: md, Mask: mask}
	case instWriteActions, instApplyActions:
		r.zeros(4)
		as, err := decodeActions(r.rest())
		if err != nil {
			return nil, err
		}
		if typ == instWriteActions {
			i = WriteActions{Actions: as}
		} else {
			i = ApplyActions{Actions: as}
		}
	case instClearActions:
		r.zeros(4)
		i = ClearActions{}
	case instMeter:
		i = MeterInstruction{MeterID: r.u32()}
	case instExperimenter:
		return nil, unsupported("experimenter instruction %#08x", r.u32())
	default:
		return nil, unsupported("instruction type %d", typ)
	}
	return i, r.done()
}
