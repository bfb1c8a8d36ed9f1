package openflow

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// FieldInfo describes one match field the codec knows. Numbers, widths and
// maskability follow Open vSwitch's include/openvswitch/meta-flow.h (the
// switch we drive); fields OVS does not implement (in_phy_port, pbb_isid,
// ipv6_exthdr) follow the OpenFlow 1.3.5 specification, table 12. OVS is
// more permissive than the specification in places: it accepts masks on the
// L4 ports and on the IPv6 ND fields, so they are maskable here.
type FieldInfo struct {
	// Name is OVS's canonical field name, as accepted by ovs-ofctl and
	// printed by set_field (e.g. "ip_src", "nw_proto", "tun_src").
	Name string
	// MatchName is the name ovs-ofctl prints for this field in a match
	// when it differs from Name by a plain rename (e.g. "nw_src").
	MatchName string
	Class     uint16
	Field     uint8
	Width     int // value width in bytes
	Maskable  bool
	// Prereqs must all hold, each through a field earlier in the match
	// (OF1.3 §7.2.3.6).
	Prereqs []Prereq
}

// Prereq is one prerequisite of a field: the field named here must appear
// earlier in the match with one of Values (exact match), or, when Not is
// set, with a value that can never be any of Values.
type Prereq struct {
	Field  string
	Values []uint64
	Not    bool
}

// Well-known values used by prerequisites and constructors.
const (
	EthTypeIPv4          uint16 = 0x0800
	EthTypeARP           uint16 = 0x0806
	EthTypeIPv6          uint16 = 0x86dd
	EthTypeMPLS          uint16 = 0x8847
	EthTypeMPLSMulticast uint16 = 0x8848
	EthTypePBB           uint16 = 0x88e7
	EthTypeVLAN          uint16 = 0x8100

	IPProtoICMP   uint8 = 1
	IPProtoTCP    uint8 = 6
	IPProtoUDP    uint8 = 17
	IPProtoICMPv6 uint8 = 58
	IPProtoSCTP   uint8 = 132

	// VlanPresent (OFPVID_PRESENT) is or-ed into a vlan_vid value to
	// match a tagged packet; VlanNone (OFPVID_NONE) matches untagged ones.
	VlanPresent uint16 = 0x1000
	VlanNone    uint16 = 0x0000
)

// TCPFlagSYN is the SYN bit for TCPFlags.
const TCPFlagSYN uint16 = 0x002

// Connection-tracking state bits for CtState (OVS lib/packets.h CS_*).
const (
	CtStateNew uint32 = 1 << iota
	CtStateEstablished
	CtStateRelated
	CtStateReply
	CtStateInvalid
	CtStateTracked
	CtStateSNAT
	CtStateDNAT
)

// Prerequisite shorthands, as named in the specification's table.
var (
	preIP     = []Prereq{{Field: "eth_type", Values: []uint64{0x0800, 0x86dd}}}
	preIPv4   = []Prereq{{Field: "eth_type", Values: []uint64{0x0800}}}
	preIPv6   = []Prereq{{Field: "eth_type", Values: []uint64{0x86dd}}}
	preARP    = []Prereq{{Field: "eth_type", Values: []uint64{0x0806}}}
	preMPLS   = []Prereq{{Field: "eth_type", Values: []uint64{0x8847, 0x8848}}}
	preTCP    = []Prereq{{Field: "nw_proto", Values: []uint64{6}}}
	preUDP    = []Prereq{{Field: "nw_proto", Values: []uint64{17}}}
	preSCTP   = []Prereq{{Field: "nw_proto", Values: []uint64{132}}}
	preICMPv4 = []Prereq{{Field: "nw_proto", Values: []uint64{1}}}
	preICMPv6 = []Prereq{{Field: "nw_proto", Values: []uint64{58}}}
)

