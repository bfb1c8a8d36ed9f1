package openflow

import (
	"cmp"
	"encoding/binary"
	"fmt"
)

func init() {
	registerSimple[MultipartRequest](TypeMultipartRequest)
	registerSimple[MultipartReply](TypeMultipartReply)
}

// MultipartType is ofp_multipart_type.
type MultipartType uint16

// Multipart types.
const (
	MultipartDesc          MultipartType = 0
	MultipartFlow          MultipartType = 1
	MultipartAggregate     MultipartType = 2
	MultipartTable         MultipartType = 3
	MultipartPortStats     MultipartType = 4
	MultipartQueue         MultipartType = 5
	MultipartGroup         MultipartType = 6
	MultipartGroupDesc     MultipartType = 7
	MultipartGroupFeatures MultipartType = 8
	MultipartMeter         MultipartType = 9
	MultipartMeterConfig   MultipartType = 10
	MultipartMeterFeatures MultipartType = 11
	MultipartTableFeatures MultipartType = 12
	MultipartPortDesc      MultipartType = 13
	MultipartExperimenter  MultipartType = 0xffff
)

// MultipartFlags is the ofp_multipart_request_flags or
// ofp_multipart_reply_flags bitmap.
type MultipartFlags uint16

// MultipartMore (OFPMPF_REQ_MORE, OFPMPF_REPLY_MORE) says that more
// messages with the same xid continue this one.
const MultipartMore MultipartFlags = 1

const multipartHeaderLen = 8 // type, flags, 4 bytes of padding

// MultipartRequestBody is the body of one kind of multipart request, e.g.
// *FlowStatsRequest.
type MultipartRequestBody interface {
	MultipartType() MultipartType
	appendMultipart(b []byte) ([]byte, error)
	decodeMultipart(b []byte) error
	multipartRequest()
}

// MultipartReplyBody is the body of one kind of multipart reply, e.g.
// *FlowStatsReply.
type MultipartReplyBody interface {
	MultipartType() MultipartType
	appendMultipart(b []byte) ([]byte, error)
	decodeMultipart(b []byte) error
	multipartReply()
}

// MultipartRequest is OFPT_MULTIPART_REQUEST.
type MultipartRequest struct {
	Flags MultipartFlags
	Body  MultipartRequestBody
}

func (*MultipartRequest) Type() MsgType { return TypeMultipartRequest }

func (m *MultipartRequest) appendBody(b []byte) ([]byte, error) {
	if m.Body == nil {
		return b, fmt.Errorf("multipart request without a body")
	}
	return appendMultipart(b, m.Body.MultipartType(), m.Flags, m.Body.appendMultipart)
}

func (m *MultipartRequest) decodeBody(b []byte) error {
	t, flags, body, err := splitMultipart(b)
	if err != nil {
		return err
	}
	var mb MultipartRequestBody
	switch t {
	case MultipartDesc:
		mb = &DescRequest{}
	case MultipartFlow:
		mb = &FlowStatsRequest{}
	case MultipartAggregate:
		mb = &AggregateStatsRequest{}
	case MultipartTable:
		mb = &TableStatsRequest{}
	case MultipartPortStats:
		mb = &PortStatsRequest{}
	case MultipartQueue:
		mb = &QueueStatsRequest{}
	case MultipartGroup:
		mb = &GroupStatsRequest{}
	case MultipartGroupDesc:
		mb = &GroupDescRequest{}
	case MultipartGroupFeatures:
		mb = &GroupFeaturesRequest{}
	case MultipartMeter:
		mb = &MeterStatsRequest{}
	case MultipartMeterConfig:
		mb = &MeterConfigRequest{}
	case MultipartMeterFeatures:
		mb = &MeterFeaturesRequest{}
	case MultipartTableFeatures:
		mb = &TableFeaturesRequest{}
	case MultipartPortDesc:
		mb = &PortDescRequest{}
	case MultipartExperimenter:
		if err := checkExperimenterMultipart(body); err != nil {
			return err
		}
		mb = &ExperimenterRequest{}
	default:
		return unsupported("multipart request type %d", t)
	}
	if err := mb.decodeMultipart(body); err != nil {
		return fmt.Errorf("multipart request type %d: %w", t, err)
	}
	m.Flags, m.Body = flags, mb
	return nil
}

