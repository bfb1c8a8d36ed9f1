package openflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// The Nicira actions with nested structure: ct and nat, controller2's
// properties, and learn's flow_mod specs.

// Flags of NXCT (NX_CT_F_*).
const (
	NXCTCommit uint16 = 1 << 0
	NXCTForce  uint16 = 1 << 1
)

// NXCTNoRecirc as NXCT.RecircTable means no recirculation (NX_CT_RECIRC_NONE).
const NXCTNoRecirc uint8 = 0xff

// NXCT is NXAST_CT, ovs-ofctl's ct(...). The zone is Zone unless ZoneSrc
// names a field, zone=FIELD[a..b] (OVS requires 16 bits of it). Actions
// are ct's exec(...) and nat(...). Note that the zero RecircTable is table
// 0: use NXCTNoRecirc for none.
type NXCT struct {
	Flags       uint16 // NXCTCommit, NXCTForce; other bits are kept as they came
	Zone        uint16
	ZoneSrc     SubField
	RecircTable uint8
	Alg         uint16 // well-known port of an ALG (21 ftp, 69 tftp), 0 for none
	Actions     []Action
}

func (a NXCT) appendAction(b []byte) ([]byte, error) {
	var src uint32
	zone := a.Zone
	if a.ZoneSrc.Field != (FieldRef{}) {
		var err error
		if src, err = ref32(a.ZoneSrc.Field); err != nil {
			return b, fmt.Errorf("ct zone: %w", err)
		}
		if zone, err = ofsNbits(a.ZoneSrc.Ofs, a.ZoneSrc.NBits); err != nil {
			return b, fmt.Errorf("ct zone: %w", err)
		}
	}
	b, start := nxStart(b, nxastCT)
	b = binary.BigEndian.AppendUint16(b, a.Flags)
	b = binary.BigEndian.AppendUint32(b, src)
	b = binary.BigEndian.AppendUint16(b, zone)
	b = append(b, a.RecircTable, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, a.Alg)
	b, err := appendActions(b, a.Actions)
	if err != nil {
		return b[:start], fmt.Errorf("ct: %w", err)
	}
	return putLen16(b, start)
}

func decodeCT(r *reader) (Action, error) {
	a := NXCT{Flags: r.u16()}
	src, zone := r.u32(), r.u16()
	if src != 0 {
		a.ZoneSrc.Field = refFrom32(src)
		a.ZoneSrc.Ofs, a.ZoneSrc.NBits = splitOfsNbits(zone)
	} else {
		a.Zone = zone
	}
	a.RecircTable = r.u8()
	r.zeros(3)
	a.Alg = r.u16()
	if r.err != nil {
		return nil, r.err
	}
	if a.ZoneSrc.Field.Class == OXMClassExperimenter {
		return nil, unsupported("ct: experimenter class in the 32-bit zone_src header")
	}
	as, err := decodeActions(r.rest())
	if err != nil {
		return nil, fmt.Errorf("ct: %w", err)
	}
	a.Actions = as
	return a, nil
}

// Flags of NXNAT (NX_NAT_F_*).
const (
	NXNATSrc         uint16 = 1 << 0
	NXNATDst         uint16 = 1 << 1
	NXNATPersistent  uint16 = 1 << 2
	NXNATProtoHash   uint16 = 1 << 3
	NXNATProtoRandom uint16 = 1 << 4
)

// NX_NAT_RANGE_* bits: which optional fields follow nx_action_nat.
const (
	natIPv4Min  = 1 << 0
	natIPv4Max  = 1 << 1
	natIPv6Min  = 1 << 2
	natIPv6Max  = 1 << 3
	natProtoMin = 1 << 4
	natProtoMax = 1 << 5
)

// NXNAT is NXAST_NAT, nat(src=MinAddr-MaxAddr:MinPort-MaxPort) inside ct.
// Zero values are absent: no MaxAddr means the range is the one MinAddr,
// no address at all means "apply the connection's existing NAT".
type NXNAT struct {
	Flags            uint16 // NXNATSrc, NXNATDst, ...; unknown bits are kept
	MinAddr, MaxAddr netip.Addr
	MinPort, MaxPort uint16
}