// Fields lists every match field the codec knows: all OpenFlow 1.3 basic
// fields (0..39) and the Nicira extension fields the pipeline uses. It is
// never written after initialisation.
var Fields = []FieldInfo{
	{Name: "in_port", Class: OXMClassOpenFlow, Field: 0, Width: 4},
	{Name: "in_phy_port", Class: OXMClassOpenFlow, Field: 1, Width: 4, Prereqs: []Prereq{{Field: "in_port"}}},
	{Name: "metadata", Class: OXMClassOpenFlow, Field: 2, Width: 8, Maskable: true},
	{Name: "eth_dst", MatchName: "dl_dst", Class: OXMClassOpenFlow, Field: 3, Width: 6, Maskable: true},
	{Name: "eth_src", MatchName: "dl_src", Class: OXMClassOpenFlow, Field: 4, Width: 6, Maskable: true},
	{Name: "eth_type", MatchName: "dl_type", Class: OXMClassOpenFlow, Field: 5, Width: 2},
	{Name: "vlan_vid", Class: OXMClassOpenFlow, Field: 6, Width: 2, Maskable: true},
	{Name: "vlan_pcp", MatchName: "dl_vlan_pcp", Class: OXMClassOpenFlow, Field: 7, Width: 1,
		Prereqs: []Prereq{{Field: "vlan_vid", Values: []uint64{uint64(VlanNone)}, Not: true}}},
	{Name: "ip_dscp", Class: OXMClassOpenFlow, Field: 8, Width: 1, Prereqs: preIP},
	{Name: "nw_ecn", Class: OXMClassOpenFlow, Field: 9, Width: 1, Prereqs: preIP},
	{Name: "nw_proto", Class: OXMClassOpenFlow, Field: 10, Width: 1, Prereqs: preIP},
	{Name: "ip_src", MatchName: "nw_src", Class: OXMClassOpenFlow, Field: 11, Width: 4, Maskable: true, Prereqs: preIPv4},
	{Name: "ip_dst", MatchName: "nw_dst", Class: OXMClassOpenFlow, Field: 12, Width: 4, Maskable: true, Prereqs: preIPv4},
	{Name: "tcp_src", MatchName: "tp_src", Class: OXMClassOpenFlow, Field: 13, Width: 2, Maskable: true, Prereqs: preTCP},
	{Name: "tcp_dst", MatchName: "tp_dst", Class: OXMClassOpenFlow, Field: 14, Width: 2, Maskable: true, Prereqs: preTCP},
	{Name: "udp_src", MatchName: "tp_src", Class: OXMClassOpenFlow, Field: 15, Width: 2, Maskable: true, Prereqs: preUDP},
	{Name: "udp_dst", MatchName: "tp_dst", Class: OXMClassOpenFlow, Field: 16, Width: 2, Maskable: true, Prereqs: preUDP},
	{Name: "sctp_src", MatchName: "tp_src", Class: OXMClassOpenFlow, Field: 17, Width: 2, Maskable: true, Prereqs: preSCTP},
	{Name: "sctp_dst", MatchName: "tp_dst", Class: OXMClassOpenFlow, Field: 18, Width: 2, Maskable: true, Prereqs: preSCTP},
	{Name: "icmp_type", Class: OXMClassOpenFlow, Field: 19, Width: 1, Prereqs: preICMPv4},
	{Name: "icmp_code", Class: OXMClassOpenFlow, Field: 20, Width: 1, Prereqs: preICMPv4},
	{Name: "arp_op", Class: OXMClassOpenFlow, Field: 21, Width: 2, Prereqs: preARP},
	{Name: "arp_spa", Class: OXMClassOpenFlow, Field: 22, Width: 4, Maskable: true, Prereqs: preARP},
	{Name: "arp_tpa", Class: OXMClassOpenFlow, Field: 23, Width: 4, Maskable: true, Prereqs: preARP},
	{Name: "arp_sha", Class: OXMClassOpenFlow, Field: 24, Width: 6, Maskable: true, Prereqs: preARP},
	{Name: "arp_tha", Class: OXMClassOpenFlow, Field: 25, Width: 6, Maskable: true, Prereqs: preARP},
	{Name: "ipv6_src", Class: OXMClassOpenFlow, Field: 26, Width: 16, Maskable: true, Prereqs: preIPv6},
	{Name: "ipv6_dst", Class: OXMClassOpenFlow, Field: 27, Width: 16, Maskable: true, Prereqs: preIPv6},
	{Name: "ipv6_label", Class: OXMClassOpenFlow, Field: 28, Width: 4, Maskable: true, Prereqs: preIPv6},
	{Name: "icmpv6_type", MatchName: "icmp_type", Class: OXMClassOpenFlow, Field: 29, Width: 1, Prereqs: preICMPv6},
	{Name: "icmpv6_code", MatchName: "icmp_code", Class: OXMClassOpenFlow, Field: 30, Width: 1, Prereqs: preICMPv6},
	{Name: "nd_target", Class: OXMClassOpenFlow, Field: 31, Width: 16, Maskable: true,
		Prereqs: []Prereq{{Field: "icmpv6_type", Values: []uint64{135, 136}}}},
	{Name: "nd_sll", Class: OXMClassOpenFlow, Field: 32, Width: 6, Maskable: true,
		Prereqs: []Prereq{{Field: "icmpv6_type", Values: []uint64{135}}}},
	{Name: "nd_tll", Class: OXMClassOpenFlow, Field: 33, Width: 6, Maskable: true,
		Prereqs: []Prereq{{Field: "icmpv6_type", Values: []uint64{136}}}},
	{Name: "mpls_label", Class: OXMClassOpenFlow, Field: 34, Width: 4, Prereqs: preMPLS},
	{Name: "mpls_tc", Class: OXMClassOpenFlow, Field: 35, Width: 1, Prereqs: preMPLS},
	{Name: "mpls_bos", Class: OXMClassOpenFlow, Field: 36, Width: 1, Prereqs: preMPLS},
	{Name: "pbb_isid", Class: OXMClassOpenFlow, Field: 37, Width: 3, Maskable: true,
		Prereqs: []Prereq{{Field: "eth_type", Values: []uint64{0x88e7}}}},
	// OVS prints the OXM tunnel_id as tun_id, the name it shares with
	// NXM_NX_TUN_ID; the two are different wire headers for one field.
	{Name: "tunnel_id", MatchName: "tun_id", Class: OXMClassOpenFlow, Field: 38, Width: 8, Maskable: true},
	{Name: "ipv6_exthdr", Class: OXMClassOpenFlow, Field: 39, Width: 2, Maskable: true, Prereqs: preIPv6},
	// OpenFlow 1.3 has no basic tcp_flags; OVS takes and reports ONF's
	// experimenter field (the only experimenter field known here).
	{Name: "tcp_flags", Class: OXMClassExperimenter, Field: onfTCPFlags, Width: 2, Maskable: true, Prereqs: preTCP},

	{Name: "reg0", Class: OXMClassNXM1, Field: 0, Width: 4, Maskable: true},
	{Name: "reg1", Class: OXMClassNXM1, Field: 1, Width: 4, Maskable: true},
	{Name: "reg2", Class: OXMClassNXM1, Field: 2, Width: 4, Maskable: true},
	{Name: "reg3", Class: OXMClassNXM1, Field: 3, Width: 4, Maskable: true},
	{Name: "reg4", Class: OXMClassNXM1, Field: 4, Width: 4, Maskable: true},
	{Name: "reg5", Class: OXMClassNXM1, Field: 5, Width: 4, Maskable: true},
	{Name: "reg6", Class: OXMClassNXM1, Field: 6, Width: 4, Maskable: true},
	{Name: "reg7", Class: OXMClassNXM1, Field: 7, Width: 4, Maskable: true},
	{Name: "reg8", Class: OXMClassNXM1, Field: 8, Width: 4, Maskable: true},
	{Name: "reg9", Class: OXMClassNXM1, Field: 9, Width: 4, Maskable: true},
	{Name: "reg10", Class: OXMClassNXM1, Field: 10, Width: 4, Maskable: true},
	{Name: "reg11", Class: OXMClassNXM1, Field: 11, Width: 4, Maskable: true},
	{Name: "reg12", Class: OXMClassNXM1, Field: 12, Width: 4, Maskable: true},
	{Name: "reg13", Class: OXMClassNXM1, Field: 13, Width: 4, Maskable: true},
	{Name: "reg14", Class: OXMClassNXM1, Field: 14, Width: 4, Maskable: true},
	{Name: "reg15", Class: OXMClassNXM1, Field: 15, Width: 4, Maskable: true},
	{Name: "tun_id", Class: OXMClassNXM1, Field: 16, Width: 8, Maskable: true},
	{Name: "tun_src", Class: OXMClassNXM1, Field: 31, Width: 4, Maskable: true},
	{Name: "tun_dst", Class: OXMClassNXM1, Field: 32, Width: 4, Maskable: true},
	{Name: "pkt_mark", Class: OXMClassNXM1, Field: 33, Width: 4, Maskable: true},
	{Name: "conj_id", Class: OXMClassNXM1, Field: 37, Width: 4},
	{Name: "ct_state", Class: OXMClassNXM1, Field: 105, Width: 4, Maskable: true},
	{Name: "ct_zone", Class: OXMClassNXM1, Field: 106, Width: 2},
	{Name: "ct_mark", Class: OXMClassNXM1, Field: 107, Width: 4, Maskable: true},
	{Name: "ct_label", Class: OXMClassNXM1, Field: 108, Width: 16, Maskable: true},
	{Name: "xreg0", Class: OXMClassPacketRegs, Field: 0, Width: 8, Maskable: true},
	{Name: "xreg1", Class: OXMClassPacketRegs, Field: 1, Width: 8, Maskable: true},
	{Name: "xreg2", Class: OXMClassPacketRegs, Field: 2, Width: 8, Maskable: true},
	{Name: "xreg3", Class: OXMClassPacketRegs, Field: 3, Width: 8, Maskable: true},
	{Name: "xreg4", Class: OXMClassPacketRegs, Field: 4, Width: 8, Maskable: true},
	{Name: "xreg5", Class: OXMClassPacketRegs, Field: 5, Width: 8, Maskable: true},
	{Name: "xreg6", Class: OXMClassPacketRegs, Field: 6, Width: 8, Maskable: true},
	{Name: "xreg7", Class: OXMClassPacketRegs, Field: 7, Width: 8, Maskable: true},
}

