package openflow

import (
	"encoding/binary"
	"fmt"
)

// Nicira action subtypes (OVS lib/ofp-actions.c, enum ofp_raw_action_type).
const (
	nxastResubmit      = 1
	nxastRegMove       = 6
	nxastRegLoad       = 7
	nxastNote          = 8
	nxastResubmitTable = 14
	nxastOutputReg     = 15
	nxastLearn         = 16
	nxastFinTimeout    = 19
	nxastController    = 20
	nxastDecTTLCntIDs  = 21
	nxastStackPush     = 27
	nxastStackPop      = 28
	nxastSample        = 29
	nxastRegLoad2      = 33
	nxastConjunction   = 34
	nxastCT            = 35
	nxastNAT           = 36
	nxastController2   = 37
	nxastSample2       = 38
	nxastOutputTrunc   = 39
	nxastCTClear       = 43
	nxastResubmitCT    = 44
)

// FieldRef names a field by its OXM/NXM header, as the Nicira actions that
// read or write fields do. Len is the header's oxm_length (the field's width
// in bytes, plus 4 for an experimenter field).
type FieldRef struct {
	Class        uint16
	Field        uint8
	HasMask      bool
	Len          uint8
	Experimenter uint32
}

// Ref returns the unmasked header of a field.
func (f FieldInfo) Ref() FieldRef {
	return FieldRef{Class: f.Class, Field: f.Field, Len: uint8(f.Width)}
}

// RefOf returns the header of a field known by OVS's name (e.g. "reg0");
// an unknown name is a programming error and panics.
func RefOf(name string) FieldRef {
	f, ok := FieldByName(name)
	if !ok {
		panic(fmt.Sprintf("openflow: unknown field %q", name))
	}
	return f.Ref()
}

func (f FieldRef) header32() uint32 {
	m := uint32(0)
	if f.HasMask {
		m = 1
	}
	return uint32(f.Class)<<16 | uint32(f.Field)<<9 | m<<8 | uint32(f.Len)
}

func refFrom32(h uint32) FieldRef {
	return FieldRef{Class: uint16(h >> 16), Field: uint8(h>>9) & 0x7f, HasMask: h&0x100 != 0, Len: uint8(h)}
}

// appendRef appends the header, 8 bytes for an experimenter field.
func appendRef(b []byte, f FieldRef) []byte {
	b = binary.BigEndian.AppendUint32(b, f.header32())
	if f.Class == OXMClassExperimenter {
		b = binary.BigEndian.AppendUint32(b, f.Experimenter)
	}
	return b
}

func decodeRef(r *reader) FieldRef {
	f := refFrom32(r.u32())
	if f.Class == OXMClassExperimenter {
		f.Experimenter = r.u32()
	}
	return f
}

// ref32 is the header for a slot that holds exactly 4 bytes.
func ref32(f FieldRef) (uint32, error) {
	if f.Class == OXMClassExperimenter {
		return 0, fmt.Errorf("experimenter field %#08x/%d does not fit a 32-bit NXM header", f.Experimenter, f.Field)
	}
	return f.header32(), nil
}

// decodeRef32 reads a 4-byte header slot, which cannot hold an
// experimenter field's 8-byte header.
func decodeRef32(r *reader) FieldRef {
	f := refFrom32(r.u32())
	if f.Class == OXMClassExperimenter && r.err == nil {
		r.err = unsupported("%s: experimenter class in a 32-bit NXM header", r.ctx)
	}
	return f
}

// SubField is the bits [Ofs, Ofs+NBits) of a field, OVS's FIELD[a..b].
type SubField struct {
	Field FieldRef
	Ofs   uint16
	NBits uint16
}

// ofsNbits encodes NXM's (ofs << 6) | (n_bits - 1).
func ofsNbits(ofs, nbits uint16) (uint16, error) {
	if ofs > 0x3ff || nbits < 1 || nbits > 64 {
		return 0, fmt.Errorf("bits %d..%d cannot be encoded as ofs_nbits", ofs, int(ofs)+int(nbits)-1)
	}
	return ofs<<6 | (nbits - 1), nil
}

func splitOfsNbits(v uint16) (ofs, nbits uint16) { return v >> 6, v&0x3f + 1 }

// nxStart appends the Nicira action header; nxFinish pads the action to a
// multiple of 8 and sets its length.
func nxStart(b []byte, subtype uint16) ([]byte, int) {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, actExperimenter)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint32(b, vendorNicira)
	return binary.BigEndian.AppendUint16(b, subtype), start
}