func (a NXNAT) appendAction(b []byte) ([]byte, error) {
	var present uint16
	var opts []byte
	switch {
	case a.MinAddr.Is4():
		present |= natIPv4Min
		opts = append(opts, ip4(a.MinAddr)...)
		if a.MaxAddr.IsValid() {
			if !a.MaxAddr.Is4() {
				return b, fmt.Errorf("nat: range %v-%v mixes address families", a.MinAddr, a.MaxAddr)
			}
			present |= natIPv4Max
			opts = append(opts, ip4(a.MaxAddr)...)
		}
	case a.MinAddr.Is6():
		present |= natIPv6Min
		opts = append(opts, ip6(a.MinAddr)...)
		if a.MaxAddr.IsValid() {
			if !a.MaxAddr.Is6() {
				return b, fmt.Errorf("nat: range %v-%v mixes address families", a.MinAddr, a.MaxAddr)
			}
			present |= natIPv6Max
			opts = append(opts, ip6(a.MaxAddr)...)
		}
	case a.MaxAddr.IsValid():
		return b, fmt.Errorf("nat: range has a maximum address %v but no minimum", a.MaxAddr)
	}
	if a.MinPort != 0 {
		present |= natProtoMin
		opts = binary.BigEndian.AppendUint16(opts, a.MinPort)
	}
	if a.MaxPort != 0 {
		if a.MinPort == 0 {
			return b, fmt.Errorf("nat: port range has a maximum %d but no minimum", a.MaxPort)
		}
		present |= natProtoMax
		opts = binary.BigEndian.AppendUint16(opts, a.MaxPort)
	}
	b, start := nxStart(b, nxastNAT)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, a.Flags)
	b = binary.BigEndian.AppendUint16(b, present)
	return nxFinish(append(b, opts...), start)
}

// decodeNAT follows OVS's decode_NXAST_RAW_NAT: a maximum needs its
// minimum, and IPv4 and IPv6 ranges exclude each other.
func decodeNAT(r *reader) (Action, error) {
	r.zeros(2)
	a := NXNAT{Flags: r.u16()}
	present := r.u16()
	if r.err != nil {
		return nil, r.err
	}
	if present&^0x3f != 0 {
		return nil, unsupported("nat: range_present bits %#04x", present&^0x3f)
	}
	switch {
	case present&natIPv4Min != 0:
		if present&(natIPv6Min|natIPv6Max) != 0 {
			return nil, malformed("nat: both IPv4 and IPv6 ranges (range_present %#x)", present)
		}
		a.MinAddr = r.addr4()
		if present&natIPv4Max != 0 {
			a.MaxAddr = r.addr4()
		}
	case present&natIPv4Max != 0:
		return nil, malformed("nat: IPv4 maximum without minimum")
	case present&natIPv6Min != 0:
		a.MinAddr = r.addr16()
		if present&natIPv6Max != 0 {
			a.MaxAddr = r.addr16()
		}
	case present&natIPv6Max != 0:
		return nil, malformed("nat: IPv6 maximum without minimum")
	}
	if present&natProtoMin != 0 {
		if a.MinPort = r.u16(); a.MinPort == 0 && r.err == nil {
			return nil, malformed("nat: minimum port 0")
		}
		if present&natProtoMax != 0 {
			if a.MaxPort = r.u16(); a.MaxPort == 0 && r.err == nil {
				return nil, malformed("nat: maximum port 0")
			}
		}
	} else if present&natProtoMax != 0 {
		return nil, malformed("nat: maximum port without minimum")
	}
	r.padding()
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}

