package openflow

import (
	"encoding/binary"
	"fmt"
)

func init() {
	registerSimple[FlowMod](TypeFlowMod)
	registerSimple[FlowRemoved](TypeFlowRemoved)
}

// FlowModCommand is ofp_flow_mod_command.
type FlowModCommand uint8

// Flow mod commands.
const (
	FlowAdd          FlowModCommand = 0
	FlowModify       FlowModCommand = 1
	FlowModifyStrict FlowModCommand = 2
	FlowDelete       FlowModCommand = 3
	FlowDeleteStrict FlowModCommand = 4
)

// FlowModFlags is the ofp_flow_mod_flags bitmap.
type FlowModFlags uint16

// Flow mod flags.
const (
	FlowSendFlowRemoved FlowModFlags = 1 << 0
	FlowCheckOverlap    FlowModFlags = 1 << 1
	FlowResetCounts     FlowModFlags = 1 << 2
	FlowNoPacketCounts  FlowModFlags = 1 << 3
	FlowNoByteCounts    FlowModFlags = 1 << 4
)

// NoBuffer (OFP_NO_BUFFER) is the buffer id of a message that refers to no
// packet buffered in the switch.
const NoBuffer uint32 = 0xffffffff

// FlowMod is OFPT_FLOW_MOD. For deletions, OutPort and OutGroup filter the
// flows affected; PortAny and GroupAny disable the filter (a zero would
// restrict deletion to flows that output to port 0).
type FlowMod struct {
	Cookie       uint64
	CookieMask   uint64
	TableID      uint8
	Command      FlowModCommand
	IdleTimeout  uint16
	HardTimeout  uint16
	Priority     uint16
	BufferID     uint32
	OutPort      uint32
	OutGroup     uint32
	Flags        FlowModFlags
	Match        Match
	Instructions []Instruction
}

func (*FlowMod) Type() MsgType { return TypeFlowMod }

func (m *FlowMod) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, m.Cookie)
	b = binary.BigEndian.AppendUint64(b, m.CookieMask)
	b = append(b, m.TableID, uint8(m.Command))
	b = binary.BigEndian.AppendUint16(b, m.IdleTimeout)
	b = binary.BigEndian.AppendUint16(b, m.HardTimeout)
	b = binary.BigEndian.AppendUint16(b, m.Priority)
	b = binary.BigEndian.AppendUint32(b, m.BufferID)
	b = binary.BigEndian.AppendUint32(b, m.OutPort)
	b = binary.BigEndian.AppendUint32(b, m.OutGroup)
	b = binary.BigEndian.AppendUint16(b, uint16(m.Flags))
	b = append(b, 0, 0)
	b = appendMatch(b, m.Match)
	b, err := appendInstructions(b, m.Instructions)
	if err != nil {
		return b, fmt.Errorf("flow mod instructions: %w", err)
	}
	return b, nil
}

func (m *FlowMod) decodeBody(b []byte) error {
	r := newReader(b, "flow mod")
	m.Cookie, m.CookieMask = r.u64(), r.u64()
	m.TableID, m.Command = r.u8(), FlowModCommand(r.u8())
	m.IdleTimeout, m.HardTimeout, m.Priority = r.u16(), r.u16(), r.u16()
	m.BufferID, m.OutPort, m.OutGroup = r.u32(), r.u32(), r.u32()
	m.Flags = FlowModFlags(r.u16())
	r.zeros(2)
	m.Match = decodeMatch(r)
	rest := r.rest()
	if r.err != nil {
		return r.err
	}
	is, err := decodeInstructions(rest)
	if err != nil {
		return fmt.Errorf("flow mod instructions: %w", err)
	}
	m.Instructions = is
	return nil
}

// FlowRemovedReason is ofp_flow_removed_reason.
type FlowRemovedReason uint8

// Flow removed reasons.
const (
	FlowRemovedIdleTimeout FlowRemovedReason = 0
	FlowRemovedHardTimeout FlowRemovedReason = 1
	FlowRemovedDelete      FlowRemovedReason = 2
	FlowRemovedGroupDelete FlowRemovedReason = 3
	// FlowRemovedMeterDelete is OpenFlow 1.4's, which OVS also sends on 1.3.
	FlowRemovedMeterDelete FlowRemovedReason = 4
)

