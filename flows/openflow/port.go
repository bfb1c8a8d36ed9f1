package openflow

import (
	"encoding/binary"
	"fmt"
	"strings"
)

func init() {
	registerSimple[PortStatus](TypePortStatus)
	registerSimple[PortMod](TypePortMod)
	registerSimple[QueueGetConfigRequest](TypeQueueGetConfigRequest)
	registerSimple[QueueGetConfigReply](TypeQueueGetConfigReply)
}

// Port is ofp_port: one switch port as PORT_STATUS and the PORT_DESC
// multipart reply describe it.
type Port struct {
	PortNo     uint32
	HWAddr     [6]byte
	Name       string
	Config     PortConfig
	State      PortState
	Curr       uint32 // ofp_port_features bits
	Advertised uint32
	Supported  uint32
	Peer       uint32
	CurrSpeed  uint32 // kbps
	MaxSpeed   uint32 // kbps
}

// PortConfig is the ofp_port_config bitmap.
type PortConfig uint32

// Port configuration bits.
const (
	PortConfigDown       PortConfig = 1 << 0
	PortConfigNoRecv     PortConfig = 1 << 2
	PortConfigNoFwd      PortConfig = 1 << 5
	PortConfigNoPacketIn PortConfig = 1 << 6
)

// PortState is the ofp_port_state bitmap.
type PortState uint32

// Port state bits.
const (
	PortStateLinkDown PortState = 1 << 0
	PortStateBlocked  PortState = 1 << 1
	PortStateLive     PortState = 1 << 2
)

const (
	portLen     = 64
	portNameLen = 16 // OFP_MAX_PORT_NAME_LEN, NUL included
)

func appendPort(b []byte, p *Port) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, p.PortNo)
	b = append(b, 0, 0, 0, 0)
	b = append(b, p.HWAddr[:]...)
	b = append(b, 0, 0)
	b, err := appendFixedString(b, p.Name, portNameLen)
	if err != nil {
		return b, fmt.Errorf("port %d name: %w", p.PortNo, err)
	}
	for _, v := range [...]uint32{uint32(p.Config), uint32(p.State), p.Curr, p.Advertised, p.Supported, p.Peer, p.CurrSpeed, p.MaxSpeed} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b, nil
}

func decodePort(r *reader) Port {
	var p Port
	p.PortNo = r.u32()
	r.zeros(4)
	copy(p.HWAddr[:], r.bytes(6))
	r.zeros(2)
	p.Name = r.fixedString(portNameLen)
	p.Config, p.State = PortConfig(r.u32()), PortState(r.u32())
	p.Curr, p.Advertised, p.Supported, p.Peer = r.u32(), r.u32(), r.u32(), r.u32()
	p.CurrSpeed, p.MaxSpeed = r.u32(), r.u32()
	return p
}

// appendFixedString writes s into a NUL-padded field of n bytes. A string of
// exactly n bytes fills the field without a NUL, as a switch may send it;
// accepting that keeps such a field round-tripping.
func appendFixedString(b []byte, s string, n int) ([]byte, error) {
	if len(s) > n {
		return b, fmt.Errorf("%q is longer than its %d-byte field", s, n)
	}
	b = append(b, s...)
	return appendZeros(b, n-len(s)), nil
}

// fixedString reads a NUL-padded field. Only trailing NULs are dropped, so
// that whatever a switch left before them survives a round trip.
func (r *reader) fixedString(n int) string {
	return strings.TrimRight(string(r.bytes(n)), "\x00")
}

// PortReason is why a PORT_STATUS was sent (ofp_port_reason).
type PortReason uint8

// Port status reasons.
const (
	PortReasonAdd    PortReason = 0
	PortReasonDelete PortReason = 1
	PortReasonModify PortReason = 2
)

// PortStatus is OFPT_PORT_STATUS: the switch reports a port added, removed
// or changed.
type PortStatus struct {
	Reason PortReason
	Port   Port
}

func (*PortStatus) Type() MsgType { return TypePortStatus }

func (m *PortStatus) appendBody(b []byte) ([]byte, error) {
	b = append(b, uint8(m.Reason), 0, 0, 0, 0, 0, 0, 0)
	return appendPort(b, &m.Port)
}

func (m *PortStatus) decodeBody(b []byte) error {
	r := newReader(b, "port status")
	m.Reason = PortReason(r.u8())
	r.zeros(7)
	m.Port = decodePort(r)
	return r.done()
}