// addr4 and addr16 read an address; past the end they record the error
// and return the zero address.
func (r *reader) addr4() netip.Addr {
	if b := r.bytes(4); b != nil {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.Addr{}
}

func (r *reader) addr16() netip.Addr {
	if b := r.bytes(16); b != nil {
		return netip.AddrFrom16([16]byte(b))
	}
	return netip.Addr{}
}

// NXAC2PT_* property types of NXAST_CONTROLLER2.
const (
	nxac2ptMaxLen = iota
	nxac2ptControllerID
	nxac2ptReason
	nxac2ptUserdata
	nxac2ptPause
	nxac2ptMeterID
)

// Controller2Prop bits mark NXAST_CONTROLLER2 properties to send even
// though their value is zero, so that such a property round-trips.
type Controller2Prop uint8

// Bits of NXController2.Present: 1 << the property type.
const (
	C2MaxLen       Controller2Prop = 1 << nxac2ptMaxLen
	C2ControllerID Controller2Prop = 1 << nxac2ptControllerID
	C2Reason       Controller2Prop = 1 << nxac2ptReason
	C2Userdata     Controller2Prop = 1 << nxac2ptUserdata
	C2Pause        Controller2Prop = 1 << nxac2ptPause
	C2MeterID      Controller2Prop = 1 << nxac2ptMeterID
)

// NXController2 is NXAST_CONTROLLER2, controller(...) with userdata or
// pause. A property is sent when it is not zero or its bit is in Present;
// the switch's defaults for absent ones are max_len 65535 (all), reason
// action, controller id 0, no meter.
type NXController2 struct {
	MaxLen       uint16
	ControllerID uint16
	Reason       uint8
	Userdata     []byte
	Pause        bool
	MeterID      uint32
	Present      Controller2Prop
}

func (a NXController2) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastController2)
	b = appendZeros(b, 6)
	var err error
	prop := func(typ uint16, set bool, v []byte) {
		if err != nil || (!set && a.Present&(1<<typ) == 0) {
			return
		}
		pstart := len(b)
		b = binary.BigEndian.AppendUint16(b, typ)
		b = append(b, 0, 0)
		b = append(b, v...)
		// A property's length excludes its padding.
		if b, err = putLen16(b, pstart); err == nil {
			b = appendZeros(b, pad8(len(b)-pstart))
		}
	}
	prop(nxac2ptMaxLen, a.MaxLen != 0, be32(uint32(a.MaxLen)<<16))
	prop(nxac2ptControllerID, a.ControllerID != 0, be32(uint32(a.ControllerID)<<16))
	prop(nxac2ptReason, a.Reason != 0, []byte{a.Reason})
	prop(nxac2ptUserdata, len(a.Userdata) > 0, a.Userdata)
	prop(nxac2ptPause, a.Pause, nil)
	prop(nxac2ptMeterID, a.MeterID != 0, be32(a.MeterID))
	if err != nil {
		return b[:start], fmt.Errorf("controller2: %w", err)
	}
	return putLen16(b, start)
}

