package openflow

import (
	"encoding/binary"
	"fmt"
	"slices"
)

func init() {
	registerSimple[Hello](TypeHello)
	registerSimple[EchoRequest](TypeEchoRequest)
	registerSimple[EchoReply](TypeEchoReply)
	registerSimple[FeaturesRequest](TypeFeaturesRequest)
	registerSimple[FeaturesReply](TypeFeaturesReply)
	registerSimple[BarrierRequest](TypeBarrierRequest)
	registerSimple[BarrierReply](TypeBarrierReply)
}

// Hello opens a session. Versions, when not empty, is sent as the version
// bitmap element (OF1.3 §7.5.1) so that the peers can agree on the highest
// common version; Elements keeps any other element verbatim.
type Hello struct {
	Versions []uint8
	// Other hello elements, kept as they came (type, length, padding and all).
	Elements [][]byte
}

const helloElemVersionBitmap = 1

func (*Hello) Type() MsgType { return TypeHello }

func (m *Hello) appendBody(b []byte) ([]byte, error) {
	if len(m.Versions) > 0 {
		var bitmaps []uint32
		for _, v := range m.Versions {
			for int(v/32) >= len(bitmaps) {
				bitmaps = append(bitmaps, 0)
			}
			bitmaps[v/32] |= 1 << (v % 32)
		}
		n := 4 + 4*len(bitmaps)
		b = binary.BigEndian.AppendUint16(b, helloElemVersionBitmap)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		for _, bm := range bitmaps {
			b = binary.BigEndian.AppendUint32(b, bm)
		}
		b = appendZeros(b, pad8(n))
	}
	for _, e := range m.Elements {
		b = append(b, e...)
	}
	return b, nil
}

func (m *Hello) decodeBody(body []byte) error {
	r := newReader(body, "hello element")
	for r.remaining() > 0 {
		start := r.off
		typ, n := r.u16(), int(r.u16())
		if r.err == nil && n < 4 {
			return malformed("hello element length %d", n)
		}
		val := r.bytes(n - 4)
		r.skip(min(pad8(n), r.remaining()))
		if r.err != nil {
			return r.err
		}
		// Only a bitmap that comes first can be Versions: encoding writes
		// Versions before Elements.
		if typ == helloElemVersionBitmap && start == 0 {
			vr := newReader(val, "version bitmap")
			for i := 0; vr.remaining() >= 4; i++ {
				bm := vr.u32()
				for bit := range 32 {
					if bm&(1<<bit) != 0 {
						m.Versions = append(m.Versions, uint8(32*i+bit))
					}
				}
			}
			if m.Versions == nil {
				m.Versions = []uint8{}
			}
			// Keep it verbatim if re-encoding would not reproduce it.
			if again, _ := (&Hello{Versions: m.Versions}).appendBody(nil); string(again) == string(body[start:r.off]) {
				continue
			}
			m.Versions = nil
		}
		m.Elements = append(m.Elements, append([]byte(nil), body[start:r.off]...))
	}
	return r.err
}

// EchoRequest is a keepalive; the peer answers with an EchoReply carrying the same data.
type EchoRequest struct{ Data []byte }

func (*EchoRequest) Type() MsgType                         { return TypeEchoRequest }
func (m *EchoRequest) appendBody(b []byte) ([]byte, error) { return append(b, m.Data...), nil }
func (m *EchoRequest) decodeBody(b []byte) error           { m.Data = append([]byte(nil), b...); return nil }

// EchoReply answers an EchoRequest.
type EchoReply struct{ Data []byte }

func (*EchoReply) Type() MsgType                         { return TypeEchoReply }
func (m *EchoReply) appendBody(b []byte) ([]byte, error) { return append(b, m.Data...), nil }
func (m *EchoReply) decodeBody(b []byte) error           { m.Data = append([]byte(nil), b...); return nil }

// FeaturesRequest asks the switch for its datapath id and capabilities.
type FeaturesRequest struct{}

func (*FeaturesRequest) Type() MsgType                       { return TypeFeaturesRequest }
func (*FeaturesRequest) appendBody(b []byte) ([]byte, error) { return b, nil }
func (*FeaturesRequest) decodeBody(b []byte) error {
	return newReader(b, "features request").done()
}

// FeaturesReply is ofp_switch_features.
type FeaturesReply struct {
	DatapathID   uint64
	NBuffers     uint32
	NTables      uint8
	AuxiliaryID  uint8
	Capabilities uint32
	Reserved     uint32
}

func (*FeaturesReply) Type() MsgType { return TypeFeaturesReply }

func (m *FeaturesReply) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, m.DatapathID)
	b = binary.BigEndian.AppendUint32(b, m.NBuffers)
	b = append(b, m.NTables, m.AuxiliaryID, 0, 0)
	b = binary.BigEndian.AppendUint32(b, m.Capabilities)
	return binary.BigEndian.AppendUint32(b, m.Reserved), nil
}

func (m *FeaturesReply) decodeBody(b []byte) error {
	r := newReader(b, "features reply")
	m.DatapathID, m.NBuffers, m.NTables, m.AuxiliaryID = r.u64(), r.u32(), r.u8(), r.u8()
	r.zeros(2)
	m.Capabilities, m.Reserved = r.u32(), r.u32()
	return r.done()
}

// BarrierRequest asks the switch to finish everything sent before it.
type BarrierRequest struct{}

func (*BarrierRequest) Type() MsgType                       { return TypeBarrierRequest }
func (*BarrierRequest) appendBody(b []byte) ([]byte, error) { return b, nil }
func (*BarrierRequest) decodeBody(b []byte) error {
	return newReader(b, "barrier request").done()
}

// BarrierReply answers a BarrierRequest.
type BarrierReply struct{}

func (*BarrierReply) Type() MsgType                       { return TypeBarrierReply }
func (*BarrierReply) appendBody(b []byte) ([]byte, error) { return b, nil }
func (*BarrierReply) decodeBody(b []byte) error           { return newReader(b, "barrier reply").done() }

// DecodeHello decodes a HELLO whatever its header's version: a peer opens
// with the highest version it speaks, and the session must read that hello
// to find the version both sides share.
func DecodeHello(b []byte) (Header, *Hello, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if h.Type != TypeHello || int(h.Length) != len(b) {
		return h, nil, malformed("expected a HELLO of %d bytes, got %s of %d", len(b), h.Type, h.Length)
	}
	m := &Hello{}
	if err := m.decodeBody(b[HeaderLen:]); err != nil {
		return h, nil, fmt.Errorf("decode HELLO: %w", err)
	}
	return h, m, nil
}

// Supports reports whether a peer that sent this hello in a header of
// version hv speaks OpenFlow 1.3: by the version bitmap when there is one,
// else by the header version (OF1.3 §7.5.1: the lower of the two versions wins).
func (m *Hello) Supports(hv uint8) bool {
	if m.Versions != nil {
		return slices.Contains(m.Versions, Version)
	}
	return hv >= Version
}
