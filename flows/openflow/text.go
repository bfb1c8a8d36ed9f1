package openflow

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Flow text: flows rendered exactly as `ovs-ofctl -O OpenFlow13 dump-flows`
// prints them, for logs, debug output and golden tests. The renderers never
// fail: what OVS would reject still prints, in a form that shows what it is
// (see the known differences in text_test.go).

// FormatFlowMod renders the flow a flow_mod installs as a line of
// `ovs-ofctl -O OpenFlow13 dump-flows --no-stats`, without the leading
// space: "cookie=0x5, table=1, priority=0 actions=drop". As there, cookie 0
// and table 0 are left out, and priority is part of the match unless it is
// the default 32768. The command, cookie mask, buffer and out_port/group
// are not part of a flow and do not show.
func FormatFlowMod(m *FlowMod) string {
	return formatFlow(flowText{
		cookie: m.Cookie, table: m.TableID, priority: m.Priority,
		idle: m.IdleTimeout, hard: m.HardTimeout, flags: m.Flags,
		match: m.Match, instructions: m.Instructions,
	}, nil)
}

// FormatFlowStats renders a flow as a line of `ovs-ofctl -O OpenFlow13
// dump-flows`, without the leading space: "cookie=0x0, duration=4.5s,
// table=0, n_packets=0, n_bytes=0, priority=0 actions=NORMAL".
func FormatFlowStats(s FlowStats) string {
	return formatFlow(flowText{
		cookie: s.Cookie, table: s.TableID, priority: s.Priority,
		idle: s.IdleTimeout, hard: s.HardTimeout, flags: s.Flags,
		match: s.Match, instructions: s.Instructions,
	}, &s)
}

// flowText is what ofputil_flow_stats_format prints of a flow.
type flowText struct {
	cookie       uint64
	table        uint8
	priority     uint16
	idle, hard   uint16
	flags        FlowModFlags
	match        Match
	instructions []Instruction
}

// formatFlow is ofputil_flow_stats_format; stats is nil for --no-stats.
func formatFlow(f flowText, stats *FlowStats) string {
	var b strings.Builder
	if stats != nil || f.cookie != 0 {
		fmt.Fprintf(&b, "cookie=%#x, ", f.cookie)
	}
	if stats != nil {
		fmt.Fprintf(&b, "duration=%s, ", duration(stats.DurationSec, stats.DurationNsec))
	}
	if stats != nil || f.table != 0 {
		fmt.Fprintf(&b, "table=%d, ", f.table)
	}
	if stats != nil {
		fmt.Fprintf(&b, "n_packets=%d, n_bytes=%d, ", stats.PacketCount, stats.ByteCount)
	}
	if f.idle != 0 {
		fmt.Fprintf(&b, "idle_timeout=%d, ", f.idle)
	}
	if f.hard != 0 {
		fmt.Fprintf(&b, "hard_timeout=%d, ", f.hard)
	}
	for _, fl := range flowFlagNames {
		if f.flags&fl.flag != 0 {
			b.WriteString(fl.name + " ")
		}
	}
	n := b.Len()
	formatMatch(&b, f.match, int(f.priority))
	s := strings.TrimSuffix(b.String(), ",")
	if len(s) != n {
		s += " "
	}
	return s + "actions=" + FormatActions(f.instructions)
}

// flowFlag is a flow_mod flag and the word OVS prints for it.
type flowFlag struct {
	flag FlowModFlags
	name string
}

// flowFlagNames is ofputil_flow_mod_flags_format's order and spelling.
var flowFlagNames = []flowFlag{
	{FlowSendFlowRemoved, "send_flow_rem"},
	{FlowCheckOverlap, "check_overlap"},
	{FlowResetCounts, "reset_counts"},
	{FlowNoPacketCounts, "no_packet_counts"},
	{FlowNoByteCounts, "no_byte_counts"},
}

// duration is ofp_print_duration: whole seconds bare, exact milliseconds
// with three decimals, anything finer with the nanoseconds' trailing zeros
// cut.
func duration(sec, nsec uint32) string {
	switch {
	case nsec == 0:
		return fmt.Sprintf("%ds", sec)
	case nsec%1000000 == 0:
		return fmt.Sprintf("%d.%03ds", sec, nsec/1000000)
	}
	return fmt.Sprintf("%d.%s", sec, strings.TrimRight(fmt.Sprintf("%09d", nsec), "0")) + "s"
}