type fieldKey struct {
	class uint16
	field uint8
}

// fieldIndex and fieldNames are built once from Fields and only read after.
var (
	fieldIndex = func() map[fieldKey]*FieldInfo {
		m := make(map[fieldKey]*FieldInfo, len(Fields))
		for i := range Fields {
			m[fieldKey{Fields[i].Class, Fields[i].Field}] = &Fields[i]
		}
		return m
	}()
	fieldNames = func() map[string]*FieldInfo {
		m := make(map[string]*FieldInfo, len(Fields))
		for i := range Fields {
			m[Fields[i].Name] = &Fields[i]
		}
		return m
	}()
)

// LookupField returns what the codec knows of an OXM's field.
func LookupField(class uint16, field uint8) (FieldInfo, bool) {
	if f, ok := fieldIndex[fieldKey{class, field}]; ok {
		return *f, true
	}
	return FieldInfo{}, false
}

// FieldByName returns the field with OVS's canonical name.
func FieldByName(name string) (FieldInfo, bool) {
	if f, ok := fieldNames[name]; ok {
		return *f, true
	}
	return FieldInfo{}, false
}

// Info returns what the codec knows of o's field.
func (o OXM) Info() (FieldInfo, bool) {
	if o.Class == OXMClassExperimenter && o.Experimenter != vendorONF {
		return FieldInfo{}, false
	}
	return LookupField(o.Class, o.Field)
}

