package openflow

import (
	"encoding/binary"
	"fmt"
)

// Reserved port numbers (ofp_port_no) for ActionOutput and for matching.
const (
	PortMax        uint32 = 0xffffff00 // highest physical port number
	PortInPort     uint32 = 0xfffffff8
	PortTable      uint32 = 0xfffffff9 // packet-out only: run the flow table
	PortNormal     uint32 = 0xfffffffa
	PortFlood      uint32 = 0xfffffffb
	PortAll        uint32 = 0xfffffffc
	PortController uint32 = 0xfffffffd
	PortLocal      uint32 = 0xfffffffe
	PortAny        uint32 = 0xffffffff
)

// MaxLenNoBuffer (OFPCML_NO_BUFFER) as an output max_len to the controller
// sends the whole packet and does not buffer it in the switch.
const MaxLenNoBuffer uint16 = 0xffff

// Action types (ofp_action_type) of OpenFlow 1.3.
const (
	actOutput       = 0
	actCopyTTLOut   = 11
	actCopyTTLIn    = 12
	actSetMPLSTTL   = 15
	actDecMPLSTTL   = 16
	actPushVLAN     = 17
	actPopVLAN      = 18
	actPushMPLS     = 19
	actPopMPLS      = 20
	actSetQueue     = 21
	actGroup        = 22
	actSetNWTTL     = 23
	actDecNWTTL     = 24
	actSetField     = 25
	actPushPBB      = 26
	actPopPBB       = 27
	actExperimenter = 0xffff
)

// Experimenter (vendor) ids of the extension actions.
const (
	vendorNicira uint32 = 0x00002320 // NX_VENDOR_ID
	vendorONF    uint32 = 0x4f4e4600 // ONF_VENDOR_ID
)

// ActionOutput is OFPAT_OUTPUT. MaxLen matters only for PortController.
type ActionOutput struct {
	Port   uint32
	MaxLen uint16
}

// ActionCopyTTLOut is OFPAT_COPY_TTL_OUT.
type ActionCopyTTLOut struct{}

// ActionCopyTTLIn is OFPAT_COPY_TTL_IN.
type ActionCopyTTLIn struct{}

// ActionSetMPLSTTL is OFPAT_SET_MPLS_TTL.
type ActionSetMPLSTTL struct{ TTL uint8 }

// ActionDecMPLSTTL is OFPAT_DEC_MPLS_TTL.
type ActionDecMPLSTTL struct{}

// ActionPushVLAN is OFPAT_PUSH_VLAN; EtherType is the tag's TPID (0x8100 or 0x88a8).
type ActionPushVLAN struct{ EtherType uint16 }

// ActionPopVLAN is OFPAT_POP_VLAN.
type ActionPopVLAN struct{}

// ActionPushMPLS is OFPAT_PUSH_MPLS.
type ActionPushMPLS struct{ EtherType uint16 }

// ActionPopMPLS is OFPAT_POP_MPLS; EtherType is that of the payload.
type ActionPopMPLS struct{ EtherType uint16 }

// ActionSetQueue is OFPAT_SET_QUEUE.
type ActionSetQueue struct{ QueueID uint32 }

// ActionGroup is OFPAT_GROUP.
type ActionGroup struct{ GroupID uint32 }

// ActionSetNWTTL is OFPAT_SET_NW_TTL.
type ActionSetNWTTL struct{ TTL uint8 }

// ActionDecNWTTL is OFPAT_DEC_NW_TTL (ovs-ofctl's dec_ttl).
type ActionDecNWTTL struct{}

// ActionSetField is OFPAT_SET_FIELD: write Field's value into the packet.
// OpenFlow 1.3 allows no mask here; to set part of a field OVS uses
// NXRegLoad instead.
type ActionSetField struct{ Field OXM }

// ActionPushPBB is OFPAT_PUSH_PBB.
type ActionPushPBB struct{ EtherType uint16 }

// ActionPopPBB is OFPAT_POP_PBB.
type ActionPopPBB struct{}

