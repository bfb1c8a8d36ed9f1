package openflow

import (
	"encoding/binary"
	"fmt"
)

func init() {
	registerSimple[GroupMod](TypeGroupMod)
}

// GroupModCommand is ofp_group_mod_command.
type GroupModCommand uint16

// Group mod commands.
const (
	GroupAdd    GroupModCommand = 0
	GroupModify GroupModCommand = 1
	GroupDelete GroupModCommand = 2
)

// GroupType is ofp_group_type.
type GroupType uint8

// Group types.
const (
	GroupTypeAll      GroupType = 0 // every bucket (multicast, flooding)
	GroupTypeSelect   GroupType = 1 // one bucket chosen by the switch (ECMP)
	GroupTypeIndirect GroupType = 2 // the single bucket
	GroupTypeFF       GroupType = 3 // the first live bucket (fast failover)
)

// Reserved group ids.
const (
	// GroupAll (OFPG_ALL) names every group in a group deletion or
	// statistics request.
	GroupAll uint32 = 0xfffffffc
	// GroupAny (OFPG_ANY) in a flow mod or flow statistics request
	// disables filtering on output group.
	GroupAny uint32 = 0xffffffff
)

// Bucket is ofp_bucket. Weight matters to select groups, WatchPort and
// WatchGroup to fast-failover groups (PortAny and GroupAny when unused).
type Bucket struct {
	Weight     uint16
	WatchPort  uint32
	WatchGroup uint32
	Actions    []Action
}

func appendBuckets(b []byte, bs []Bucket) ([]byte, error) {
	for i := range bs {
		start := len(b)
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint16(b, bs[i].Weight)
		b = binary.BigEndian.AppendUint32(b, bs[i].WatchPort)
		b = binary.BigEndian.AppendUint32(b, bs[i].WatchGroup)
		b = append(b, 0, 0, 0, 0)
		var err error
		b, err = appendActions(b, bs[i].Actions)
		if err != nil {
			return b, fmt.Errorf("bucket %d: %w", i, err)
		}
		n := len(b) - start
		if n > 0xffff {
			return b, fmt.Errorf("bucket %d of %d bytes overflows its length", i, n)
		}
		binary.BigEndian.PutUint16(b[start:], uint16(n))
	}
	return b, nil
}

const bucketLen = 16 // ofp_bucket before its actions

func decodeBuckets(b []byte) ([]Bucket, error) {
	var bs []Bucket
	r := newReader(b, "bucket")
	for r.remaining() > 0 {
		n := int(r.u16())
		if r.err == nil && n < bucketLen {
			return nil, malformed("bucket %d: length %d, header alone is %d", len(bs), n, bucketLen)
		}
		var bk Bucket
		bk.Weight, bk.WatchPort, bk.WatchGroup = r.u16(), r.u32(), r.u32()
		r.zeros(4)
		acts := r.bytes(n - bucketLen)
		if r.err != nil {
			return nil, r.err
		}
		as, err := decodeActions(acts)
		if err != nil {
			return nil, fmt.Errorf("bucket %d: %w", len(bs), err)
		}
		bk.Actions = as
		bs = append(bs, bk)
	}
	return bs, r.err
}

// GroupMod is OFPT_GROUP_MOD.
type GroupMod struct {
	Command   GroupModCommand
	GroupType GroupType
	GroupID   uint32
	Buckets   []Bucket
}

func (*GroupMod) Type() MsgType { return TypeGroupMod }

func (m *GroupMod) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(m.Command))
	b = append(b, uint8(m.GroupType), 0)
	b = binary.BigEndian.AppendUint32(b, m.GroupID)
	b, err := appendBuckets(b, m.Buckets)
	if err != nil {
		return b, fmt.Errorf("group %d: %w", m.GroupID, err)
	}
	return b, nil
}

func (m *GroupMod) decodeBody(b []byte) error {
	r := newReader(b, "group mod")
	m.Command, m.GroupType = GroupModCommand(r.u16()), GroupType(r.u8())
	r.zeros(1)
	m.GroupID = r.u32()
	rest := r.rest()
	if r.err != nil {
		return r.err
	}
	bs, err := decodeBuckets(rest)
	if err != nil {
		return fmt.Errorf("group %d: %w", m.GroupID, err)
	}
	m.Buckets = bs
	return nil
}

// GroupStatsRequest asks for the counters of GroupID, or of every group
// with GroupAll.
type GroupStatsRequest struct{ GroupID uint32 }

func (*GroupStatsRequest) MultipartType() MultipartType { return MultipartGroup }
func (*GroupStatsRequest) multipartRequest()            {}

func (m *GroupStatsRequest) appendMultipart(b []byte) ([]byte, error) {
	return appendIDRequest(b, m.GroupID), nil
}

func (m *GroupStatsRequest) decodeMultipart(b []byte) error {
	return decodeIDRequest(b, "group stats request", &m.GroupID)
}

// BucketCounter is ofp_bucket_counter.
type BucketCounter struct{ PacketCount, ByteCount uint64 }

// GroupStats is ofp_group_stats.
type GroupStats struct {
	GroupID      uint32
	RefCount     uint32
	PacketCount  uint64
	ByteCount    uint64
	DurationSec  uint32
	DurationNsec uint32
	Buckets      []BucketCounter
}

// GroupStatsReply lists GroupStats.
type GroupStatsReply struct{ Stats []GroupStats }