// Validate checks a match as a switch would before accepting it: known
// fields of the right width, masks only on maskable fields and with no
// value bits outside them, no field twice, and each field's prerequisites
// satisfied by fields before it.
func Validate(m Match) error {
	seen := make(map[fieldKey]OXM, len(m.Fields))
	byName := make(map[string]OXM, len(m.Fields))
	for i, o := range m.Fields {
		fi, ok := o.Info()
		if !ok {
			return unsupported("match field %d: class %#04x field %d", i, o.Class, o.Field)
		}
		if err := checkOXM(fi, o); err != nil {
			return fmt.Errorf("match field %d: %w", i, err)
		}
		k := fieldKey{o.Class, o.Field}
		if _, dup := seen[k]; dup {
			return malformed("match field %d: %s appears twice", i, fi.Name)
		}
		for _, p := range fi.Prereqs {
			if !p.holds(byName) {
				return malformed("match field %d: %s needs %s earlier in the match", i, fi.Name, p)
			}
		}
		seen[k] = o
		byName[fi.Name] = o
	}
	return nil
}

func checkOXM(fi FieldInfo, o OXM) error {
	if len(o.Value) != fi.Width {
		return malformed("%s value is %d bytes, want %d", fi.Name, len(o.Value), fi.Width)
	}
	if o.Mask == nil {
		return nil
	}
	if !fi.Maskable {
		return malformed("%s cannot be masked", fi.Name)
	}
	if len(o.Mask) != fi.Width {
		return malformed("%s mask is %d bytes, want %d", fi.Name, len(o.Mask), fi.Width)
	}
	for i := range o.Value {
		if o.Value[i]&^o.Mask[i] != 0 {
			return malformed("%s value %x has bits outside mask %x", fi.Name, o.Value, o.Mask)
		}
	}
	return nil
}