// valueKind is how OVS's mf_format writes a field's value.
type valueKind uint8

const (
	kindHex valueKind = iota
	kindDecimal
	kindEthernet
	kindIPv4
	kindIPv6
	kindPort16 // an OpenFlow 1.0 port number (NXM_OF_IN_PORT)
	kindPort32 // an OpenFlow 1.1+ port number (OXM_OF_IN_PORT)
	kindCtState
)

// fieldText is what OVS knows of one wire field. mf is OVS's field name
// (set_field's target, learn's match side; the match folding keys on it,
// since an NXM and an OXM header of one field fill the same slot); nxm is
// the name in subfield syntax, where OVS prefers a field's NXM header name
// over its OXM one; bits is the field's width, which decides whether a
// subfield is printed as FIELD[].
type fieldText struct {
	mf   string
	nxm  string
	bits int
	kind valueKind
}

// fieldTexts covers the OXM basic fields OVS implements, the NXM fields of
// classes 0 and 1 up to the connection-tracking registers, and the packet
// registers, after OVS's lib/meta-flow.h. It is only read.
var fieldTexts = map[fieldKey]fieldText{
	{OXMClassOpenFlow, 0}:  {"in_port_oxm", "OXM_OF_IN_PORT", 32, kindPort32},
	{OXMClassOpenFlow, 2}:  {"metadata", "OXM_OF_METADATA", 64, kindHex},
	{OXMClassOpenFlow, 3}:  {"eth_dst", "NXM_OF_ETH_DST", 48, kindEthernet},
	{OXMClassOpenFlow, 4}:  {"eth_src", "NXM_OF_ETH_SRC", 48, kindEthernet},
	{OXMClassOpenFlow, 5}:  {"eth_type", "NXM_OF_ETH_TYPE", 16, kindHex},
	{OXMClassOpenFlow, 6}:  {"vlan_vid", "OXM_OF_VLAN_VID", 12, kindDecimal},
	{OXMClassOpenFlow, 7}:  {"vlan_pcp", "OXM_OF_VLAN_PCP", 3, kindDecimal},
	{OXMClassOpenFlow, 8}:  {"ip_dscp", "OXM_OF_IP_DSCP", 6, kindDecimal},
	{OXMClassOpenFlow, 9}:  {"nw_ecn", "NXM_NX_IP_ECN", 2, kindDecimal},
	{OXMClassOpenFlow, 10}: {"nw_proto", "NXM_OF_IP_PROTO", 8, kindDecimal},
	{OXMClassOpenFlow, 11}: {"ip_src", "NXM_OF_IP_SRC", 32, kindIPv4},
	{OXMClassOpenFlow, 12}: {"ip_dst", "NXM_OF_IP_DST", 32, kindIPv4},
	{OXMClassOpenFlow, 13}: {"tcp_src", "NXM_OF_TCP_SRC", 16, kindDecimal},
	{OXMClassOpenFlow, 14}: {"tcp_dst", "NXM_OF_TCP_DST", 16, kindDecimal},
	{OXMClassOpenFlow, 15}: {"udp_src", "NXM_OF_UDP_SRC", 16, kindDecimal},
	{OXMClassOpenFlow, 16}: {"udp_dst", "NXM_OF_UDP_DST", 16, kindDecimal},
	{OXMClassOpenFlow, 17}: {"sctp_src", "OXM_OF_SCTP_SRC", 16, kindDecimal},
	{OXMClassOpenFlow, 18}: {"sctp_dst", "OXM_OF_SCTP_DST", 16, kindDecimal},
	{OXMClassOpenFlow, 19}: {"icmp_type", "NXM_OF_ICMP_TYPE", 8, kindDecimal},
	{OXMClassOpenFlow, 20}: {"icmp_code", "NXM_OF_ICMP_CODE", 8, kindDecimal},
	{OXMClassOpenFlow, 21}: {"arp_op", "NXM_OF_ARP_OP", 16, kindDecimal},
	{OXMClassOpenFlow, 22}: {"arp_spa", "NXM_OF_ARP_SPA", 32, kindIPv4},
	{OXMClassOpenFlow, 23}: {"arp_tpa", "NXM_OF_ARP_TPA", 32, kindIPv4},
	{OXMClassOpenFlow, 24}: {"arp_sha", "NXM_NX_ARP_SHA", 48, kindEthernet},
	{OXMClassOpenFlow, 25}: {"arp_tha", "NXM_NX_ARP_THA", 48, kindEthernet},
	{OXMClassOpenFlow, 26}: {"ipv6_src", "NXM_NX_IPV6_SRC", 128, kindIPv6},
	{OXMClassOpenFlow, 27}: {"ipv6_dst", "NXM_NX_IPV6_DST", 128, kindIPv6},
	{OXMClassOpenFlow, 28}: {"ipv6_label", "NXM_NX_IPV6_LABEL", 20, kindHex},
	{OXMClassOpenFlow, 29}: {"icmpv6_type", "NXM_NX_ICMPV6_TYPE", 8, kindDecimal},
	{OXMClassOpenFlow, 30}: {"icmpv6_code", "NXM_NX_ICMPV6_CODE", 8, kindDecimal},
	{OXMClassOpenFlow, 31}: {"nd_target", "NXM_NX_ND_TARGET", 128, kindIPv6},
	{OXMClassOpenFlow, 32}: {"nd_sll", "NXM_NX_ND_SLL", 48, kindEthernet},
	{OXMClassOpenFlow, 33}: {"nd_tll", "NXM_NX_ND_TLL", 48, kindEthernet},
	{OXMClassOpenFlow, 34}: {"mpls_label", "OXM_OF_MPLS_LABEL", 20, kindDecimal},
	{OXMClassOpenFlow, 35}: {"mpls_tc", "OXM_OF_MPLS_TC", 3, kindDecimal},
	{OXMClassOpenFlow, 36}: {"mpls_bos", "OXM_OF_MPLS_BOS", 1, kindDecimal},
	{OXMClassOpenFlow, 38}: {"tun_id", "NXM_NX_TUN_ID", 64, kindHex},

	{OXMClassNXM0, 0}:  {"in_port", "NXM_OF_IN_PORT", 16, kindPort16},
	{OXMClassNXM0, 1}:  {"eth_dst", "NXM_OF_ETH_DST", 48, kindEthernet},
	{OXMClassNXM0, 2}:  {"eth_src", "NXM_OF_ETH_SRC", 48, kindEthernet},
	{OXMClassNXM0, 3}:  {"eth_type", "NXM_OF_ETH_TYPE", 16, kindHex},
	{OXMClassNXM0, 4}:  {"vlan_tci", "NXM_OF_VLAN_TCI", 16, kindHex},
	{OXMClassNXM0, 5}:  {"nw_tos", "NXM_OF_IP_TOS", 8, kindDecimal},
	{OXMClassNXM0, 6}:  {"nw_proto", "NXM_OF_IP_PROTO", 8, kindDecimal},
	{OXMClassNXM0, 7}:  {"ip_src", "NXM_OF_IP_SRC", 32, kindIPv4},
	{OXMClassNXM0, 8}:  {"ip_dst", "NXM_OF_IP_DST", 32, kindIPv4},
	{OXMClassNXM0, 9}:  {"tcp_src", "NXM_OF_TCP_SRC", 16, kindDecimal},
	{OXMClassNXM0, 10}: {"tcp_dst", "NXM_OF_TCP_DST", 16, kindDecimal},
	{OXMClassNXM0, 11}: {"udp_src", "NXM_OF_UDP_SRC", 16, kindDecimal},
	{OXMClassNXM0, 12}: {"udp_dst", "NXM_OF_UDP_DST", 16, kindDecimal},
	{OXMClassNXM0, 13}: {"icmp_type", "NXM_OF_ICMP_TYPE", 8, kindDecimal},
	{OXMClassNXM0, 14}: {"icmp_code", "NXM_OF_ICMP_CODE", 8, kindDecimal},
	{OXMClassNXM0, 15}: {"arp_op", "NXM_OF_ARP_OP", 16, kindDecimal},
	{OXMClassNXM0, 16}: {"arp_spa", "NXM_OF_ARP_SPA", 32, kindIPv4},
	{OXMClassNXM0, 17}: {"arp_tpa", "NXM_OF_ARP_TPA", 32, kindIPv4},

	{OXMClassNXM1, 0}:   {"reg0", "NXM_NX_REG0", 32, kindHex},
	{OXMClassNXM1, 1}:   {"reg1", "NXM_NX_REG1", 32, kindHex},
	{OXMClassNXM1, 2}:   {"reg2", "NXM_NX_REG2", 32, kindHex},
	{OXMClassNXM1, 3}:   {"reg3", "NXM_NX_REG3", 32, kindHex},
	{OXMClassNXM1, 4}:   {"reg4", "NXM_NX_REG4", 32, kindHex},
	{OXMClassNXM1, 5}:   {"reg5", "NXM_NX_REG5", 32, kindHex},
	{OXMClassNXM1, 6}:   {"reg6", "NXM_NX_REG6", 32, kindHex},
	{OXMClassNXM1, 7}:   {"reg7", "NXM_NX_REG7", 32, kindHex},
	{OXMClassNXM1, 8}:   {"reg8", "NXM_NX_REG8", 32, kindHex},
	{OXMClassNXM1, 9}:   {"reg9", "NXM_NX_REG9", 32, kindHex},
	{OXMClassNXM1, 10}:  {"reg10", "NXM_NX_REG10", 32, kindHex},
	{OXMClassNXM1, 11}:  {"reg11", "NXM_NX_REG11", 32, kindHex},
	{OXMClassNXM1, 12}:  {"reg12", "NXM_NX_REG12", 32, kindHex},
	{OXMClassNXM1, 13}:  {"reg13", "NXM_NX_REG13", 32, kindHex},
	{OXMClassNXM1, 14}:  {"reg14", "NXM_NX_REG14", 32, kindHex},
	{OXMClassNXM1, 15}:  {"reg15", "NXM_NX_REG15", 32, kindHex},
	{OXMClassNXM1, 16}:  {"tun_id", "NXM_NX_TUN_ID", 64, kindHex},
	{OXMClassNXM1, 17}:  {"arp_sha", "NXM_NX_ARP_SHA", 48, kindEthernet},
	{OXMClassNXM1, 18}:  {"arp_tha", "NXM_NX_ARP_THA", 48, kindEthernet},
	{OXMClassNXM1, 19}:  {"ipv6_src", "NXM_NX_IPV6_SRC", 128, kindIPv6},
	{OXMClassNXM1, 20}:  {"ipv6_dst", "NXM_NX_IPV6_DST", 128, kindIPv6},
	{OXMClassNXM1, 21}:  {"icmpv6_type", "NXM_NX_ICMPV6_TYPE", 8, kindDecimal},
	{OXMClassNXM1, 22}:  {"icmpv6_code", "NXM_NX_ICMPV6_CODE", 8, kindDecimal},
	{OXMClassNXM1, 23}:  {"nd_target", "NXM_NX_ND_TARGET", 128, kindIPv6},
	{OXMClassNXM1, 24}:  {"nd_sll", "NXM_NX_ND_SLL", 48, kindEthernet},
	{OXMClassNXM1, 25}:  {"nd_tll", "NXM_NX_ND_TLL", 48, kindEthernet},
	{OXMClassNXM1, 26}:  {"ip_frag", "NXM_NX_IP_FRAG", 2, kindHex},
	{OXMClassNXM1, 27}:  {"ipv6_label", "NXM_NX_IPV6_LABEL", 20, kindHex},
	{OXMClassNXM1, 28}:  {"nw_ecn", "NXM_NX_IP_ECN", 2, kindDecimal},
	{OXMClassNXM1, 29}:  {"nw_ttl", "NXM_NX_IP_TTL", 8, kindDecimal},
	{OXMClassNXM1, 31}:  {"tun_src", "NXM_NX_TUN_IPV4_SRC", 32, kindIPv4},
	{OXMClassNXM1, 32}:  {"tun_dst", "NXM_NX_TUN_IPV4_DST", 32, kindIPv4},
	{OXMClassNXM1, 33}:  {"pkt_mark", "NXM_NX_PKT_MARK", 32, kindHex},
	{OXMClassNXM1, 34}:  {"tcp_flags", "NXM_NX_TCP_FLAGS", 12, kindHex},
	{OXMClassNXM1, 35}:  {"dp_hash", "NXM_NX_DP_HASH", 32, kindHex},
	{OXMClassNXM1, 36}:  {"recirc_id", "NXM_NX_RECIRC_ID", 32, kindDecimal},
	{OXMClassNXM1, 37}:  {"conj_id", "NXM_NX_CONJ_ID", 32, kindDecimal},
	{OXMClassNXM1, 105}: {"ct_state", "NXM_NX_CT_STATE", 32, kindCtState},
	{OXMClassNXM1, 106}: {"ct_zone", "NXM_NX_CT_ZONE", 16, kindHex},
	{OXMClassNXM1, 107}: {"ct_mark", "NXM_NX_CT_MARK", 32, kindHex},
	{OXMClassNXM1, 108}: {"ct_label", "NXM_NX_CT_LABEL", 128, kindHex},
	{OXMClassNXM1, 111}: {"xxreg0", "NXM_NX_XXREG0", 128, kindHex},
	{OXMClassNXM1, 112}: {"xxreg1", "NXM_NX_XXREG1", 128, kindHex},
	{OXMClassNXM1, 113}: {"xxreg2", "NXM_NX_XXREG2", 128, kindHex},
	{OXMClassNXM1, 114}: {"xxreg3", "NXM_NX_XXREG3", 128, kindHex},

	{OXMClassPacketRegs, 0}: {"xreg0", "OXM_OF_PKT_REG0", 64, kindHex},
	{OXMClassPacketRegs, 1}: {"xreg1", "OXM_OF_PKT_REG1", 64, kindHex},
	{OXMClassPacketRegs, 2}: {"xreg2", "OXM_OF_PKT_REG2", 64, kindHex},
	{OXMClassPacketRegs, 3}: {"xreg3", "OXM_OF_PKT_REG3", 64, kindHex},
	{OXMClassPacketRegs, 4}: {"xreg4", "OXM_OF_PKT_REG4", 64, kindHex},
	{OXMClassPacketRegs, 5}: {"xreg5", "OXM_OF_PKT_REG5", 64, kindHex},
	{OXMClassPacketRegs, 6}: {"xreg6", "OXM_OF_PKT_REG6", 64, kindHex},
	{OXMClassPacketRegs, 7}: {"xreg7", "OXM_OF_PKT_REG7", 64, kindHex},
}

