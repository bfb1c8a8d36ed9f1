package openflow

import (
	"encoding/binary"
	"fmt"
)

func init() {
	register(TypeExperimenter, newExperimenterMessage)
}

// ONF experimenter message types (exp_type) of the bundle extension, which
// OVS accepts on OpenFlow 1.3 in place of 1.4's BUNDLE_CONTROL (33) and
// BUNDLE_ADD_MESSAGE (34) (OVS lib/ofp-msgs.h, OFPRAW_ONFT13_BUNDLE_*).
const (
	onfBundleControl    = 2300
	onfBundleAddMessage = 2301
)

// experimenterHeaderLen is ofp_experimenter_header's body: experimenter id
// and exp_type.
const experimenterHeaderLen = 8

// newExperimenterMessage chooses the Go type by experimenter id and
// exp_type. ONF messages other than the bundle ones are refused rather than
// shown generically, since a generic view would hide a layout the codec
// claims to know.
func newExperimenterMessage(body []byte) (Message, error) {
	if len(body) < experimenterHeaderLen {
		return nil, malformed("experimenter message of %d bytes, header needs %d", len(body), experimenterHeaderLen)
	}
	id, expType := binary.BigEndian.Uint32(body), binary.BigEndian.Uint32(body[4:])
	switch {
	case id == vendorONF && expType == onfBundleControl:
		return &BundleControl{}, nil
	case id == vendorONF && expType == onfBundleAddMessage:
		return &BundleAdd{}, nil
	case id == vendorONF:
		return nil, unsupported("ONF experimenter message type %d", expType)
	}
	return &Experimenter{}, nil
}

// Experimenter is an OFPT_EXPERIMENTER message of an experimenter this codec
// does not model, kept verbatim.
type Experimenter struct {
	Experimenter uint32
	ExpType      uint32
	Data         []byte
}

func (*Experimenter) Type() MsgType { return TypeExperimenter }

func (m *Experimenter) appendBody(b []byte) ([]byte, error) {
	if m.Experimenter == vendorONF {
		return b, fmt.Errorf("ONF experimenter messages are modelled types (BundleControl, BundleAdd), not Experimenter")
	}
	b = binary.BigEndian.AppendUint32(b, m.Experimenter)
	b = binary.BigEndian.AppendUint32(b, m.ExpType)
	return append(b, m.Data...), nil
}

func (m *Experimenter) decodeBody(b []byte) error {
	r := newReader(b, "experimenter")
	m.Experimenter, m.ExpType = r.u32(), r.u32()
	m.Data = append([]byte(nil), r.rest()...)
	return r.err
}

// BundleCtrlType is ofp14_bundle_ctrl_type.
type BundleCtrlType uint16

// Bundle control types.
const (
	BundleOpenRequest    BundleCtrlType = 0
	BundleOpenReply      BundleCtrlType = 1
	BundleCloseRequest   BundleCtrlType = 2
	BundleCloseReply     BundleCtrlType = 3
	BundleCommitRequest  BundleCtrlType = 4
	BundleCommitReply    BundleCtrlType = 5
	BundleDiscardRequest BundleCtrlType = 6
	BundleDiscardReply   BundleCtrlType = 7
)

// BundleFlags is the ofp14_bundle_flags bitmap.
type BundleFlags uint16

// Bundle flags.
const (
	// BundleAtomic: the commit applies every message or none.
	BundleAtomic BundleFlags = 1 << 0
	// BundleOrdered: the messages apply in the order they were added.
	BundleOrdered BundleFlags = 1 << 1
)

// BundleControl is ONFT_BUNDLE_CONTROL: open, close, commit or discard a
// bundle, and the switch's replies to each. Properties are the
// ofp14_bundle_prop_header TLVs, kept verbatim (OVS defines none it acts on).
type BundleControl struct {
	BundleID   uint32
	CtrlType   BundleCtrlType
	Flags      BundleFlags
	Properties []byte
}

func (*BundleControl) Type() MsgType { return TypeExperimenter }

func (m *BundleControl) appendBody(b []byte) ([]byte, error) {
	if len(m.Properties)%8 != 0 {
		return b, fmt.Errorf("bundle control properties of %d bytes, want a multiple of 8", len(m.Properties))
	}
	b = appendBundleHeader(b, onfBundleControl, m.BundleID, uint16(m.CtrlType), m.Flags)
	return append(b, m.Properties...), nil
}

