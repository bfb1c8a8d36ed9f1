package openflow

import (
	"encoding/binary"
	"fmt"
)

func init() {
	registerSimple[MeterMod](TypeMeterMod)
}

// MeterModCommand is ofp_meter_mod_command.
type MeterModCommand uint16

// Meter mod commands.
const (
	MeterAdd    MeterModCommand = 0
	MeterModify MeterModCommand = 1
	MeterDelete MeterModCommand = 2
)

// MeterFlags is the ofp_meter_flags bitmap.
type MeterFlags uint16

// Meter flags.
const (
	MeterFlagKbps  MeterFlags = 1 << 0
	MeterFlagPktps MeterFlags = 1 << 1
	MeterFlagBurst MeterFlags = 1 << 2
	MeterFlagStats MeterFlags = 1 << 3
)

// MeterAll (OFPM_ALL) names every meter in a deletion or statistics request.
const MeterAll uint32 = 0xffffffff

// MeterBandType is ofp_meter_band_type.
type MeterBandType uint16

// Meter band types.
const (
	MeterBandDrop         MeterBandType = 1
	MeterBandDSCPRemark   MeterBandType = 2
	MeterBandExperimenter MeterBandType = 0xffff
)

// MeterBand is one ofp_meter_band_*. PrecLevel is used by DSCP remark
// bands only; Experimenter and Data (what follows the experimenter id, a
// multiple of 8 bytes) by experimenter bands only.
type MeterBand struct {
	Type         MeterBandType
	Rate         uint32
	BurstSize    uint32
	PrecLevel    uint8
	Experimenter uint32
	Data         []byte
}

const meterBandLen = 16

func appendMeterBands(b []byte, bands []MeterBand) ([]byte, error) {
	for i, band := range bands {
		start := len(b)
		b = binary.BigEndian.AppendUint16(b, uint16(band.Type))
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint32(b, band.Rate)
		b = binary.BigEndian.AppendUint32(b, band.BurstSize)
		switch band.Type {
		case MeterBandDrop:
			b = append(b, 0, 0, 0, 0)
		case MeterBandDSCPRemark:
			b = append(b, band.PrecLevel, 0, 0, 0)
		case MeterBandExperimenter:
			if len(band.Data)%8 != 0 {
				return b, fmt.Errorf("meter band %d: experimenter data of %d bytes, want a multiple of 8", i, len(band.Data))
			}
			b = binary.BigEndian.AppendUint32(b, band.Experimenter)
			b = append(b, band.Data...)
		default:
			return b, fmt.Errorf("meter band %d: unknown type %d", i, band.Type)
		}
		if band.Type != MeterBandExperimenter && (band.Data != nil || band.Experimenter != 0) {
			return b, fmt.Errorf("meter band %d: type %d carries no experimenter data", i, band.Type)
		}
		if band.Type != MeterBandDSCPRemark && band.PrecLevel != 0 {
			return b, fmt.Errorf("meter band %d: type %d carries no prec_level", i, band.Type)
		}
		var err error
		b, err = putLen16(b, start)
		if err != nil {
			return b, fmt.Errorf("meter band %d: %w", i, err)
		}
	}
	return b, nil
}