// onfTCPFlags is ONFOXM_ET_TCP_FLAGS, the experimenter field OVS reports
// tcp_flags matches as in OpenFlow 1.3 flow stats.
const onfTCPFlags = 42

// textOf returns how OVS names a field, if OVS knows it; experimenter
// is used only with OXMClassExperimenter.
func textOf(class uint16, field uint8, experimenter uint32) (fieldText, bool) {
	if class == OXMClassExperimenter {
		if experimenter == vendorONF && field == onfTCPFlags {
			return fieldTexts[fieldKey{OXMClassNXM1, 34}], true
		}
		return fieldText{}, false
	}
	t, ok := fieldTexts[fieldKey{class, field}]
	return t, ok
}

// ctStateNames and tcpFlagNames name flag bits from bit 0 up, as OVS's
// ct_state_to_string and packet_tcp_flag_to_string do.
var (
	ctStateNames = []string{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"}
	tcpFlagNames = []string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]"}
)

// ctStateSupported (CS_SUPPORTED_MASK) is every ct_state bit OVS knows; a
// mask of exactly these bits prints like an exact match.
const ctStateSupported = 1<<8 - 1

// ctStateText is how OVS prints ct_state: exact like a mask of every
// supported bit.
func ctStateText(v, m uint32) string {
	if m == 0xffffffff {
		m = ctStateSupported
	}
	return flagsText(v, m, ctStateSupported, ctStateNames)
}