// MultipartReply is OFPT_MULTIPART_REPLY. A reply split over several
// messages is joined by a Reassembler.
type MultipartReply struct {
	Flags MultipartFlags
	Body  MultipartReplyBody
}

func (*MultipartReply) Type() MsgType { return TypeMultipartReply }

func (m *MultipartReply) appendBody(b []byte) ([]byte, error) {
	if m.Body == nil {
		return b, fmt.Errorf("multipart reply without a body")
	}
	return appendMultipart(b, m.Body.MultipartType(), m.Flags, m.Body.appendMultipart)
}

func (m *MultipartReply) decodeBody(b []byte) error {
	t, flags, body, err := splitMultipart(b)
	if err != nil {
		return err
	}
	var mb MultipartReplyBody
	switch t {
	case MultipartDesc:
		mb = &DescReply{}
	case MultipartFlow:
		mb = &FlowStatsReply{}
	case MultipartAggregate:
		mb = &AggregateStatsReply{}
	case MultipartTable:
		mb = &TableStatsReply{}
	case MultipartPortStats:
		mb = &PortStatsReply{}
	case MultipartQueue:
		mb = &QueueStatsReply{}
	case MultipartGroup:
		mb = &GroupStatsReply{}
	case MultipartGroupDesc:
		mb = &GroupDescReply{}
	case MultipartGroupFeatures:
		mb = &GroupFeaturesReply{}
	case MultipartMeter:
		mb = &MeterStatsReply{}
	case MultipartMeterConfig:
		mb = &MeterConfigReply{}
	case MultipartMeterFeatures:
		mb = &MeterFeaturesReply{}
	case MultipartTableFeatures:
		mb = &TableFeaturesReply{}
	case MultipartPortDesc:
		mb = &PortDescReply{}
	case MultipartExperimenter:
		if err := checkExperimenterMultipart(body); err != nil {
			return err
		}
		mb = &ExperimenterReply{}
	default:
		return unsupported("multipart reply type %d", t)
	}
	if err := mb.decodeMultipart(body); err != nil {
		return fmt.Errorf("multipart reply type %d: %w", t, err)
	}
	m.Flags, m.Body = flags, mb
	return nil
}

func appendMultipart(b []byte, t MultipartType, flags MultipartFlags, body func([]byte) ([]byte, error)) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	b = binary.BigEndian.AppendUint16(b, uint16(flags))
	b = append(b, 0, 0, 0, 0)
	b, err := body(b)
	if err != nil {
		return b, fmt.Errorf("multipart type %d: %w", t, err)
	}
	return b, nil
}

func splitMultipart(b []byte) (MultipartType, MultipartFlags, []byte, error) {
	r := newReader(b, "multipart header")
	t, flags := MultipartType(r.u16()), MultipartFlags(r.u16())
	r.zeros(4)
	return t, flags, r.rest(), r.err
}

// fixedEntries decodes a list of entries of one fixed size.
func fixedEntries(b []byte, size int, what string, each func(r *reader)) error {
	if len(b)%size != 0 {
		return malformed("%s list of %d bytes, not a multiple of the %d-byte entry", what, len(b), size)
	}
	r := newReader(b, what)
	for r.remaining() > 0 && r.err == nil {
		each(r)
	}
	return r.err
}

// lengthEntries decodes a list of variable-size entries, each carrying its
// own length as a 16-bit field at lenOff. each gets exactly one entry.
func lengthEntries(b []byte, lenOff, minLen int, what string, each func(e []byte) error) error {
	for off, i := 0, 0; off < len(b); i++ {
		if len(b)-off < lenOff+2 {
			return malformed("%s %d: %d bytes left, too few for its length", what, i, len(b)-off)
		}
		n := int(binary.BigEndian.Uint16(b[off+lenOff:]))
		if n < minLen || n > len(b)-off {
			return malformed("%s %d: length %d, want %d to %d", what, i, n, minLen, len(b)-off)
		}
		if err := each(b[off : off+n]); err != nil {
			return fmt.Errorf("%s %d: %w", what, i, err)
		}
		off += n
	}
	return nil
}