// decodeController2 accepts the properties in increasing type order, each
// once, which is how OVS writes them and what re-encoding reproduces.
func decodeController2(r *reader) (Action, error) {
	r.zeros(6)
	var a NXController2
	last := -1
	for r.remaining() > 0 {
		typ, n := int(r.u16()), int(r.u16())
		if r.err == nil && n < 4 {
			return nil, malformed("controller2: property length %d", n)
		}
		v := r.bytes(n - 4)
		r.zeros(pad8(n))
		if r.err != nil {
			return nil, r.err
		}
		if typ > nxac2ptMeterID {
			return nil, unsupported("controller2 property %d", typ)
		}
		if typ <= last {
			return nil, unsupported("controller2 property %d after %d (not in OVS's order)", typ, last)
		}
		last = typ
		// OVS writes 16-bit values as 4 bytes (value, then zeros) and
		// 8-bit ones as 1; it reads shorter or longer forms too, but those
		// would not re-encode the same.
		if w := [...]int{4, 4, 1, len(v), 0, 4}[typ]; len(v) != w || (typ <= nxac2ptControllerID && (v[2] != 0 || v[3] != 0)) {
			return nil, unsupported("controller2 property %d of %d bytes %x (OVS writes %d)", typ, len(v), v, w)
		}
		zero := true
		switch typ {
		case nxac2ptMaxLen:
			a.MaxLen = binary.BigEndian.Uint16(v)
			zero = a.MaxLen == 0
		case nxac2ptControllerID:
			a.ControllerID = binary.BigEndian.Uint16(v)
			zero = a.ControllerID == 0
		case nxac2ptReason:
			a.Reason = v[0]
			zero = a.Reason == 0
		case nxac2ptUserdata:
			a.Userdata = append([]byte(nil), v...)
			zero = len(v) == 0
		case nxac2ptPause:
			a.Pause, zero = true, false
		case nxac2ptMeterID:
			a.MeterID = binary.BigEndian.Uint32(v)
			zero = a.MeterID == 0
		}
		// Only a property its value would not bring back needs its bit.
		if zero {
			a.Present |= 1 << typ
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}

// Learn spec header bits (NX_LEARN_*).
const (
	LearnSrcImmediate uint16 = 1 << 13
	LearnDstMatch     uint16 = 0 << 11
	LearnDstLoad      uint16 = 1 << 11
	LearnDstOutput    uint16 = 2 << 11
	learnDstMask      uint16 = 3 << 11
	learnNBitsMask    uint16 = 0x3ff
)

// LearnSpec is one flow_mod_spec of NXLearn: copy NBits from a field
// (SrcField[SrcOfs..]) or from Imm into a match field, a load, or an
// output of the learned flow.
type LearnSpec struct {
	Dst    uint16 // LearnDstMatch, LearnDstLoad or LearnDstOutput
	NBits  uint16
	Imm    []byte // immediate source: 2*ceil(NBits/16) bytes, right-aligned; nil for a field source
	Src    FieldRef
	SrcOfs uint16
	DstRef FieldRef // for LearnDstMatch and LearnDstLoad
	DstOfs uint16
}

// NXLearn is NXAST_LEARN: add or change a flow from the packet being
// processed.
type NXLearn struct {
	IdleTimeout, HardTimeout, Priority uint16
	Cookie                             uint64
	Flags                              uint16 // NX_LEARN_F_*
	Table                              uint8
	FinIdleTimeout, FinHardTimeout     uint16
	Specs                              []LearnSpec
}

func (a NXLearn) appendAction(b []byte) ([]byte, error) {
	b, start := nxStart(b, nxastLearn)
	for _, v := range []uint16{a.IdleTimeout, a.HardTimeout, a.Priority} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	b = binary.BigEndian.AppendUint64(b, a.Cookie)
	b = binary.BigEndian.AppendUint16(b, a.Flags)
	b = append(b, a.Table, 0)
	b = binary.BigEndian.AppendUint16(b, a.FinIdleTimeout)
	b = binary.BigEndian.AppendUint16(b, a.FinHardTimeout)
	for i, s := range a.Specs {
		var err error
		if b, err = s.append(b); err != nil {
			return b[:start], fmt.Errorf("learn spec %d: %w", i, err)
		}
	}
	return nxFinish(b, start)
}

func (s LearnSpec) append(b []byte) ([]byte, error) {
	if s.NBits > learnNBitsMask || s.Dst&^learnDstMask != 0 || s.Dst == learnDstMask {
		return b, fmt.Errorf("n_bits %d, dst %#x", s.NBits, s.Dst)
	}
	h := s.Dst | s.NBits
	if s.Imm != nil {
		h |= LearnSrcImmediate
	}
	b = binary.BigEndian.AppendUint16(b, h)
	if s.Imm != nil {
		if len(s.Imm) != learnImmLen(s.NBits) {
			return b, fmt.Errorf("immediate of %d bytes for %d bits, want %d", len(s.Imm), s.NBits, learnImmLen(s.NBits))
		}
		b = append(b, s.Imm...)
	} else {
		src, err := ref32(s.Src)
		if err != nil {
			return b, err
		}
		b = binary.BigEndian.AppendUint32(b, src)
		b = binary.BigEndian.AppendUint16(b, s.SrcOfs)
	}
	if s.Dst != LearnDstOutput {
		dst, err := ref32(s.DstRef)
		if err != nil {
			return b, err
		}
		b = binary.BigEndian.AppendUint32(b, dst)
		b = binary.BigEndian.AppendUint16(b, s.DstOfs)
	}
	return b, nil
}

func learnImmLen(nbits uint16) int { return 2 * ((int(nbits) + 15) / 16) }

// decodeLearn follows OVS's decode_LEARN_specs: specs run to the end of the
// action or to a zero header, and only zeros may follow.
func decodeLearn(r *reader) (Action, error) {
	a := NXLearn{IdleTimeout: r.u16(), HardTimeout: r.u16(), Priority: r.u16(), Cookie: r.u64(), Flags: r.u16(), Table: r.u8()}
	r.zeros(1)
	a.FinIdleTimeout, a.FinHardTimeout = r.u16(), r.u16()
	for r.err == nil && r.remaining() >= 2 {
		h := binary.BigEndian.Uint16(r.b[r.off:])
		if h == 0 {
			break
		}
		r.skip(2)
		s := LearnSpec{Dst: h & learnDstMask, NBits: h & learnNBitsMask}
		if h&^(learnDstMask|learnNBitsMask|LearnSrcImmediate) != 0 || s.Dst == learnDstMask ||
			(s.Dst == LearnDstOutput && h&LearnSrcImmediate != 0) {
			return nil, malformed("learn: spec header %#04x", h)
		}
		if h&LearnSrcImmediate != 0 {
			// Non-nil even when empty: nil marks a field source.
			s.Imm = append([]byte{}, r.bytes(learnImmLen(s.NBits))...)
		} else {
			s.Src, s.SrcOfs = decodeRef32(r), r.u16()
		}
		if s.Dst != LearnDstOutput {
			s.DstRef, s.DstOfs = decodeRef32(r), r.u16()
		}
		a.Specs = append(a.Specs, s)
	}
	r.padding()
	if err := r.done(); err != nil {
		return nil, err
	}
	return a, nil
}