func (m *BundleControl) decodeBody(b []byte) error {
	r := newReader(b, "bundle control")
	r.skip(experimenterHeaderLen)
	m.BundleID, m.CtrlType, m.Flags = r.u32(), BundleCtrlType(r.u16()), BundleFlags(r.u16())
	if n := r.remaining(); n%8 != 0 {
		return malformed("bundle control properties of %d bytes, want a multiple of 8", n)
	}
	if n := r.remaining(); n > 0 {
		m.Properties = r.copyBytes(n)
	}
	return r.done()
}

func appendBundleHeader(b []byte, expType uint32, id uint32, ctrlType uint16, flags BundleFlags) []byte {
	b = binary.BigEndian.AppendUint32(b, vendorONF)
	b = binary.BigEndian.AppendUint32(b, expType)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint16(b, ctrlType)
	return binary.BigEndian.AppendUint16(b, uint16(flags))
}

// BundleAdd is ONFT_BUNDLE_ADD_MESSAGE: add one message (a flow mod, group
// mod, port mod...) to an open bundle. OVS requires the inner message's xid
// to equal the outer one (else OFPBFC_MSG_BAD_XID), so the encoder writes
// the outer xid into the inner header and the decoder refuses an inner xid
// that differs (ErrMalformed) rather than keep it. Trailer is whatever
// follows the inner message (padding and bundle properties), kept
// verbatim; OVS ignores it.
type BundleAdd struct {
	BundleID uint32
	Flags    BundleFlags
	Message  Message
	Trailer  []byte
}

func (*BundleAdd) Type() MsgType { return TypeExperimenter }

// appendBody relies on Append having written the outer header just before
// the body: that is where the outer xid, which the inner header must repeat,
// comes from.
func (m *BundleAdd) appendBody(b []byte) ([]byte, error) {
	if len(b) < HeaderLen {
		return b, fmt.Errorf("bundle add: encode through Marshal or Append, which supply the xid")
	}
	if m.Message == nil {
		return b, fmt.Errorf("bundle %d add: no message", m.BundleID)
	}
	xid := binary.BigEndian.Uint32(b[len(b)-4:])
	b = appendBundleHeader(b, onfBundleAddMessage, m.BundleID, 0, m.Flags)
	b, err := Append(b, xid, m.Message)
	if err != nil {
		return b, fmt.Errorf("bundle %d add: %w", m.BundleID, err)
	}
	return append(b, m.Trailer...), nil
}

// bundleAddInnerOff is where the inner message starts in the body.
const bundleAddInnerOff = experimenterHeaderLen + 8

// checkXid refuses an inner xid other than the outer one: OVS refuses it too
// (OFPBFC_MSG_BAD_XID), and the encoder, which repeats the outer xid, could
// not reproduce it.
func (m *BundleAdd) checkXid(xid uint32, body []byte) error {
	// decodeBody has checked that the inner header is there.
	if inner := binary.BigEndian.Uint32(body[bundleAddInnerOff+4:]); inner != xid {
		return malformed("bundle %d add: inner xid %#x differs from the outer %#x", m.BundleID, inner, xid)
	}
	return nil
}

func (m *BundleAdd) decodeBody(b []byte) error {
	r := newReader(b, "bundle add")
	r.skip(experimenterHeaderLen)
	m.BundleID = r.u32()
	r.zeros(2) // the type field, unused in an add
	m.Flags = BundleFlags(r.u16())
	rest := r.rest()
	if r.err != nil {
		return r.err
	}
	h, err := ParseHeader(rest)
	if err != nil {
		return fmt.Errorf("bundle %d add: inner message: %w", m.BundleID, err)
	}
	if int(h.Length) < HeaderLen || int(h.Length) > len(rest) {
		return malformed("bundle %d add: inner message length %d, %d bytes present", m.BundleID, h.Length, len(rest))
	}
	if h.Type == TypeExperimenter {
		// A bundle inside a bundle is meaningless and would let input
		// recurse as deep as its length allows.
		return unsupported("bundle %d add: experimenter message inside a bundle", m.BundleID)
	}
	_, inner, err := Unmarshal(rest[:h.Length])
	if err != nil {
		return fmt.Errorf("bundle %d add: inner message: %w", m.BundleID, err)
	}
	m.Message = inner
	if len(rest) > int(h.Length) {
		m.Trailer = append([]byte(nil), rest[h.Length:]...)
	}
	return nil
}