// countEntries counts the entries lengthEntries would visit, stopping at
// the first bad length (which lengthEntries then reports). Long lists use
// it to allocate their slice once: a 10,000-flow dump would otherwise grow
// it a dozen times.
func countEntries(b []byte, lenOff, minLen int) int {
	n := 0
	for off := 0; len(b)-off >= lenOff+2; n++ {
		l := int(binary.BigEndian.Uint16(b[off+lenOff:]))
		if l < minLen || l > len(b)-off {
			break
		}
		off += l
	}
	return n
}

// putEntryLen stores the length of the entry that started at start in its
// 16-bit field at lenOff.
func putEntryLen(b []byte, start, lenOff int) ([]byte, error) {
	n := len(b) - start
	if n > 0xffff {
		return b[:start], fmt.Errorf("entry of %d bytes overflows its 16-bit length", n)
	}
	binary.BigEndian.PutUint16(b[start+lenOff:], uint16(n))
	return b, nil
}

// emptyBody is the body of multipart requests that carry nothing.
type emptyBody struct{}

func (emptyBody) appendMultipart(b []byte) ([]byte, error) { return b, nil }
func (emptyBody) decodeMultipart(b []byte) error {
	return newReader(b, "multipart request body").done()
}
func (emptyBody) multipartRequest() {}

// DescRequest asks for the switch description.
type DescRequest struct{ emptyBody }

func (*DescRequest) MultipartType() MultipartType { return MultipartDesc }

// DescReply is ofp_desc.
type DescReply struct {
	MfrDesc   string
	HWDesc    string
	SWDesc    string
	SerialNum string
	DPDesc    string
}

const (
	descStrLen   = 256
	serialNumLen = 32
)

func (*DescReply) MultipartType() MultipartType { return MultipartDesc }
func (*DescReply) multipartReply()              {}

func (m *DescReply) appendMultipart(b []byte) ([]byte, error) {
	var err error
	for _, f := range []struct {
		s string
		n int
	}{{m.MfrDesc, descStrLen}, {m.HWDesc, descStrLen}, {m.SWDesc, descStrLen}, {m.SerialNum, serialNumLen}, {m.DPDesc, descStrLen}} {
		if b, err = appendFixedString(b, f.s, f.n); err != nil {
			return b, fmt.Errorf("switch description: %w", err)
		}
	}
	return b, nil
}

func (m *DescReply) decodeMultipart(b []byte) error {
	r := newReader(b, "switch description")
	m.MfrDesc, m.HWDesc, m.SWDesc = r.fixedString(descStrLen), r.fixedString(descStrLen), r.fixedString(descStrLen)
	m.SerialNum, m.DPDesc = r.fixedString(serialNumLen), r.fixedString(descStrLen)
	return r.done()
}

// TableStatsRequest asks for per-table counters.
type TableStatsRequest struct{ emptyBody }

func (*TableStatsRequest) MultipartType() MultipartType { return MultipartTable }

// TableStats is ofp_table_stats.
type TableStats struct {
	TableID      uint8
	ActiveCount  uint32
	LookupCount  uint64
	MatchedCount uint64
}

// TableStatsReply lists TableStats.
type TableStatsReply struct{ Stats []TableStats }

func (*TableStatsReply) MultipartType() MultipartType { return MultipartTable }
func (*TableStatsReply) multipartReply()              {}

func (m *TableStatsReply) appendMultipart(b []byte) ([]byte, error) {
	for _, s := range m.Stats {
		b = append(b, s.TableID, 0, 0, 0)
		b = binary.BigEndian.AppendUint32(b, s.ActiveCount)
		b = binary.BigEndian.AppendUint64(b, s.LookupCount)
		b = binary.BigEndian.AppendUint64(b, s.MatchedCount)
	}
	return b, nil
}