// flagsText is format_flags_masked: a mask of every bit (all) prints the
// set bits joined by '|' ("0" for none, unnamed ones in hex at the end);
// another mask prints each masked bit, lowest first, as +name or -name.
func flagsText(v, m, all uint32, names []string) string {
	name := func(bit uint32) string {
		for i, n := range names {
			if bit == 1<<i {
				return n
			}
		}
		return ""
	}
	var parts []string
	if m == all {
		if v == 0 {
			return "0"
		}
		var unnamed uint32
		for bit := uint32(1); bit != 0; bit <<= 1 {
			switch {
			case v&bit == 0:
			case name(bit) == "":
				unnamed |= bit
			default:
				parts = append(parts, name(bit))
			}
		}
		if unnamed != 0 {
			parts = append(parts, fmt.Sprintf("0x%x", unnamed))
		}
		return strings.Join(parts, "|")
	}
	var b strings.Builder
	for bit := uint32(1); bit != 0; bit <<= 1 {
		if m&bit == 0 {
			continue
		}
		sign, n := "-", name(bit)
		if v&bit != 0 {
			sign = "+"
		}
		if n == "" {
			n = "[Unknown]"
		}
		b.WriteString(sign + n)
	}
	return b.String()
}

// cHex is C's %#x, which writes zero as "0" where Go writes "0x0".
func cHex(v uint64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", v)
}