func (p Prereq) holds(earlier map[string]OXM) bool {
	o, ok := earlier[p.Field]
	if !ok {
		return false
	}
	if len(p.Values) == 0 {
		return true
	}
	v, mask := beUint(o.Value), ^uint64(0)
	if o.Mask != nil {
		mask = beUint(o.Mask)
	}
	for _, want := range p.Values {
		if p.Not && v&mask == want&mask {
			return false
		}
		// A masked field leaves some bits open, so it cannot pin the
		// value a positive prerequisite asks for.
		if !p.Not && o.Mask == nil && v == want {
			return true
		}
	}
	return p.Not
}

func (p Prereq) String() string {
	switch {
	case len(p.Values) == 0:
		return p.Field
	case p.Not:
		return fmt.Sprintf("%s not in %#x", p.Field, p.Values)
	default:
		return fmt.Sprintf("%s in %#x", p.Field, p.Values)
	}
}

// beUint reads up to 8 big-endian bytes; prerequisites only involve
// fields of at most 2 bytes.
func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b[:min(len(b), 8)] {
		v = v<<8 | uint64(c)
	}
	return v
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func basic(field uint8, value []byte) OXM {
	return OXM{Class: OXMClassOpenFlow, Field: field, Value: value}
}

func nxm1(field uint8, value []byte) OXM {
	return OXM{Class: OXMClassNXM1, Field: field, Value: value}
}

// masked sets mask on o unless it is all ones, which OVS (and the
// specification) encode as an exact match. Value bits outside the mask are
// cleared, as ovs-ofctl does, since a switch rejects them
// (OFPBMC_BAD_WILDCARDS).
func masked(o OXM, mask []byte) OXM {
	for _, c := range mask {
		if c != 0xff {
			for i := range o.Value {
				o.Value[i] &= mask[i]
			}
			o.Mask = mask
			return o
		}
	}
	return o
}

func mac6(a net.HardwareAddr) []byte {
	if len(a) != 6 {
		panic(fmt.Sprintf("openflow: Ethernet address %v is not 6 bytes", a))
	}
	return append([]byte(nil), a...)
}

func ip4(a netip.Addr) []byte { b := a.As4(); return b[:] }
func ip6(a netip.Addr) []byte { b := a.As16(); return b[:] }