func (*GroupStatsReply) MultipartType() MultipartType { return MultipartGroup }
func (*GroupStatsReply) multipartReply()              {}

const groupStatsLen = 40 // ofp_group_stats before its bucket counters

func (m *GroupStatsReply) appendMultipart(b []byte) ([]byte, error) {
	for i := range m.Stats {
		s := &m.Stats[i]
		start := len(b)
		b = append(b, 0, 0, 0, 0)
		b = binary.BigEndian.AppendUint32(b, s.GroupID)
		b = binary.BigEndian.AppendUint32(b, s.RefCount)
		b = append(b, 0, 0, 0, 0)
		b = binary.BigEndian.AppendUint64(b, s.PacketCount)
		b = binary.BigEndian.AppendUint64(b, s.ByteCount)
		b = binary.BigEndian.AppendUint32(b, s.DurationSec)
		b = binary.BigEndian.AppendUint32(b, s.DurationNsec)
		for _, c := range s.Buckets {
			b = binary.BigEndian.AppendUint64(b, c.PacketCount)
			b = binary.BigEndian.AppendUint64(b, c.ByteCount)
		}
		var err error
		b, err = putEntryLen(b, start, 0)
		if err != nil {
			return b, fmt.Errorf("group stats %d: %w", i, err)
		}
	}
	return b, nil
}

func (m *GroupStatsReply) decodeMultipart(b []byte) error {
	return lengthEntries(b, 0, groupStatsLen, "group stats", func(e []byte) error {
		var s GroupStats
		r := newReader(e, "group stats")
		r.skip(2)
		r.zeros(2)
		s.GroupID, s.RefCount = r.u32(), r.u32()
		r.zeros(4)
		s.PacketCount, s.ByteCount, s.DurationSec, s.DurationNsec = r.u64(), r.u64(), r.u32(), r.u32()
		if r.remaining()%16 != 0 {
			return malformed("bucket counters of %d bytes, not a multiple of 16", r.remaining())
		}
		for r.remaining() > 0 {
			s.Buckets = append(s.Buckets, BucketCounter{PacketCount: r.u64(), ByteCount: r.u64()})
		}
		m.Stats = append(m.Stats, s)
		return r.done()
	})
}

// GroupDescRequest asks for the description of every group.
type GroupDescRequest struct{ emptyBody }

func (*GroupDescRequest) MultipartType() MultipartType { return MultipartGroupDesc }

// GroupDesc is ofp_group_desc: one group as the switch holds it.
type GroupDesc struct {
	GroupType GroupType
	GroupID   uint32
	Buckets   []Bucket
}

// GroupDescReply lists GroupDesc.
type GroupDescReply struct{ Groups []GroupDesc }

func (*GroupDescReply) MultipartType() MultipartType { return MultipartGroupDesc }
func (*GroupDescReply) multipartReply()              {}

func (m *GroupDescReply) appendMultipart(b []byte) ([]byte, error) {
	for i := range m.Groups {
		g := &m.Groups[i]
		start := len(b)
		b = append(b, 0, 0, uint8(g.GroupType), 0)
		b = binary.BigEndian.AppendUint32(b, g.GroupID)
		var err error
		b, err = appendBuckets(b, g.Buckets)
		if err == nil {
			b, err = putEntryLen(b, start, 0)
		}
		if err != nil {
			return b, fmt.Errorf("group %d: %w", g.GroupID, err)
		}
	}
	return b, nil
}

func (m *GroupDescReply) decodeMultipart(b []byte) error {
	return lengthEntries(b, 0, 8, "group description", func(e []byte) error {
		var g GroupDesc
		r := newReader(e, "group description")
		r.skip(2)
		g.GroupType = GroupType(r.u8())
		r.zeros(1)
		g.GroupID = r.u32()
		bs, err := decodeBuckets(r.rest())
		if err != nil {
			return err
		}
		g.Buckets = bs
		m.Groups = append(m.Groups, g)
		return r.err
	})
}

// GroupFeaturesRequest asks what groups the switch supports.
type GroupFeaturesRequest struct{ emptyBody }

func (*GroupFeaturesRequest) MultipartType() MultipartType { return MultipartGroupFeatures }

// GroupFeaturesReply is ofp_group_features. Types and Capabilities are
// bitmaps (1<<GroupType, OFPGFC_*); MaxGroups and Actions (1<<action type)
// are indexed by GroupType.
type GroupFeaturesReply struct {
	Types        uint32
	Capabilities uint32
	MaxGroups    [4]uint32
	Actions      [4]uint32
}

func (*GroupFeaturesReply) MultipartType() MultipartType { return MultipartGroupFeatures }
func (*GroupFeaturesReply) multipartReply()              {}

func (m *GroupFeaturesReply) appendMultipart(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, m.Types)
	b = binary.BigEndian.AppendUint32(b, m.Capabilities)
	for _, v := range append(m.MaxGroups[:], m.Actions[:]...) {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b, nil
}

func (m *GroupFeaturesReply) decodeMultipart(b []byte) error {
	r := newReader(b, "group features")
	m.Types, m.Capabilities = r.u32(), r.u32()
	for i := range m.MaxGroups {
		m.MaxGroups[i] = r.u32()
	}
	for i := range m.Actions {
		m.Actions[i] = r.u32()
	}
	return r.done()
}