// ofp11Port maps an OpenFlow 1.1+ port to the 16-bit space OVS keeps
// ports in (ofputil_port_from_ofp11); OVS rejects the ports in between.
func ofp11Port(p uint32) (uint16, bool) {
	switch {
	case p < 0xff00:
		return uint16(p), true
	case p >= 0xffffff00:
		return uint16(p - 0xffff0000), true
	default:
		return 0, false
	}
}

// port16 is ofputil_format_port: reserved ports by name, others in decimal.
func port16(p uint16) string {
	names := [...]string{"UNSET", "IN_PORT", "TABLE", "NORMAL", "FLOOD", "ALL", "CONTROLLER", "LOCAL", "ANY"}
	if p >= 0xfff7 {
		return names[p-0xfff7]
	}
	return fmt.Sprint(p)
}

// port32 formats an OpenFlow 1.1+ port as OVS does after mapping it.
func port32(p uint32) string {
	if q, ok := ofp11Port(p); ok {
		return port16(q)
	}
	return fmt.Sprint(p)
}

func ethMasked(v, m []byte) string {
	s := net.HardwareAddr(v).String()
	if m != nil && !allOnes(m) {
		s += "/" + net.HardwareAddr(m).String()
	}
	return s
}

func ip4Masked(v, m uint32) string {
	s := netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, v))).String()
	if m == 0xffffffff {
		return s
	}
	if bits := cidrBits(binary.BigEndian.AppendUint32(nil, m)); bits >= 0 {
		return fmt.Sprintf("%s/%d", s, bits)
	}
	return s + "/" + netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, m))).String()
}