func nxFinish(b []byte, start int) ([]byte, error) {
	return putLen16(appendZeros(b, pad8(len(b)-start)), start)
}

// NXResubmit is NXAST_RESUBMIT, ovs-ofctl's resubmit:port.
type NXResubmit struct{ InPort uint16 }

// Values for NXResubmitTable that keep the packet's in_port or table.
const (
	ResubmitInPort       uint16 = 0xfff8 // OFPP_IN_PORT in 16 bits
	ResubmitCurrentTable uint8  = 0xff
)

// NXResubmitTable is NXAST_RESUBMIT_TABLE, resubmit(port,table), or with CT
// NXAST_RESUBMIT_TABLE_CT, resubmit(port,table,ct). OVS encodes even
// resubmit:port this way, with Table ResubmitCurrentTable.
type NXResubmitTable struct {
	InPort uint16
	Table  uint8
	CT     bool
}

func (a NXResubmit) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastResubmit)
	return nxFinish(binary.BigEndian.AppendUint16(b, a.InPort), start)
}

func (a NXResubmitTable) appendAction(b []byte) ([]byte, error) {
	sub := uint16(nxastResubmitTable)
	if a.CT {
		sub = nxastResubmitCT
	}
	b, start := nxStart(b, sub)
	b = binary.BigEndian.AppendUint16(b, a.InPort)
	return nxFinish(append(b, a.Table), start)
}

// NXRegLoad is NXAST_REG_LOAD, load:Value->Dst.
type NXRegLoad struct {
	Dst   SubField
	Value uint64
}

func (a NXRegLoad) appendAction(b []byte) ([]byte, error) {
	on, err := ofsNbits(a.Dst.Ofs, a.Dst.NBits)
	if err != nil {
		return b, fmt.Errorf("reg_load: %w", err)
	}
	dst, err := ref32(a.Dst.Field)
	if err != nil {
		return b, fmt.Errorf("reg_load: %w", err)
	}
	b, start := nxStart(b, nxastRegLoad)
	b = binary.BigEndian.AppendUint16(b, on)
	b = binary.BigEndian.AppendUint32(b, dst)
	return nxFinish(binary.BigEndian.AppendUint64(b, a.Value), start)
}

// NXRegLoad2 is NXAST_REG_LOAD2: a set_field that may be masked and may
// name an experimenter field. OVS sends it only for fields NXAST_REG_LOAD
// cannot express; otherwise it uses NXRegLoad or ActionSetField.
type NXRegLoad2 struct{ Field OXM }

func (a NXRegLoad2) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastRegLoad2)
	b, err := appendOXMChecked(b, a.Field)
	if err != nil {
		return b[:start], fmt.Errorf("reg_load2: %w", err)
	}
	return nxFinish(b, start)
}

// NXRegMove is NXAST_REG_MOVE, move:Src[SrcOfs..]->Dst[DstOfs..] of NBits.
type NXRegMove struct {
	NBits, SrcOfs, DstOfs uint16
	Src, Dst              FieldRef
}

func (a NXRegMove) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastRegMove)
	b = binary.BigEndian.AppendUint16(b, a.NBits)
	b = binary.BigEndian.AppendUint16(b, a.SrcOfs)
	b = binary.BigEndian.AppendUint16(b, a.DstOfs)
	return nxFinish(appendRef(appendRef(b, a.Src), a.Dst), start)
}

// NXNote is NXAST_NOTE: opaque bytes the switch keeps with the flow. The
// encoding pads Data with zeros to fill the action, and the zeros are part
// of the note OVS reports back.
type NXNote struct{ Data []byte }

func (a NXNote) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastNote)
	return nxFinish(append(b, a.Data...), start)
}

// NXController is NXAST_CONTROLLER: a packet-in with a reason and
// controller id.
type NXController struct {
	MaxLen       uint16
	ControllerID uint16
	Reason       uint8
}

func (a NXController) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastController)
	b = binary.BigEndian.AppendUint16(b, a.MaxLen)
	b = binary.BigEndian.AppendUint16(b, a.ControllerID)
	return nxFinish(append(b, a.Reason), start)
}

// NXFinTimeout is NXAST_FIN_TIMEOUT.
type NXFinTimeout struct{ IdleTimeout, HardTimeout uint16 }