func (m *TableStatsReply) decodeMultipart(b []byte) error {
	return fixedEntries(b, 24, "table stats", func(r *reader) {
		var s TableStats
		s.TableID = r.u8()
		r.zeros(3)
		s.ActiveCount, s.LookupCount, s.MatchedCount = r.u32(), r.u64(), r.u64()
		m.Stats = append(m.Stats, s)
	})
}

// QueueAll (OFPQ_ALL) names every queue of a port in a queue statistics
// request.
const QueueAll uint32 = 0xffffffff

// QueueStatsRequest asks for the counters of QueueID (or QueueAll) on
// PortNo (or PortAny).
type QueueStatsRequest struct{ PortNo, QueueID uint32 }

func (*QueueStatsRequest) MultipartType() MultipartType { return MultipartQueue }
func (*QueueStatsRequest) multipartRequest()            {}

func (m *QueueStatsRequest) appendMultipart(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, m.PortNo)
	return binary.BigEndian.AppendUint32(b, m.QueueID), nil
}

func (m *QueueStatsRequest) decodeMultipart(b []byte) error {
	r := newReader(b, "queue stats request")
	m.PortNo, m.QueueID = r.u32(), r.u32()
	return r.done()
}

// QueueStats is ofp_queue_stats.
type QueueStats struct {
	PortNo       uint32
	QueueID      uint32
	TxBytes      uint64
	TxPackets    uint64
	TxErrors     uint64
	DurationSec  uint32
	DurationNsec uint32
}

// QueueStatsReply lists QueueStats.
type QueueStatsReply struct{ Stats []QueueStats }

func (*QueueStatsReply) MultipartType() MultipartType { return MultipartQueue }
func (*QueueStatsReply) multipartReply()              {}

func (m *QueueStatsReply) appendMultipart(b []byte) ([]byte, error) {
	for _, s := range m.Stats {
		b = binary.BigEndian.AppendUint32(b, s.PortNo)
		b = binary.BigEndian.AppendUint32(b, s.QueueID)
		b = binary.BigEndian.AppendUint64(b, s.TxBytes)
		b = binary.BigEndian.AppendUint64(b, s.TxPackets)
		b = binary.BigEndian.AppendUint64(b, s.TxErrors)
		b = binary.BigEndian.AppendUint32(b, s.DurationSec)
		b = binary.BigEndian.AppendUint32(b, s.DurationNsec)
	}
	return b, nil
}

func (m *QueueStatsReply) decodeMultipart(b []byte) error {
	return fixedEntries(b, 40, "queue stats", func(r *reader) {
		var s QueueStats
		s.PortNo, s.QueueID = r.u32(), r.u32()
		s.TxBytes, s.TxPackets, s.TxErrors = r.u64(), r.u64(), r.u64()
		s.DurationSec, s.DurationNsec = r.u32(), r.u32()
		m.Stats = append(m.Stats, s)
	})
}

// Experimenter multipart bodies of experimenters other than ONF are kept
// verbatim; ONF's (flow monitors, in OVS) have layouts the codec does not
// model, so they are refused rather than shown as opaque.
func checkExperimenterMultipart(body []byte) error {
	if len(body) >= 8 && binary.BigEndian.Uint32(body) == vendorONF {
		return unsupported("ONF experimenter multipart type %d", binary.BigEndian.Uint32(body[4:]))
	}
	return nil
}

// ExperimenterMultipart is ofp_experimenter_multipart_header and the data
// after it, shared by ExperimenterRequest and ExperimenterReply.
type ExperimenterMultipart struct {
	Experimenter uint32
	ExpType      uint32
	Data         []byte
}

func (*ExperimenterMultipart) MultipartType() MultipartType { return MultipartExperimenter }

func (m *ExperimenterMultipart) appendMultipart(b []byte) ([]byte, error) {
	if m.Experimenter == vendorONF {
		return b, fmt.Errorf("ONF experimenter multipart bodies are not modelled")
	}
	b = binary.BigEndian.AppendUint32(b, m.Experimenter)
	b = binary.BigEndian.AppendUint32(b, m.ExpType)
	return append(b, m.Data...), nil
}