// ActionExperimenter is an OFPAT_EXPERIMENTER action of an experimenter
// other than Nicira and ONF, kept verbatim: Data is everything after the
// experimenter id, padding included, so its length is a multiple of 8.
// Nicira and ONF actions are modelled types (NXRegLoad, NXCT, ...); one of
// their subtypes the codec does not model is an *UnsupportedError, never an
// ActionExperimenter. OVS itself refuses an action of an unknown experimenter
// (OFPBAC_BAD_VENDOR), so this serves to decode and relay such actions, not
// to install them on OVS.
type ActionExperimenter struct {
	Experimenter uint32
	Data         []byte
}

// appendAction8 appends an 8-byte action whose last four bytes are arg.
func appendAction8(b []byte, typ uint16, arg [4]byte) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, 8)
	return append(b, arg[:]...)
}

func u16arg(v uint16) (a [4]byte) { binary.BigEndian.PutUint16(a[:], v); return a }
func u32arg(v uint32) (a [4]byte) { binary.BigEndian.PutUint32(a[:], v); return a }
func u8arg(v uint8) [4]byte       { return [4]byte{v} }

func (a ActionOutput) appendAction(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, actOutput)
	b = binary.BigEndian.AppendUint16(b, 16)
	b = binary.BigEndian.AppendUint32(b, a.Port)
	b = binary.BigEndian.AppendUint16(b, a.MaxLen)
	return appendZeros(b, 6), nil
}

func (ActionCopyTTLOut) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actCopyTTLOut, [4]byte{}), nil
}
func (ActionCopyTTLIn) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actCopyTTLIn, [4]byte{}), nil
}
func (a ActionSetMPLSTTL) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actSetMPLSTTL, u8arg(a.TTL)), nil
}
func (ActionDecMPLSTTL) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actDecMPLSTTL, [4]byte{}), nil
}
func (a ActionPushVLAN) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actPushVLAN, u16arg(a.EtherType)), nil
}
func (ActionPopVLAN) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actPopVLAN, [4]byte{}), nil
}
func (a ActionPushMPLS) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actPushMPLS, u16arg(a.EtherType)), nil
}
func (a ActionPopMPLS) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actPopMPLS, u16arg(a.EtherType)), nil
}
func (a ActionSetQueue) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actSetQueue, u32arg(a.QueueID)), nil
}
func (a ActionGroup) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actGroup, u32arg(a.GroupID)), nil
}
func (a ActionSetNWTTL) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actSetNWTTL, u8arg(a.TTL)), nil
}
func (ActionDecNWTTL) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actDecNWTTL, [4]byte{}), nil
}
func (a ActionPushPBB) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actPushPBB, u16arg(a.EtherType)), nil
}
func (ActionPopPBB) appendAction(b []byte) ([]byte, error) {
	return appendAction8(b, actPopPBB, [4]byte{}), nil
}

func (a ActionExperimenter) appendAction(b []byte) ([]byte, error) {
	if a.Experimenter == vendorNicira || a.Experimenter == vendorONF {
		return b, fmt.Errorf("experimenter action %#08x: Nicira and ONF actions are modelled types, not ActionExperimenter", a.Experimenter)
	}
	if len(a.Data)%8 != 0 {
		return b, fmt.Errorf("experimenter action %#08x: data of %d bytes, want a multiple of 8", a.Experimenter, len(a.Data))
	}
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, actExperimenter)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint32(b, a.Experimenter)
	b, err := putLen16(append(b, a.Data...), start)
	if err != nil {
		return b, fmt.Errorf("experimenter action %#08x: %w", a.Experimenter, err)
	}
	return b, nil
}

func (a ActionSetField) appendAction(b []byte) ([]byte, error) {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, actSetField)
	b = append(b, 0, 0)
	b, err := appendOXMChecked(b, a.Field)
	if err != nil {
		return b[:start], fmt.Errorf("set_field: %w", err)
	}
	b = appendZeros(b, pad8(len(b)-start))
	return putLen16(b, start)
}

// appendOXMChecked appends an OXM whose payload must fit the 8-bit length.
func appendOXMChecked(b []byte, o OXM) ([]byte, error) {
	n := len(o.Value) + len(o.Mask)
	if o.Class == OXMClassExperimenter {
		n += 4
	}
	if n > 0xff {
		return b, fmt.Errorf("oxm class %#04x field %d: payload of %d bytes overflows its length", o.Class, o.Field, n)
	}
	return appendOXM(b, o), nil
}