func (a NXFinTimeout) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastFinTimeout)
	b = binary.BigEndian.AppendUint16(b, a.IdleTimeout)
	return nxFinish(binary.BigEndian.AppendUint16(b, a.HardTimeout), start)
}

// NXDecTTLCntIDs is NXAST_DEC_TTL_CNT_IDS, dec_ttl(id,...): the controllers
// told when the TTL runs out.
type NXDecTTLCntIDs struct{ IDs []uint16 }

func (a NXDecTTLCntIDs) appendAction(b []byte) ([]byte, error) {
	if len(a.IDs) > 0xffff {
		return b, fmt.Errorf("dec_ttl: %d controller ids", len(a.IDs))
	}
	b, start := nxStart(b, nxastDecTTLCntIDs)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.IDs)))
	b = appendZeros(b, 4)
	for _, id := range a.IDs {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return nxFinish(b, start)
}

// NXStackPush is NXAST_STACK_PUSH, push:Field.
type NXStackPush struct{ Field SubField }

// NXStackPop is NXAST_STACK_POP, pop:Field.
type NXStackPop struct{ Field SubField }

func (a NXStackPush) appendAction(b []byte) ([]byte, error) {
	return appendStack(b, nxastStackPush, a.Field)
}
func (a NXStackPop) appendAction(b []byte) ([]byte, error) {
	return appendStack(b, nxastStackPop, a.Field)
}

func appendStack(b []byte, sub uint16, f SubField) ([]byte, error) {
	b, start := nxStart(b, sub)
	b = binary.BigEndian.AppendUint16(b, f.Ofs)
	b = appendRef(b, f.Field)
	return nxFinish(binary.BigEndian.AppendUint16(b, f.NBits), start)
}

// NXSample is NXAST_SAMPLE: IPFIX sampling.
type NXSample struct {
	Probability                             uint16
	CollectorSetID, ObsDomainID, ObsPointID uint32
}

// NXSample2 is NXAST_SAMPLE2: NXSample with a sampling port. Direction is
// meaningful only to NXAST_SAMPLE3, which this codec does not model; OVS
// writes it as zero here.
type NXSample2 struct {
	NXSample
	SamplingPort uint16
	Direction    uint8
}

func (a NXSample) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastSample)
	return nxFinish(a.appendFields(b), start)
}

func (a NXSample) appendFields(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, a.Probability)
	b = binary.BigEndian.AppendUint32(b, a.CollectorSetID)
	b = binary.BigEndian.AppendUint32(b, a.ObsDomainID)
	return binary.BigEndian.AppendUint32(b, a.ObsPointID)
}

func (a NXSample2) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastSample2)
	b = a.appendFields(b)
	b = binary.BigEndian.AppendUint16(b, a.SamplingPort)
	return nxFinish(append(b, a.Direction), start)
}

// NXConjunction is NXAST_CONJUNCTION, conjunction(ID, Clause+1/NClauses):
// Clause counts from 0 on the wire while ovs-ofctl counts from 1.
type NXConjunction struct {
	Clause, NClauses uint8
	ID               uint32
}

func (a NXConjunction) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastConjunction)
	b = append(b, a.Clause, a.NClauses)
	return nxFinish(binary.BigEndian.AppendUint32(b, a.ID), start)
}

// NXOutputTrunc is NXAST_OUTPUT_TRUNC, output(port=Port,max_len=MaxLen).
type NXOutputTrunc struct {
	Port   uint16
	MaxLen uint32
}

func (a NXOutputTrunc) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastOutputTrunc)
	b = binary.BigEndian.AppendUint16(b, a.Port)
	return nxFinish(binary.BigEndian.AppendUint32(b, a.MaxLen), start)
}

// NXOutputReg is NXAST_OUTPUT_REG, output:Src: out of the port a field
// holds, so that one flow outputs where an earlier table decided.
// MaxLen is the length sent to a controller port; OVS sets 0xffff
// (OutputRegMaxLen) when it parses the text, and reports what it got.
type NXOutputReg struct {
	Src    SubField
	MaxLen uint16
}

// OutputRegMaxLen is the MaxLen ovs-ofctl gives output:FIELD, so that a
// flow sent with it reads back as ovs-ofctl would have added it.
const OutputRegMaxLen uint16 = 0xffff