func ip6Masked(v, m []byte) string {
	s := ip6Text(v)
	if m == nil || allOnes(m) {
		return s
	}
	if bits := cidrBits(m); bits >= 0 {
		return fmt.Sprintf("%s/%d", s, bits)
	}
	return s + "/" + ip6Text(m)
}

// ip6Text is glibc's inet_ntop, which writes an address whose first 96
// bits are zero (but not its next 16) as ::a.b.c.d, where Go writes hex.
func ip6Text(b []byte) string {
	a := netip.AddrFrom16([16]byte(b))
	if allZero(b[:12]) && (b[12] != 0 || b[13] != 0) {
		return "::" + netip.AddrFrom4([4]byte(b[12:])).String()
	}
	return a.String()
}

// cidrBits returns the prefix length of a mask, or -1 if it is not one.
func cidrBits(m []byte) int {
	n := 0
	for n < 8*len(m) && m[n/8]&(0x80>>(n%8)) != 0 {
		n++
	}
	if string(m) != string(prefixMask(n, len(m))) {
		return -1
	}
	return n
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func allOnes(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return true
}

// hexBytes is OVS's ds_put_hex: 0x and the digits without leading zeros,
// "0" for zero.
func hexBytes(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		switch {
		case s.Len() > 0:
			fmt.Fprintf(&s, "%02x", c)
		case c != 0:
			fmt.Fprintf(&s, "0x%x", c)
		}
	}
	if s.Len() == 0 {
		return "0"
	}
	return s.String()
}