// FlowRemoved is OFPT_FLOW_REMOVED, sent for flows added with
// FlowSendFlowRemoved when they expire or are deleted.
type FlowRemoved struct {
	Cookie       uint64
	Priority     uint16
	Reason       FlowRemovedReason
	TableID      uint8
	DurationSec  uint32
	DurationNsec uint32
	IdleTimeout  uint16
	HardTimeout  uint16
	PacketCount  uint64
	ByteCount    uint64
	Match        Match
}

func (*FlowRemoved) Type() MsgType { return TypeFlowRemoved }

func (m *FlowRemoved) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, m.Cookie)
	b = binary.BigEndian.AppendUint16(b, m.Priority)
	b = append(b, uint8(m.Reason), m.TableID)
	b = binary.BigEndian.AppendUint32(b, m.DurationSec)
	b = binary.BigEndian.AppendUint32(b, m.DurationNsec)
	b = binary.BigEndian.AppendUint16(b, m.IdleTimeout)
	b = binary.BigEndian.AppendUint16(b, m.HardTimeout)
	b = binary.BigEndian.AppendUint64(b, m.PacketCount)
	b = binary.BigEndian.AppendUint64(b, m.ByteCount)
	return appendMatch(b, m.Match), nil
}

func (m *FlowRemoved) decodeBody(b []byte) error {
	r := newReader(b, "flow removed")
	m.Cookie, m.Priority = r.u64(), r.u16()
	m.Reason, m.TableID = FlowRemovedReason(r.u8()), r.u8()
	m.DurationSec, m.DurationNsec = r.u32(), r.u32()
	m.IdleTimeout, m.HardTimeout = r.u16(), r.u16()
	m.PacketCount, m.ByteCount = r.u64(), r.u64()
	m.Match = decodeMatch(r)
	return r.done()
}

// FlowStatsRequest is ofp_flow_stats_request: the flows in TableID (or
// TableAll) that match Match, output to OutPort and OutGroup (PortAny and
// GroupAny for any) and whose cookie agrees with Cookie on CookieMask.
type FlowStatsRequest struct {
	TableID    uint8
	OutPort    uint32
	OutGroup   uint32
	Cookie     uint64
	CookieMask uint64
	Match      Match
}

// FlowStatsByCookie asks for the flows of table (or TableAll) whose cookie
// agrees with cookie on mask, whatever they match and output to: how a
// controller reads the flows it owns and leaves the others' alone.
func FlowStatsByCookie(table uint8, cookie, mask uint64) *FlowStatsRequest {
	return &FlowStatsRequest{TableID: table, OutPort: PortAny, OutGroup: GroupAny, Cookie: cookie, CookieMask: mask}
}

func (*FlowStatsRequest) MultipartType() MultipartType { return MultipartFlow }
func (*FlowStatsRequest) multipartRequest()            {}

func (m *FlowStatsRequest) appendMultipart(b []byte) ([]byte, error) {
	b = append(b, m.TableID, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, m.OutPort)
	b = binary.BigEndian.AppendUint32(b, m.OutGroup)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, m.Cookie)
	b = binary.BigEndian.AppendUint64(b, m.CookieMask)
	return appendMatch(b, m.Match), nil
}

func (m *FlowStatsRequest) decodeMultipart(b []byte) error {
	r := newReader(b, "flow stats request")
	m.TableID = r.u8()
	r.zeros(3)
	m.OutPort, m.OutGroup = r.u32(), r.u32()
	r.zeros(4)
	m.Cookie, m.CookieMask = r.u64(), r.u64()
	m.Match = decodeMatch(r)
	return r.done()
}

// AggregateStatsRequest selects flows as FlowStatsRequest does, and asks
// for their summed counters.
type AggregateStatsRequest struct{ FlowStatsRequest }

func (*AggregateStatsRequest) MultipartType() MultipartType { return MultipartAggregate }