func decodeMeterBands(b []byte) ([]MeterBand, error) {
	var bands []MeterBand
	r := newReader(b, "meter band")
	for r.remaining() > 0 {
		var band MeterBand
		band.Type = MeterBandType(r.u16())
		n := int(r.u16())
		if r.err == nil && (n < meterBandLen || n%8 != 0) {
			return nil, malformed("meter band %d: length %d", len(bands), n)
		}
		band.Rate, band.BurstSize = r.u32(), r.u32()
		switch band.Type {
		case MeterBandDrop, MeterBandDSCPRemark:
			if n != meterBandLen {
				return nil, malformed("meter band %d of type %d: length %d, want %d", len(bands), band.Type, n, meterBandLen)
			}
			if band.Type == MeterBandDSCPRemark {
				band.PrecLevel = r.u8()
				r.zeros(3)
			} else {
				r.zeros(4)
			}
		case MeterBandExperimenter:
			band.Experimenter = r.u32()
			if n > meterBandLen {
				band.Data = r.copyBytes(n - meterBandLen)
			}
		default:
			if r.err == nil {
				return nil, unsupported("meter band type %d", band.Type)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		bands = append(bands, band)
	}
	return bands, nil
}

// MeterMod is OFPT_METER_MOD.
type MeterMod struct {
	Command MeterModCommand
	Flags   MeterFlags
	MeterID uint32
	Bands   []MeterBand
}

func (*MeterMod) Type() MsgType { return TypeMeterMod }

func (m *MeterMod) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(m.Command))
	b = binary.BigEndian.AppendUint16(b, uint16(m.Flags))
	b = binary.BigEndian.AppendUint32(b, m.MeterID)
	b, err := appendMeterBands(b, m.Bands)
	if err != nil {
		return b, fmt.Errorf("meter %d: %w", m.MeterID, err)
	}
	return b, nil
}

func (m *MeterMod) decodeBody(b []byte) error {
	r := newReader(b, "meter mod")
	m.Command, m.Flags, m.MeterID = MeterModCommand(r.u16()), MeterFlags(r.u16()), r.u32()
	rest := r.rest()
	if r.err != nil {
		return r.err
	}
	bands, err := decodeMeterBands(rest)
	if err != nil {
		return fmt.Errorf("meter %d: %w", m.MeterID, err)
	}
	m.Bands = bands
	return nil
}

// MeterStatsRequest asks for the counters of MeterID, or of every meter
// with MeterAll.
type MeterStatsRequest struct{ MeterID uint32 }

func (*MeterStatsRequest) MultipartType() MultipartType { return MultipartMeter }
func (*MeterStatsRequest) multipartRequest()            {}

func (m *MeterStatsRequest) appendMultipart(b []byte) ([]byte, error) {
	return appendIDRequest(b, m.MeterID), nil
}

func (m *MeterStatsRequest) decodeMultipart(b []byte) error {
	return decodeIDRequest(b, "meter request", &m.MeterID)
}

// MeterConfigRequest asks for the configuration of MeterID, or of every
// meter with MeterAll.
type MeterConfigRequest struct{ MeterID uint32 }

func (*MeterConfigRequest) MultipartType() MultipartType { return MultipartMeterConfig }
func (*MeterConfigRequest) multipartRequest()            {}

func (m *MeterConfigRequest) appendMultipart(b []byte) ([]byte, error) {
	return appendIDRequest(b, m.MeterID), nil
}

func (m *MeterConfigRequest) decodeMultipart(b []byte) error {
	return decodeIDRequest(b, "meter request", &m.MeterID)
}

// MeterBandStats is ofp_meter_band_stats.
type MeterBandStats struct{ PacketBandCount, ByteBandCount uint64 }

// MeterStats is ofp_meter_stats.
type MeterStats struct {
	MeterID       uint32
	FlowCount     uint32
	PacketInCount uint64
	ByteInCount   uint64
	DurationSec   uint32
	DurationNsec  uint32
	Bands         []MeterBandStats
}

// MeterStatsReply lists MeterStats.
type MeterStatsReply struct{ Stats []MeterStats }

func (*MeterStatsReply) MultipartType() MultipartType { return MultipartMeter }
func (*MeterStatsReply) multipartReply()              {}

const meterStatsLen = 40 // ofp_meter_stats before its band counters

func (m *MeterStatsReply) appendMultipart(b []byte) ([]byte, error) {
	for i := range m.Stats {
		s := &m.Stats[i]
		start := len(b)
		b = binary.BigEndian.AppendUint32(b, s.MeterID)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // length, 6 bytes of padding
		b = binary.BigEndian.AppendUint32(b, s.FlowCount)
		b = binary.BigEndian.AppendUint64(b, s.PacketInCount)
		b = binary.BigEndian.AppendUint64(b, s.ByteInCount)
		b = binary.BigEndian.AppendUint32(b, s.DurationSec)
		b = binary.BigEndian.AppendUint32(b, s.DurationNsec)
		for _, c := range s.Bands {
			b = binary.BigEndian.AppendUint64(b, c.PacketBandCount)
			b = binary.BigEndian.AppendUint64(b, c.ByteBandCount)
		}
		var err error
		b, err = putEntryLen(b, start, 4)
		if err != nil {
			return b, fmt.Errorf("meter stats %d: %w", i, err)
		}
	}
	return b, nil
}