// PortMod is OFPT_PORT_MOD: change the Config bits selected by Mask.
// HWAddr must be the port's current address (the switch checks it).
type PortMod struct {
	PortNo    uint32
	HWAddr    [6]byte
	Config    PortConfig
	Mask      PortConfig
	Advertise uint32 // ofp_port_features bits; zero leaves them alone
}

func (*PortMod) Type() MsgType { return TypePortMod }

func (m *PortMod) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, m.PortNo)
	b = append(b, 0, 0, 0, 0)
	b = append(b, m.HWAddr[:]...)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(m.Config))
	b = binary.BigEndian.AppendUint32(b, uint32(m.Mask))
	b = binary.BigEndian.AppendUint32(b, m.Advertise)
	return append(b, 0, 0, 0, 0), nil
}

func (m *PortMod) decodeBody(b []byte) error {
	r := newReader(b, "port mod")
	m.PortNo = r.u32()
	r.zeros(4)
	copy(m.HWAddr[:], r.bytes(6))
	r.zeros(2)
	m.Config, m.Mask, m.Advertise = PortConfig(r.u32()), PortConfig(r.u32()), r.u32()
	r.zeros(4)
	return r.done()
}

// PortStatsRequest asks for the counters of PortNo, or of every port with
// PortAny.
type PortStatsRequest struct{ PortNo uint32 }

func (*PortStatsRequest) MultipartType() MultipartType { return MultipartPortStats }
func (*PortStatsRequest) multipartRequest()            {}

func (m *PortStatsRequest) appendMultipart(b []byte) ([]byte, error) {
	return appendIDRequest(b, m.PortNo), nil
}

func (m *PortStatsRequest) decodeMultipart(b []byte) error {
	return decodeIDRequest(b, "port stats request", &m.PortNo)
}

// PortStats is ofp_port_stats.
type PortStats struct {
	PortNo       uint32
	RxPackets    uint64
	TxPackets    uint64
	RxBytes      uint64
	TxBytes      uint64
	RxDropped    uint64
	TxDropped    uint64
	RxErrors     uint64
	TxErrors     uint64
	RxFrameErr   uint64
	RxOverErr    uint64
	RxCRCErr     uint64
	Collisions   uint64
	DurationSec  uint32
	DurationNsec uint32
}

// PortStatsReply lists PortStats.
type PortStatsReply struct{ Stats []PortStats }

func (*PortStatsReply) MultipartType() MultipartType { return MultipartPortStats }
func (*PortStatsReply) multipartReply()              {}

func (s *PortStats) counters() [12]*uint64 {
	return [12]*uint64{&s.RxPackets, &s.TxPackets, &s.RxBytes, &s.TxBytes, &s.RxDropped, &s.TxDropped,
		&s.RxErrors, &s.TxErrors, &s.RxFrameErr, &s.RxOverErr, &s.RxCRCErr, &s.Collisions}
}

func (m *PortStatsReply) appendMultipart(b []byte) ([]byte, error) {
	for i := range m.Stats {
		s := &m.Stats[i]
		b = binary.BigEndian.AppendUint32(b, s.PortNo)
		b = append(b, 0, 0, 0, 0)
		for _, c := range s.counters() {
			b = binary.BigEndian.AppendUint64(b, *c)
		}
		b = binary.BigEndian.AppendUint32(b, s.DurationSec)
		b = binary.BigEndian.AppendUint32(b, s.DurationNsec)
	}
	return b, nil
}

func (m *PortStatsReply) decodeMultipart(b []byte) error {
	return fixedEntries(b, 112, "port stats", func(r *reader) {
		var s PortStats
		s.PortNo = r.u32()
		r.zeros(4)
		for _, c := range s.counters() {
			*c = r.u64()
		}
		s.DurationSec, s.DurationNsec = r.u32(), r.u32()
		m.Stats = append(m.Stats, s)
	})
}

// PortDescRequest asks for the description of every port.
type PortDescRequest struct{ emptyBody }

func (*PortDescRequest) MultipartType() MultipartType { return MultipartPortDesc }

// PortDescReply lists the switch's ports.
type PortDescReply struct{ Ports []Port }

func (*PortDescReply) MultipartType() MultipartType { return MultipartPortDesc }
func (*PortDescReply) multipartReply()              {}