func (m *ExperimenterMultipart) decodeMultipart(b []byte) error {
	r := newReader(b, "experimenter multipart")
	m.Experimenter, m.ExpType = r.u32(), r.u32()
	if n := r.remaining(); n > 0 {
		m.Data = r.copyBytes(n)
	}
	return r.err
}

// ExperimenterRequest is an experimenter multipart request.
type ExperimenterRequest struct{ ExperimenterMultipart }

func (*ExperimenterRequest) multipartRequest() {}

// ExperimenterReply is an experimenter multipart reply.
type ExperimenterReply struct{ ExperimenterMultipart }

func (*ExperimenterReply) multipartReply() {}

// Default limits of a Reassembler. 64 MiB holds several hundred thousand
// flow stats entries, well beyond the flow tables ovs-vnet writes.
const (
	DefaultReassemblyMaxBytes = 64 << 20
	DefaultReassemblyMaxParts = 1 << 16
)

// Reassembler joins a multipart reply that the switch split over several
// messages of one xid (each but the last flagged MultipartMore) into one
// MultipartReply, whose body may then exceed what one message can carry.
// It refuses a reply that grows beyond MaxBytes of body or MaxParts
// messages, so that a misbehaving switch cannot make it allocate, or loop,
// without bound; zero limits mean the defaults. A Reassembler serves one
// reply at a time and is ready for the next once Add returns done or an
// error.
type Reassembler struct {
	MaxBytes int
	MaxParts int

	xid   uint32
	parts int
	body  []byte // multipart header of the first part, then every part's entries
}

// Add takes the next message of the reply (header included). It returns
// done and the joined reply with the last part, and nothing before.
func (a *Reassembler) Add(raw []byte) (reply *MultipartReply, done bool, err error) {
	defer func() {
		if done || err != nil {
			a.parts, a.body = 0, nil
		}
	}()
	h, err := ParseHeader(raw)
	if err != nil {
		return nil, false, err
	}
	if h.Version != Version || h.Type != TypeMultipartReply || int(h.Length) != len(raw) || len(raw) < HeaderLen+multipartHeaderLen {
		return nil, false, malformed("reassembly: %s version %#x of %d bytes (header says %d) is no multipart reply", h.Type, h.Version, len(raw), h.Length)
	}
	mp := raw[HeaderLen : HeaderLen+multipartHeaderLen]
	if a.parts == 0 {
		a.xid = h.Xid
		a.body = append(a.body[:0], mp...)
		binary.BigEndian.PutUint16(a.body[2:], 0) // the joined reply is whole
	} else if h.Xid != a.xid || string(mp[:2]) != string(a.body[:2]) {
		return nil, false, malformed("reassembly: part %d has xid %#x type %d, reply has xid %#x type %d",
			a.parts, h.Xid, binary.BigEndian.Uint16(mp), a.xid, binary.BigEndian.Uint16(a.body))
	}
	a.parts++
	maxParts, maxBytes := cmp.Or(a.MaxParts, DefaultReassemblyMaxParts), cmp.Or(a.MaxBytes, DefaultReassemblyMaxBytes)
	entries := raw[HeaderLen+multipartHeaderLen:]
	if a.parts > maxParts {
		return nil, false, fmt.Errorf("reassembly of xid %#x: more than %d parts", a.xid, maxParts)
	}
	if len(a.body)-multipartHeaderLen+len(entries) > maxBytes {
		return nil, false, fmt.Errorf("reassembly of xid %#x: body exceeds %d bytes", a.xid, maxBytes)
	}
	a.body = append(a.body, entries...)
	if MultipartFlags(binary.BigEndian.Uint16(mp[2:]))&MultipartMore != 0 {
		return nil, false, nil
	}
	reply = &MultipartReply{}
	if err := reply.decodeBody(a.body); err != nil {
		return nil, false, fmt.Errorf("reassembled reply xid %#x of %d parts: %w", a.xid, a.parts, err)
	}
	return reply, true, nil
}