func (m *MeterStatsReply) decodeMultipart(b []byte) error {
	return lengthEntries(b, 4, meterStatsLen, "meter stats", func(e []byte) error {
		var s MeterStats
		r := newReader(e, "meter stats")
		s.MeterID = r.u32()
		r.skip(2)
		r.zeros(6)
		s.FlowCount, s.PacketInCount, s.ByteInCount = r.u32(), r.u64(), r.u64()
		s.DurationSec, s.DurationNsec = r.u32(), r.u32()
		if r.remaining()%16 != 0 {
			return malformed("band counters of %d bytes, not a multiple of 16", r.remaining())
		}
		for r.remaining() > 0 {
			s.Bands = append(s.Bands, MeterBandStats{PacketBandCount: r.u64(), ByteBandCount: r.u64()})
		}
		m.Stats = append(m.Stats, s)
		return r.done()
	})
}

// MeterConfig is ofp_meter_config: one meter as the switch holds it.
type MeterConfig struct {
	Flags   MeterFlags
	MeterID uint32
	Bands   []MeterBand
}

// MeterConfigReply lists MeterConfig.
type MeterConfigReply struct{ Configs []MeterConfig }

func (*MeterConfigReply) MultipartType() MultipartType { return MultipartMeterConfig }
func (*MeterConfigReply) multipartReply()              {}

func (m *MeterConfigReply) appendMultipart(b []byte) ([]byte, error) {
	for i := range m.Configs {
		c := &m.Configs[i]
		start := len(b)
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(c.Flags))
		b = binary.BigEndian.AppendUint32(b, c.MeterID)
		var err error
		b, err = appendMeterBands(b, c.Bands)
		if err == nil {
			b, err = putEntryLen(b, start, 0)
		}
		if err != nil {
			return b, fmt.Errorf("meter %d: %w", c.MeterID, err)
		}
	}
	return b, nil
}

func (m *MeterConfigReply) decodeMultipart(b []byte) error {
	return lengthEntries(b, 0, 8, "meter config", func(e []byte) error {
		var c MeterConfig
		r := newReader(e, "meter config")
		r.skip(2)
		c.Flags, c.MeterID = MeterFlags(r.u16()), r.u32()
		bands, err := decodeMeterBands(r.rest())
		if err != nil {
			return err
		}
		c.Bands = bands
		m.Configs = append(m.Configs, c)
		return r.err
	})
}

// MeterFeaturesRequest asks what meters the switch supports.
type MeterFeaturesRequest struct{ emptyBody }

func (*MeterFeaturesRequest) MultipartType() MultipartType { return MultipartMeterFeatures }

// MeterFeaturesReply is ofp_meter_features.
type MeterFeaturesReply struct {
	MaxMeter     uint32
	BandTypes    uint32 // 1<<MeterBandType
	Capabilities uint32 // MeterFlags bits
	MaxBands     uint8
	MaxColor     uint8
}

func (*MeterFeaturesReply) MultipartType() MultipartType { return MultipartMeterFeatures }
func (*MeterFeaturesReply) multipartReply()              {}

func (m *MeterFeaturesReply) appendMultipart(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, m.MaxMeter)
	b = binary.BigEndian.AppendUint32(b, m.BandTypes)
	b = binary.BigEndian.AppendUint32(b, m.Capabilities)
	return append(b, m.MaxBands, m.MaxColor, 0, 0), nil
}

func (m *MeterFeaturesReply) decodeMultipart(b []byte) error {
	r := newReader(b, "meter features")
	m.MaxMeter, m.BandTypes, m.Capabilities = r.u32(), r.u32(), r.u32()
	m.MaxBands, m.MaxColor = r.u8(), r.u8()
	r.zeros(2)
	return r.done()
}