func (m *PortDescReply) appendMultipart(b []byte) ([]byte, error) {
	var err error
	for i := range m.Ports {
		if b, err = appendPort(b, &m.Ports[i]); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (m *PortDescReply) decodeMultipart(b []byte) error {
	return fixedEntries(b, portLen, "port description", func(r *reader) {
		m.Ports = append(m.Ports, decodePort(r))
	})
}

// QueueGetConfigRequest asks for the queues configured on PortNo (PortAny
// for every port).
type QueueGetConfigRequest struct{ PortNo uint32 }

func (*QueueGetConfigRequest) Type() MsgType { return TypeQueueGetConfigRequest }

func (m *QueueGetConfigRequest) appendBody(b []byte) ([]byte, error) {
	return appendIDRequest(b, m.PortNo), nil
}

func (m *QueueGetConfigRequest) decodeBody(b []byte) error {
	return decodeIDRequest(b, "queue get config request", &m.PortNo)
}

// QueueGetConfigReply lists the queues of PortNo.
type QueueGetConfigReply struct {
	PortNo uint32
	Queues []PacketQueue
}

// PacketQueue is ofp_packet_queue.
type PacketQueue struct {
	QueueID    uint32
	PortNo     uint32
	Properties []QueueProp
}

// QueuePropType is ofp_queue_properties.
type QueuePropType uint16

// Queue property types.
const (
	QueuePropMinRate      QueuePropType = 1
	QueuePropMaxRate      QueuePropType = 2
	QueuePropExperimenter QueuePropType = 0xffff
)

// QueueProp is one queue property: Rate (in 1/10 of a percent) for the min
// and max rate properties, Experimenter and Data for experimenter ones.
type QueueProp struct {
	Type         QueuePropType
	Rate         uint16
	Experimenter uint32
	Data         []byte
}

const (
	packetQueueLen = 16
	queuePropLen   = 16 // every property's fixed part
)

func (*QueueGetConfigReply) Type() MsgType { return TypeQueueGetConfigReply }

func (m *QueueGetConfigReply) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, m.PortNo)
	b = append(b, 0, 0, 0, 0)
	for _, q := range m.Queues {
		start := len(b)
		b = binary.BigEndian.AppendUint32(b, q.QueueID)
		b = binary.BigEndian.AppendUint32(b, q.PortNo)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // length, 6 bytes of padding
		for _, p := range q.Properties {
			pstart := len(b)
			b = binary.BigEndian.AppendUint16(b, uint16(p.Type))
			b = append(b, 0, 0, 0, 0, 0, 0)
			switch p.Type {
			case QueuePropMinRate, QueuePropMaxRate:
				b = binary.BigEndian.AppendUint16(b, p.Rate)
				b = append(b, 0, 0, 0, 0, 0, 0)
			case QueuePropExperimenter:
				b = binary.BigEndian.AppendUint32(b, p.Experimenter)
				b = append(b, 0, 0, 0, 0)
				b = append(b, p.Data...)
			default:
				return b, fmt.Errorf("queue %d: unknown property type %d", q.QueueID, p.Type)
			}
			var err error
			if b, err = putLen16(b, pstart); err != nil {
				return b, fmt.Errorf("queue %d property: %w", q.QueueID, err)
			}
		}
		var err error
		if b, err = putEntryLen(b, start, 8); err != nil {
			return b, fmt.Errorf("queue %d: %w", q.QueueID, err)
		}
	}
	return b, nil
}

func (m *QueueGetConfigReply) decodeBody(b []byte) error {
	r := newReader(b, "queue get config reply")
	m.PortNo = r.u32()
	r.zeros(4)
	rest := r.rest()
	if r.err != nil {
		return r.err
	}
	return lengthEntries(rest, 8, packetQueueLen, "queue", func(e []byte) error {
		var q PacketQueue
		qr := newReader(e, "queue")
		q.QueueID, q.PortNo = qr.u32(), qr.u32()
		qr.skip(2)
		qr.zeros(6)
		err := lengthEntries(qr.rest(), 2, queuePropLen, "queue property", func(pe []byte) error {
			var p QueueProp
			pr := newReader(pe, "queue property")
			p.Type = QueuePropType(pr.u16())
			pr.skip(2)
			pr.zeros(4)
			switch p.Type {
			case QueuePropMinRate, QueuePropMaxRate:
				p.Rate = pr.u16()
				pr.zeros(6)
			case QueuePropExperimenter:
				p.Experimenter = pr.u32()
				pr.zeros(4)
				if n := pr.remaining(); n > 0 {
					p.Data = pr.copyBytes(n)
				}
			default:
				return unsupported("queue property type %d", p.Type)
			}
			q.Properties = append(q.Properties, p)
			return pr.done()
		})
		if err != nil {
			return err
		}
		m.Queues = append(m.Queues, q)
		return qr.err
	})
}