func prefixMask(bits, width int) []byte {
	m := make([]byte, width)
	for i := range bits {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

func prefix4(p netip.Prefix) ([]byte, []byte) {
	p = p.Masked()
	return ip4(p.Addr()), prefixMask(p.Bits(), 4)
}

func prefix6(p netip.Prefix) ([]byte, []byte) {
	p = p.Masked()
	return ip6(p.Addr()), prefixMask(p.Bits(), 16)
}

// Constructors for match fields. Address constructors panic on an address
// of the wrong family or length, as netip.Addr.As4 does: that is a
// programming error, not input to recover from.

func InPort(p uint32) OXM    { return basic(0, be32(p)) }
func InPhyPort(p uint32) OXM { return basic(1, be32(p)) }

// Metadata matches the metadata bits set in mask (all ones: exact).
func Metadata(v, mask uint64) OXM { return masked(basic(2, be64(v)), be64(mask)) }

func EthDst(a net.HardwareAddr) OXM { return basic(3, mac6(a)) }
func EthDstMasked(a, mask net.HardwareAddr) OXM {
	return masked(basic(3, mac6(a)), mac6(mask))
}
func EthSrc(a net.HardwareAddr) OXM { return basic(4, mac6(a)) }
func EthSrcMasked(a, mask net.HardwareAddr) OXM {
	return masked(basic(4, mac6(a)), mac6(mask))
}
func EthType(t uint16) OXM { return basic(5, be16(t)) }

// VlanVID matches a VLAN id; or VlanPresent into vid for a tagged packet
// (OFPVID_PRESENT), pass VlanNone for an untagged one.
func VlanVID(vid uint16) OXM             { return basic(6, be16(vid)) }
func VlanVIDMasked(vid, mask uint16) OXM { return masked(basic(6, be16(vid)), be16(mask)) }
func VlanPCP(pcp uint8) OXM              { return basic(7, []byte{pcp}) }
func IPDSCP(dscp uint8) OXM              { return basic(8, []byte{dscp}) }
func IPECN(ecn uint8) OXM                { return basic(9, []byte{ecn}) }
func IPProto(p uint8) OXM                { return basic(10, []byte{p}) }
func IPv4Src(a netip.Addr) OXM           { return basic(11, ip4(a)) }
func IPv4Dst(a netip.Addr) OXM           { return basic(12, ip4(a)) }
func IPv4SrcPrefix(p netip.Prefix) OXM   { v, m := prefix4(p); return masked(basic(11, v), m) }
func IPv4DstPrefix(p netip.Prefix) OXM   { v, m := prefix4(p); return masked(basic(12, v), m) }
func TCPSrc(p uint16) OXM                { return basic(13, be16(p)) }
func TCPDst(p uint16) OXM                { return basic(14, be16(p)) }
func TCPDstMasked(p, mask uint16) OXM    { return masked(basic(14, be16(p)), be16(mask)) }
func UDPSrc(p uint16) OXM                { return basic(15, be16(p)) }
func UDPDst(p uint16) OXM                { return basic(16, be16(p)) }
func UDPDstMasked(p, mask uint16) OXM    { return masked(basic(16, be16(p)), be16(mask)) }
func SCTPSrc(p uint16) OXM               { return basic(17, be16(p)) }
func SCTPDst(p uint16) OXM               { return basic(18, be16(p)) }
func ICMPv4Type(t uint8) OXM             { return basic(19, []byte{t}) }
func ICMPv4Code(c uint8) OXM             { return basic(20, []byte{c}) }
func ARPOp(op uint16) OXM                { return basic(21, be16(op)) }
func ARPSpa(a netip.Addr) OXM            { return basic(22, ip4(a)) }
func ARPTpa(a netip.Addr) OXM            { return basic(23, ip4(a)) }
func ARPSpaPrefix(p netip.Prefix) OXM    { v, m := prefix4(p); return masked(basic(22, v), m) }
func ARPTpaPrefix(p netip.Prefix) OXM    { v, m := prefix4(p); return masked(basic(23, v), m) }
func ARPSha(a net.HardwareAddr) OXM      { return basic(24, mac6(a)) }
func ARPTha(a net.HardwareAddr) OXM      { return basic(25, mac6(a)) }
func IPv6Src(a netip.Addr) OXM           { return basic(26, ip6(a)) }
func IPv6Dst(a netip.Addr) OXM           { return basic(27, ip6(a)) }
func IPv6SrcPrefix(p netip.Prefix) OXM   { v, m := prefix6(p); return masked(basic(26, v), m) }
func IPv6DstPrefix(p netip.Prefix) OXM   { v, m := prefix6(p); return masked(basic(27, v), m) }
func IPv6FLabel(l uint32) OXM            { return basic(28, be32(l)) }
func ICMPv6Type(t uint8) OXM             { return basic(29, []byte{t}) }
func ICMPv6Code(c uint8) OXM             { return basic(30, []byte{c}) }
func IPv6NDTarget(a netip.Addr) OXM      { return basic(31, ip6(a)) }
func IPv6NDSLL(a net.HardwareAddr) OXM   { return basic(32, mac6(a)) }
func IPv6NDTLL(a net.HardwareAddr) OXM   { return basic(33, mac6(a)) }
func MPLSLabel(l uint32) OXM             { return basic(34, be32(l)) }
func MPLSTC(tc uint8) OXM                { return basic(35, []byte{tc}) }
func MPLSBoS(bos uint8) OXM              { return basic(36, []byte{bos}) }
func PBBISID(isid uint32) OXM            { return basic(37, be32(isid)[1:]) }
func IPv6Exthdr(flags, mask uint16) OXM  { return masked(basic(39, be16(flags)), be16(mask)) }

// TCPFlags matches the TCP flag bits (TCPFlag*) set in mask to their
// values in flags, as ONF's experimenter field: OVS reads a tcp_flags
// match back so in OpenFlow 1.3, and a reconciler compares what it reads.
func TCPFlags(flags, mask uint16) OXM {
	return masked(OXM{Class: OXMClassExperimenter, Field: onfTCPFlags, Experimenter: vendorONF, Value: be16(flags)}, be16(mask))
}

// Reg matches all of register n (0..15); it panics on another n.
func Reg(n int, v uint32) OXM { return RegMasked(n, v, ^uint32(0)) }

// RegMasked matches the bits of register n (0..15) set in mask.
func RegMasked(n int, v, mask uint32) OXM {
	if n < 0 || n > 15 {
		panic(fmt.Sprintf("openflow: register %d does not exist (reg0-reg15)", n))
	}
	return masked(nxm1(uint8(n), be32(v)), be32(mask))
}

// XReg matches all of 64-bit register n (0..7); it panics on another n.
// OVS accepts this OXM_OF_PKT_REG header but reports such a match back
// (flow stats, ofp-print) as the pair reg<2n>, reg<2n+1>, which a
// reconciler comparing bytes must take into account.
func XReg(n int, v uint64) OXM { return XRegMasked(n, v, ^uint64(0)) }

// XRegMasked matches the bits of xreg n (0..7) set in mask.
func XRegMasked(n int, v, mask uint64) OXM {
	if n < 0 || n > 7 {
		panic(fmt.Sprintf("openflow: xreg%d does not exist (xreg0-xreg7)", n))
	}
	return masked(OXM{Class: OXMClassPacketRegs, Field: uint8(n), Value: be64(v)}, be64(mask))
}

// TunID matches the tunnel id (OVS's tun_id). In OpenFlow 1.3 OVS writes
// this field with the OXM header tunnel_id, not NXM_NX_TUN_ID, in matches
// and set_field alike, so this does too: flows read back compare equal.
func TunID(id uint64) OXM             { return basic(38, be64(id)) }
func TunIDMasked(id, mask uint64) OXM { return masked(basic(38, be64(id)), be64(mask)) }
func TunIPv4Src(a netip.Addr) OXM     { return nxm1(31, ip4(a)) }
func TunIPv4Dst(a netip.Addr) OXM     { return nxm1(32, ip4(a)) }
func PktMark(v, mask uint32) OXM      { return masked(nxm1(33, be32(v)), be32(mask)) }
func ConjID(id uint32) OXM            { return nxm1(37, be32(id)) }

// CtState matches the CtState* bits in mask to their values in bits, e.g.
// CtState(CtStateTracked|CtStateEstablished, CtStateTracked|CtStateEstablished|CtStateNew)
// is OVS's ct_state=+trk+est-new.
func CtState(bits, mask uint32) OXM { return masked(nxm1(105, be32(bits)), be32(mask)) }
func CtZone(zone uint16) OXM        { return nxm1(106, be16(zone)) }
func CtMark(v, mask uint32) OXM     { return masked(nxm1(107, be32(v)), be32(mask)) }

// CtLabel matches the 128-bit label bits set in mask (network byte order).
func CtLabel(v, mask [16]byte) OXM { return masked(nxm1(108, v[:]), mask[:]) }