// AggregateStatsReply is ofp_aggregate_stats_reply.
type AggregateStatsReply struct {
	PacketCount uint64
	ByteCount   uint64
	FlowCount   uint32
}

func (*AggregateStatsReply) MultipartType() MultipartType { return MultipartAggregate }
func (*AggregateStatsReply) multipartReply()              {}

func (m *AggregateStatsReply) appendMultipart(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, m.PacketCount)
	b = binary.BigEndian.AppendUint64(b, m.ByteCount)
	b = binary.BigEndian.AppendUint32(b, m.FlowCount)
	return append(b, 0, 0, 0, 0), nil
}

func (m *AggregateStatsReply) decodeMultipart(b []byte) error {
	r := newReader(b, "aggregate stats reply")
	m.PacketCount, m.ByteCount, m.FlowCount = r.u64(), r.u64(), r.u32()
	r.zeros(4)
	return r.done()
}

// FlowStats is ofp_flow_stats: one flow as the switch holds it.
type FlowStats struct {
	TableID      uint8
	DurationSec  uint32
	DurationNsec uint32
	Priority     uint16
	IdleTimeout  uint16
	HardTimeout  uint16
	Flags        FlowModFlags
	Cookie       uint64
	PacketCount  uint64
	ByteCount    uint64
	Match        Match
	Instructions []Instruction
}

// FlowStatsReply lists FlowStats.
type FlowStatsReply struct{ Stats []FlowStats }

func (*FlowStatsReply) MultipartType() MultipartType { return MultipartFlow }
func (*FlowStatsReply) multipartReply()              {}

const flowStatsLen = 48 // ofp_flow_stats before its match

func (m *FlowStatsReply) appendMultipart(b []byte) ([]byte, error) {
	for i := range m.Stats {
		s := &m.Stats[i]
		start := len(b)
		b = append(b, 0, 0, s.TableID, 0)
		b = binary.BigEndian.AppendUint32(b, s.DurationSec)
		b = binary.BigEndian.AppendUint32(b, s.DurationNsec)
		b = binary.BigEndian.AppendUint16(b, s.Priority)
		b = binary.BigEndian.AppendUint16(b, s.IdleTimeout)
		b = binary.BigEndian.AppendUint16(b, s.HardTimeout)
		b = binary.BigEndian.AppendUint16(b, uint16(s.Flags))
		b = append(b, 0, 0, 0, 0)
		b = binary.BigEndian.AppendUint64(b, s.Cookie)
		b = binary.BigEndian.AppendUint64(b, s.PacketCount)
		b = binary.BigEndian.AppendUint64(b, s.ByteCount)
		b = appendMatch(b, s.Match)
		var err error
		b, err = appendInstructions(b, s.Instructions)
		if err == nil {
			b, err = putEntryLen(b, start, 0)
		}
		if err != nil {
			return b, fmt.Errorf("flow stats %d: %w", i, err)
		}
	}
	return b, nil
}

func (m *FlowStatsReply) decodeMultipart(b []byte) error {
	if n := countEntries(b, 0, flowStatsLen); n > 0 {
		m.Stats = make([]FlowStats, 0, n)
	}
	return lengthEntries(b, 0, flowStatsLen, "flow stats", func(e []byte) error {
		var s FlowStats
		r := newReader(e, "flow stats")
		r.skip(2)
		s.TableID = r.u8()
		r.zeros(1)
		s.DurationSec, s.DurationNsec = r.u32(), r.u32()
		s.Priority, s.IdleTimeout, s.HardTimeout = r.u16(), r.u16(), r.u16()
		s.Flags = FlowModFlags(r.u16())
		r.zeros(4)
		s.Cookie, s.PacketCount, s.ByteCount = r.u64(), r.u64(), r.u64()
		s.Match = decodeMatch(r)
		rest := r.rest()
		if r.err != nil {
			return r.err
		}
		is, err := decodeInstructions(rest)
		if err != nil {
			return err
		}
		s.Instructions = is
		m.Stats = append(m.Stats, s)
		return nil
	})
}