// decodeActions decodes a whole action list.
func decodeActions(b []byte) ([]Action, error) {
	var as []Action
	if n := countTLVs(b); n > 0 {
		as = make([]Action, 0, n)
	}
	err := tlvs(b, "action", func(typ uint16, body []byte) error {
		a, err := decodeAction(typ, body)
		if err == nil {
			as = append(as, a)
		}
		return err
	})
	return as, err
}

// countTLVs counts the elements tlvs would visit, stopping at the first bad
// length (which tlvs then reports), so that a list is allocated once.
func countTLVs(b []byte) int {
	n := 0
	for off := 0; len(b)-off >= 4; n++ {
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		if l < 8 || l%8 != 0 || l > len(b)-off {
			break
		}
		off += l
	}
	return n
}

func decodeAction(typ uint16, b []byte) (Action, error) {
	r := newReader(b, "action")
	r.skip(4)
	var a Action
	switch typ {
	case actOutput:
		port, maxLen := r.u32(), r.u16()
		r.zeros(6)
		a = ActionOutput{Port: port, MaxLen: maxLen}
	case actCopyTTLOut, actCopyTTLIn, actDecMPLSTTL, actPopVLAN, actDecNWTTL, actPopPBB:
		r.zeros(4)
		a = argless(typ)
	case actSetMPLSTTL, actSetNWTTL:
		ttl := r.u8()
		r.zeros(3)
		if typ == actSetMPLSTTL {
			a = ActionSetMPLSTTL{TTL: ttl}
		} else {
			a = ActionSetNWTTL{TTL: ttl}
		}
	case actPushVLAN, actPushMPLS, actPopMPLS, actPushPBB:
		et := r.u16()
		r.zeros(2)
		switch typ {
		case actPushVLAN:
			a = ActionPushVLAN{EtherType: et}
		case actPushMPLS:
			a = ActionPushMPLS{EtherType: et}
		case actPopMPLS:
			a = ActionPopMPLS{EtherType: et}
		default:
			a = ActionPushPBB{EtherType: et}
		}
	case actSetQueue:
		a = ActionSetQueue{QueueID: r.u32()}
	case actGroup:
		a = ActionGroup{GroupID: r.u32()}
	case actSetField:
		a = ActionSetField{Field: decodeOXM(r)}
		r.padding()
	case actExperimenter:
		// tlvs guarantees the 8 bytes of the experimenter header.
		switch v := r.u32(); v {
		case vendorNicira:
			return decodeNicira(b)
		case vendorONF:
			// ONF defines only copy_field (3200) for OF1.3, which the
			// pipeline does not use.
			if t := r.u16(); r.err == nil {
				return nil, unsupported("ONF experimenter action type %d", t)
			}
			return nil, r.err
		default:
			// tlvs guarantees a multiple of 8 in all.
			a = ActionExperimenter{Experimenter: v}
			if n := r.remaining(); n > 0 {
				a = ActionExperimenter{Experimenter: v, Data: r.copyBytes(n)}
			}
		}
	default:
		return nil, unsupported("action type %d", typ)
	}
	return a, r.done()
}

func argless(typ uint16) Action {
	switch typ {
	case actCopyTTLOut:
		return ActionCopyTTLOut{}
	case actCopyTTLIn:
		return ActionCopyTTLIn{}
	case actDecMPLSTTL:
		return ActionDecMPLSTTL{}
	case actPopVLAN:
		return ActionPopVLAN{}
	case actDecNWTTL:
		return ActionDecNWTTL{}
	default:
		return ActionPopPBB{}
	}
}

// padding reads the zero bytes that round the element being read up to a
// multiple of 8 from the start of the reader. More than 7 would not be
// reproduced by encoding, so they are malformed.
func (r *reader) padding() {
	n := r.remaining()
	if r.err == nil && n >= 8 {
		r.err = malformed("%s: %d bytes of padding, at most 7 expected", r.ctx, n)
	}
	r.zeros(n)
}