func (a NXOutputReg) appendAction(b []byte) ([]byte, error) {
	on, err := ofsNbits(a.Src.Ofs, a.Src.NBits)
	if err != nil {
		return b, fmt.Errorf("output_reg: %w", err)
	}
	src, err := ref32(a.Src.Field)
	if err != nil {
		return b, fmt.Errorf("output_reg: %w", err)
	}
	b, start := nxStart(b, nxastOutputReg)
	b = binary.BigEndian.AppendUint16(b, on)
	b = binary.BigEndian.AppendUint32(b, src)
	return nxFinish(binary.BigEndian.AppendUint16(b, a.MaxLen), start)
}

// NXCTClear is NXAST_CT_CLEAR.
type NXCTClear struct{}

func (NXCTClear) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastCTClear)
	return nxFinish(b, start)
}

// decodeNicira decodes a Nicira action; b is the whole action, whose
// length tlvs has checked.
func decodeNicira(b []byte) (Action, error) {
	r := newReader(b, "nicira action")
	r.skip(8)
	sub := r.u16()
	if r.err != nil {
		return nil, r.err
	}
	a, err := decodeNiciraBody(sub, r)
	if err != nil {
		return nil, fmt.Errorf("nicira subtype %d: %w", sub, err)
	}
	return a, nil
}

func decodeNiciraBody(sub uint16, r *reader) (Action, error) {
	var a Action
	switch sub {
	case nxastResubmit:
		a = NXResubmit{InPort: r.u16()}
	case nxastResubmitTable, nxastResubmitCT:
		a = NXResubmitTable{InPort: r.u16(), Table: r.u8(), CT: sub == nxastResubmitCT}
	case nxastRegLoad:
		ofs, nbits := splitOfsNbits(r.u16())
		dst := decodeRef32(r)
		a = NXRegLoad{Dst: SubField{Field: dst, Ofs: ofs, NBits: nbits}, Value: r.u64()}
	case nxastRegLoad2:
		a = NXRegLoad2{Field: decodeOXM(r)}
	case nxastRegMove:
		m := NXRegMove{NBits: r.u16(), SrcOfs: r.u16(), DstOfs: r.u16()}
		m.Src = decodeRef(r)
		m.Dst = decodeRef(r)
		a = m
	case nxastNote:
		a = NXNote{Data: r.copyBytes(r.remaining())}
	case nxastController:
		a = NXController{MaxLen: r.u16(), ControllerID: r.u16(), Reason: r.u8()}
	case nxastController2:
		return decodeController2(r)
	case nxastFinTimeout:
		a = NXFinTimeout{IdleTimeout: r.u16(), HardTimeout: r.u16()}
	case nxastDecTTLCntIDs:
		n := int(r.u16())
		r.zeros(4)
		if r.err == nil && 2*n > r.remaining() {
			return nil, malformed("dec_ttl: %d controller ids in %d bytes", n, r.remaining())
		}
		ids := make([]uint16, n)
		for i := range ids {
			ids[i] = r.u16()
		}
		a = NXDecTTLCntIDs{IDs: ids}
	case nxastStackPush, nxastStackPop:
		f := SubField{Ofs: r.u16()}
		f.Field = decodeRef(r)
		f.NBits = r.u16()
		if sub == nxastStackPush {
			a = NXStackPush{Field: f}
		} else {
			a = NXStackPop{Field: f}
		}
	case nxastSample, nxastSample2:
		s := NXSample{Probability: r.u16(), CollectorSetID: r.u32(), ObsDomainID: r.u32(), ObsPointID: r.u32()}
		a = s
		if sub == nxastSample2 {
			a = NXSample2{NXSample: s, SamplingPort: r.u16(), Direction: r.u8()}
		}
	case nxastConjunction:
		a = NXConjunction{Clause: r.u8(), NClauses: r.u8(), ID: r.u32()}
	case nxastOutputTrunc:
		a = NXOutputTrunc{Port: r.u16(), MaxLen: r.u32()}
	case nxastOutputReg:
		ofs, nbits := splitOfsNbits(r.u16())
		src := decodeRef32(r)
		a = NXOutputReg{Src: SubField{Field: src, Ofs: ofs, NBits: nbits}, MaxLen: r.u16()}
	case nxastCTClear:
		a = NXCTClear{}
	case nxastCT:
		return decodeCT(r)
	case nxastNAT:
		return decodeNAT(r)
	case nxastLearn:
		return decodeLearn(r)
	case nxastCheckPktLarger:
		return decodeCheckPktLarger(r)
	default:
		return nil, unsupported("nicira action subtype %d", sub)
	}
	r.padding()
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}
