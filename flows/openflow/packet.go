package openflow

import (
	"encoding/binary"
	"fmt"
)

func init() {
	registerSimple[PacketIn](TypePacketIn)
	registerSimple[PacketOut](TypePacketOut)
}

// PacketInReason is ofp_packet_in_reason.
type PacketInReason uint8

// Packet-in reasons.
const (
	PacketInNoMatch    PacketInReason = 0 // table miss
	PacketInAction     PacketInReason = 1 // output to the controller
	PacketInInvalidTTL PacketInReason = 2
)

// PacketIn is OFPT_PACKET_IN. Data is the packet, or its first bytes when
// the switch buffered it (BufferID not NoBuffer); TotalLen is the full
// frame's length. Match carries the pipeline fields, in_port among them.
type PacketIn struct {
	BufferID uint32
	TotalLen uint16
	Reason   PacketInReason
	TableID  uint8
	Cookie   uint64
	Match    Match
	Data     []byte
}

func (*PacketIn) Type() MsgType { return TypePacketIn }

func (m *PacketIn) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, m.BufferID)
	b = binary.BigEndian.AppendUint16(b, m.TotalLen)
	b = append(b, uint8(m.Reason), m.TableID)
	b = binary.BigEndian.AppendUint64(b, m.Cookie)
	b = appendMatch(b, m.Match)
	b = append(b, 0, 0)
	return append(b, m.Data...), nil
}

func (m *PacketIn) decodeBody(b []byte) error {
	r := newReader(b, "packet in")
	m.BufferID, m.TotalLen = r.u32(), r.u16()
	m.Reason, m.TableID = PacketInReason(r.u8()), r.u8()
	m.Cookie = r.u64()
	m.Match = decodeMatch(r)
	r.zeros(2)
	if n := r.remaining(); n > 0 {
		m.Data = r.copyBytes(n)
	}
	return r.done()
}

// PacketOut is OFPT_PACKET_OUT: run Actions on Data (or on the packet
// buffered as BufferID). InPort is the port the packet is taken to have come
// from (PortController when none).
type PacketOut struct {
	BufferID uint32
	InPort   uint32
	Actions  []Action
	Data     []byte
}

func (*PacketOut) Type() MsgType { return TypePacketOut }

func (m *PacketOut) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, m.BufferID)
	b = binary.BigEndian.AppendUint32(b, m.InPort)
	lenAt := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // actions_len, 6 bytes padding
	b, err := appendActions(b, m.Actions)
	if err != nil {
		return b, fmt.Errorf("packet out actions: %w", err)
	}
	n := len(b) - lenAt - 8
	if n > 0xffff {
		return b, fmt.Errorf("packet out actions of %d bytes overflow actions_len", n)
	}
	binary.BigEndian.PutUint16(b[lenAt:], uint16(n))
	return append(b, m.Data...), nil
}

func (m *PacketOut) decodeBody(b []byte) error {
	r := newReader(b, "packet out")
	m.BufferID, m.InPort = r.u32(), r.u32()
	n := int(r.u16())
	r.zeros(6)
	acts := r.bytes(n)
	if r.err != nil {
		return r.err
	}
	as, err := decodeActions(acts)
	if err != nil {
		return fmt.Errorf("packet out actions: %w", err)
	}
	m.Actions = as
	if n := r.remaining(); n > 0 {
		m.Data = r.copyBytes(n)
	}
	return r.done()
}
