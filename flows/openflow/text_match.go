package openflow

import (
	"fmt"
	"strings"
)

// Match text follows OVS 3.1's match_format (lib/match.c): OVS first folds
// the OXM fields into its flow and wildcards (so ARP addresses share the IP
// address slots, ICMP types the L4 ports, vlan_vid and vlan_pcp one TCI),
// then prints the slots in a fixed order, not in wire order.

// mval is a field's value and mask in OVS's flow, as an integer; a zero
// mask means the field is not matched.
type mval struct{ v, m uint64 }

// mbytes is an address-sized field's value and mask; a nil mask means the
// field is not matched.
type mbytes struct{ v, m []byte }

// flowView is OVS's struct flow and its wildcards, reduced to what an OF1.3
// match can set. Slots hold what the fields set, in the units OVS keeps:
// in_port as an OpenFlow 1.0 port, nw_tos with DSCP in its upper six bits,
// the first MPLS label stack entry whole.
type flowView struct {
	pktMark, conjID, ctState, ctZone, ctMark mval
	ctLabel                                  mbytes
	regs                                     [16]mval
	tunID, tunSrc, tunDst, metadata, inPort  mval
	vlanTCI                                  mval
	dlSrc, dlDst                             mbytes
	dlType                                   mval
	nwSrc, nwDst                             mval
	ipv6Src, ipv6Dst, ndTarget               mbytes
	ipv6Label, nwProto, nwTos, nwTTL, mpls   mval
	nwFrag, tcpFlags                         mval
	arpSha, arpTha                           mbytes
	tpSrc, tpDst                             mval
	// others are fields OVS would not accept in an OF1.3 match, or of a
	// width it would reject; they are printed last, as name=value.
	others []OXM
}

// FormatMatch renders a match as ovs-ofctl prints it: "ip,in_port=1,
// nw_src=10.0.0.0/24" (an empty match is the empty string).
func FormatMatch(m Match) string {
	var b strings.Builder
	formatMatch(&b, m, defaultPriority)
	return strings.TrimSuffix(b.String(), ",")
}

// defaultPriority (OFP_DEFAULT_PRIORITY) is the priority OVS leaves out.
const defaultPriority = 0x8000

// formatMatch writes the match followed by a comma (when not empty), after
// priority=P unless P is the default, as OVS's match_format does.
func formatMatch(b *strings.Builder, m Match, priority int) {
	v := foldMatch(m)
	if priority != defaultPriority {
		fmt.Fprintf(b, "priority=%d,", priority)
	}
	put32 := func(name string, x mval) {
		if x.m != 0 {
			fmt.Fprintf(b, "%s=%s", name, cHex(x.v))
			if x.m != 0xffffffff {
				fmt.Fprintf(b, "/%s", cHex(x.m))
			}
			b.WriteByte(',')
		}
	}
	put64 := func(name string, x mval) {
		if x.m != 0 {
			fmt.Fprintf(b, "%s=%s", name, cHex(x.v))
			if x.m != ^uint64(0) {
				fmt.Fprintf(b, "/%s", cHex(x.m))
			}
			b.WriteByte(',')
		}
	}
	put16 := func(name string, x mval) {
		switch x.m {
		case 0:
		case 0xffff:
			fmt.Fprintf(b, "%s=%d,", name, x.v)
		default:
			fmt.Fprintf(b, "%s=0x%x/0x%x,", name, x.v, x.m)
		}
	}
	putEth := func(name string, x mbytes) {
		if x.m != nil && !allZero(x.m) {
			fmt.Fprintf(b, "%s=%s,", name, ethMasked(x.v, x.m))
		}
	}
	putIP4 := func(name string, x mval) {
		if x.m != 0 {
			fmt.Fprintf(b, "%s=%s,", name, ip4Masked(uint32(x.v), uint32(x.m)))
		}
	}
	putIP6 := func(name string, x mbytes) {
		if x.m != nil && !allZero(x.m) {
			fmt.Fprintf(b, "%s=%s,", name, ip6Masked(x.v, x.m))
		}
	}

	put32("pkt_mark", v.pktMark)
	if v.conjID.m != 0 {
		fmt.Fprintf(b, "conj_id=%d,", v.conjID.v)
	}
	if v.ctState.m != 0 {
		fmt.Fprintf(b, "ct_state=%s,", ctStateText(uint32(v.ctState.v), uint32(v.ctState.m)))
	}
	put16("ct_zone", v.ctZone)
	put32("ct_mark", v.ctMark)
	if v.ctLabel.m != nil && !allZero(v.ctLabel.m) {
		fmt.Fprintf(b, "ct_label=%s", hexBytes(v.ctLabel.v))
		if !allOnes(v.ctLabel.m) {
			fmt.Fprintf(b, "/%s", hexBytes(v.ctLabel.m))
		}
		b.WriteByte(',')
	}

	shorthand, skipProto := protocolShorthand(v)
	if shorthand != "" {
		b.WriteString(shorthand + ",")
	}
	for i, r := range v.regs {
		put32(fmt.Sprintf("reg%d", i), r)
	}
	put64("tun_id", v.tunID)
	putIP4("tun_src", v.tunSrc)
	putIP4("tun_dst", v.tunDst)
	put64("metadata", v.metadata)
	if v.inPort.m != 0 {
		fmt.Fprintf(b, "in_port=%s,", port16(uint16(v.inPort.v)))
	}
	formatVlanTCI(b, v.vlanTCI)
	putEth("dl_src", v.dlSrc)
	putEth("dl_dst", v.dlDst)
	if shorthand == "" && v.dlType.m != 0 {
		fmt.Fprintf(b, "dl_type=0x%04x,", v.dlType.v)
	}

	dlType := uint16(v.dlType.v)
	isARP := dlType == EthTypeARP || dlType == ethTypeRARP
	switch {
	case dlType == EthTypeIPv6:
		putIP6("ipv6_src", v.ipv6Src)
		putIP6("ipv6_dst", v.ipv6Dst)
		switch v.ipv6Label.m {
		case 0:
		case 0xfffff:
			fmt.Fprintf(b, "ipv6_label=0x%05x,", v.ipv6Label.v)
		default:
			fmt.Fprintf(b, "ipv6_label=0x%05x/0x%05x,", v.ipv6Label.v, v.ipv6Label.m)
		}
	case isARP:
		putIP4("arp_spa", v.nwSrc)
		putIP4("arp_tpa", v.nwDst)
	default:
		putIP4("nw_src", v.nwSrc)
		putIP4("nw_dst", v.nwDst)
	}
	if !skipProto && v.nwProto.m != 0 {
		if isARP {
			fmt.Fprintf(b, "arp_op=%d,", v.nwProto.v)
		} else {
			fmt.Fprintf(b, "nw_proto=%d,", v.nwProto.v)
		}
	}
	if isARP {
		putEth("arp_sha", v.arpSha)
		putEth("arp_tha", v.arpTha)
	}
	if v.nwTos.m&0xfc != 0 {
		fmt.Fprintf(b, "nw_tos=%d,", v.nwTos.v&0xfc)
	}
	if v.nwTos.m&0x03 != 0 {
		fmt.Fprintf(b, "nw_ecn=%d,", v.nwTos.v&0x03)
	}
	if v.nwTTL.m != 0 {
		fmt.Fprintf(b, "nw_ttl=%d,", v.nwTTL.v)
	}
	if v.mpls.m&mplsLabelMask != 0 {
		fmt.Fprintf(b, "mpls_label=%d,", v.mpls.v&mplsLabelMask>>12)
	}
	if v.mpls.m&mplsTCMask != 0 {
		fmt.Fprintf(b, "mpls_tc=%d,", v.mpls.v&mplsTCMask>>9)
	}
	if v.mpls.m&mplsBoSMask != 0 {
		fmt.Fprintf(b, "mpls_bos=%d,", v.mpls.v&mplsBoSMask>>8)
	}
	if v.nwFrag.m != 0 {
		fmt.Fprintf(b, "nw_frag=%s,", fragText(v.nwFrag))
	}

	proto := uint8(v.nwProto.v)
	switch {
	case dlType == EthTypeIPv4 && proto == IPProtoICMP:
		put16("icmp_type", v.tpSrc)
		put16("icmp_code", v.tpDst)
	case dlType == EthTypeIPv4 && proto == ipProtoIGMP:
		put16("igmp_type", v.tpSrc)
		put16("igmp_code", v.tpDst)
	case dlType == EthTypeIPv6 && proto == IPProtoICMPv6:
		put16("icmp_type", v.tpSrc)
		put16("icmp_code", v.tpDst)
		putIP6("nd_target", v.ndTarget)
		putEth("nd_sll", v.arpSha)
		putEth("nd_tll", v.arpTha)
	default:
		put16("tp_src", v.tpSrc)
		put16("tp_dst", v.tpDst)
	}
	if (dlType == EthTypeIPv4 || dlType == EthTypeIPv6) && proto == IPProtoTCP && v.tcpFlags.m != 0 {
		fmt.Fprintf(b, "tcp_flags=%s,", flagsText(uint32(v.tcpFlags.v), uint32(v.tcpFlags.m), 0xfff, tcpFlagNames))
	}
	for _, o := range v.others {
		b.WriteString(otherField(o))
		b.WriteByte(',')
	}
}

const (
	ethTypeRARP   uint16 = 0x8035
	ipProtoIGMP   uint8  = 2
	mplsLabelMask        = 0xfffff000
	mplsTCMask           = 0x00000e00
	mplsBoSMask          = 0x00000100
)

// fragText follows match_format's nw_frag names for each mask of the two
// fragment bits (FLOW_NW_FRAG_ANY 1, FLOW_NW_FRAG_LATER 2).
func fragText(f mval) string {
	anyFrag, later := f.v&1 != 0, f.v&2 != 0
	switch {
	case f.m == 1 && anyFrag:
		return "yes"
	case f.m == 1:
		return "no"
	case f.m == 2 && later:
		return "later"
	case f.m == 2:
		return "not_later"
	case anyFrag && later:
		return "later"
	case anyFrag:
		return "first"
	case later:
		return "<error>"
	}
	return "no"
}

// protocolShorthand is OVS's name for the Ethernet type and IP protocol
// ("ip", "tcp6", "arp", ...), and whether it stands for the protocol too.
func protocolShorthand(v flowView) (name string, coversProto bool) {
	if v.dlType.m == 0 {
		return "", false
	}
	ipName := ipProtoName(uint8(v.nwProto.v))
	switch uint16(v.dlType.v) {
	case EthTypeIPv4:
		if v.nwProto.m != 0 && ipName != "" && ipName != "icmp6" {
			return ipName, true
		}
		return "ip", false
	case EthTypeIPv6:
		switch {
		case v.nwProto.m == 0 || ipName == "" || ipName == "icmp" || ipName == "igmp":
			return "ipv6", false
		case ipName == "icmp6":
			return ipName, true
		}
		return ipName + "6", true
	case EthTypeARP:
		return "arp", false
	case ethTypeRARP:
		return "rarp", false
	case EthTypeMPLS:
		return "mpls", false
	case EthTypeMPLSMulticast:
		return "mplsm", false
	}
	return "", false
}

func ipProtoName(p uint8) string {
	switch p {
	case IPProtoICMP:
		return "icmp"
	case ipProtoIGMP:
		return "igmp"
	case IPProtoTCP:
		return "tcp"
	case IPProtoUDP:
		return "udp"
	case IPProtoSCTP:
		return "sctp"
	case IPProtoICMPv6:
		return "icmp6"
	}
	return ""
}

// formatVlanTCI follows match_format: a tagged match on the whole VID or
// PCP (or both) reads as dl_vlan / dl_vlan_pcp, anything else as vlan_tci.
func formatVlanTCI(b *strings.Builder, t mval) {
	if t.m == 0 {
		return
	}
	vidMask, pcpMask := t.m&0x0fff, t.m&0xe000
	if t.m&0x1000 != 0 && t.v&0x1000 != 0 &&
		(vidMask == 0 || vidMask == 0x0fff) && (pcpMask == 0 || pcpMask == 0xe000) && (vidMask != 0 || pcpMask != 0) {
		if vidMask != 0 {
			fmt.Fprintf(b, "dl_vlan=%d,", t.v&0x0fff)
		}
		if pcpMask != 0 {
			fmt.Fprintf(b, "dl_vlan_pcp=%d,", t.v>>13)
		}
		return
	}
	if t.m == 0xffff {
		fmt.Fprintf(b, "vlan_tci=0x%04x,", t.v)
		return
	}
	fmt.Fprintf(b, "vlan_tci=0x%04x/0x%04x,", t.v, t.m)
}

// foldMatch applies the fields in order, as OVS's nx_pull_match does: a
// later field of the same slot overrides an earlier one.
func foldMatch(m Match) flowView {
	var v flowView
	for _, o := range m.Fields {
		if !foldField(&v, o) {
			v.others = append(v.others, o)
		}
	}
	return v
}

// foldField sets o's slot in v; it reports false for a field it has no
// slot for, or whose value or mask has the wrong width.
func foldField(v *flowView, o OXM) bool {
	t, ok := textOf(o.Class, o.Field, o.Experimenter)
	if !ok || len(o.Value) != t.wireBytes() || (o.Mask != nil && len(o.Mask) != len(o.Value)) {
		return false
	}
	switch {
	case o.Class == OXMClassOpenFlow && o.Field == 6:
		foldVlanVID(v, intOf(o))
		return true
	case t.bits%8 != 0:
		return foldNarrow(v, t.mf, intOf(o))
	case t.kind == kindEthernet || t.kind == kindIPv6 || t.bits > 64:
		if p := v.bytesSlot(t.mf); p != nil {
			*p = mbytes{v: o.Value, m: o.Mask}
			if o.Mask == nil {
				p.m = onesLike(o.Value)
			}
			return true
		}
		return false
	}
	x := intOf(o)
	switch t.mf {
	case "in_port_oxm":
		p, ok := ofp11Port(uint32(x.v))
		if !ok {
			return false
		}
		v.inPort = mval{uint64(p), 0xffff}
	case "arp_op":
		// OVS keeps the ARP opcode in nw_proto, which has 8 bits.
		v.nwProto = mval{x.v & 0xff, x.m & 0xff}
	case "nw_tos":
		v.nwTos = mval{v.nwTos.v&0x03 | x.v&0xfc, v.nwTos.m | 0xfc}
	case "icmp_type", "icmpv6_type":
		// ICMP types and codes live in the 16-bit L4 port slots.
		v.tpSrc = mval{x.v, 0xffff}
	case "icmp_code", "icmpv6_code":
		v.tpDst = mval{x.v, 0xffff}
	default:
		if o.Class == OXMClassPacketRegs {
			// OVS keeps xregN as the pair reg2N (upper half), reg2N+1.
			v.regs[2*o.Field] = mval{x.v >> 32, x.m >> 32}
			v.regs[2*o.Field+1] = mval{x.v & 0xffffffff, x.m & 0xffffffff}
			return true
		}
		p := v.intSlot(t.mf, o)
		if p == nil {
			return false
		}
		*p = x
	}
	return true
}

// wireBytes is the width of the field's OXM value: the 20-bit fields
// travel in 4 bytes, the others in as few bytes as hold them.
func (t fieldText) wireBytes() int {
	if t.bits == 20 {
		return 4
	}
	return (t.bits + 7) / 8
}

// intSlot is the slot an integer field sets.
func (v *flowView) intSlot(mf string, o OXM) *mval {
	if o.Class == OXMClassNXM1 && o.Field < 16 {
		return &v.regs[o.Field]
	}
	switch mf {
	case "pkt_mark":
		return &v.pktMark
	case "conj_id":
		return &v.conjID
	case "ct_state":
		return &v.ctState
	case "ct_zone":
		return &v.ctZone
	case "ct_mark":
		return &v.ctMark
	case "tun_id":
		return &v.tunID
	case "tun_src":
		return &v.tunSrc
	case "tun_dst":
		return &v.tunDst
	case "metadata":
		return &v.metadata
	case "in_port":
		return &v.inPort
	case "vlan_tci":
		return &v.vlanTCI
	case "eth_type":
		return &v.dlType
	case "ip_src", "arp_spa":
		return &v.nwSrc
	case "ip_dst", "arp_tpa":
		return &v.nwDst
	case "nw_proto":
		return &v.nwProto
	case "nw_ttl":
		return &v.nwTTL
	case "tcp_src", "udp_src", "sctp_src":
		return &v.tpSrc
	case "tcp_dst", "udp_dst", "sctp_dst":
		return &v.tpDst
	}
	return nil
}

// bytesSlot is the slot an Ethernet, IPv6 or 128-bit field sets.
func (v *flowView) bytesSlot(mf string) *mbytes {
	switch mf {
	case "eth_src":
		return &v.dlSrc
	case "eth_dst":
		return &v.dlDst
	case "arp_sha", "nd_sll":
		return &v.arpSha
	case "arp_tha", "nd_tll":
		return &v.arpTha
	case "ipv6_src":
		return &v.ipv6Src
	case "ipv6_dst":
		return &v.ipv6Dst
	case "nd_target":
		return &v.ndTarget
	case "ct_label":
		return &v.ctLabel
	}
	return nil
}

// foldVlanVID is match_set_vlan_vid_masked: the VID and CFI bits of the
// TCI, leaving any PCP match in place.
func foldVlanVID(v *flowView, x mval) {
	mask := x.m & 0x1fff
	v.vlanTCI.v = v.vlanTCI.v&^0x1fff | x.v&mask
	v.vlanTCI.m = mask | v.vlanTCI.m&0xe000
}

// foldNarrow places the fields narrower than their bytes where OVS keeps
// them: in the VLAN TCI, the IP TOS byte, the MPLS label stack entry.
func foldNarrow(v *flowView, mf string, x mval) bool {
	switch mf {
	case "vlan_pcp": // match_set_dl_vlan_pcp: sets CFI as well
		v.vlanTCI.v = v.vlanTCI.v&^0xe000 | (x.v&7)<<13 | 0x1000
		v.vlanTCI.m |= 0xf000
	case "ip_dscp":
		v.nwTos.v = v.nwTos.v&^0xfc | (x.v<<2)&0xfc
		v.nwTos.m |= 0xfc
	case "nw_ecn":
		v.nwTos.v = v.nwTos.v&^0x03 | x.v&0x03
		v.nwTos.m |= 0x03
	case "mpls_label":
		v.mpls.v = v.mpls.v&^mplsLabelMask | (x.v<<12)&mplsLabelMask
		v.mpls.m |= mplsLabelMask
	case "mpls_tc":
		v.mpls.v = v.mpls.v&^mplsTCMask | (x.v<<9)&mplsTCMask
		v.mpls.m |= mplsTCMask
	case "mpls_bos":
		v.mpls.v = v.mpls.v&^mplsBoSMask | (x.v<<8)&mplsBoSMask
		v.mpls.m |= mplsBoSMask
	case "ipv6_label":
		v.ipv6Label = mval{x.v & 0xfffff, x.m & 0xfffff}
	case "ip_frag":
		v.nwFrag = mval{x.v & 3, x.m & 3}
	case "tcp_flags":
		v.tcpFlags = mval{x.v & 0xfff, x.m & 0xfff}
	default:
		return false
	}
	return true
}

// intOf reads a field of at most 8 bytes with its mask (all ones when
// unmasked).
func intOf(o OXM) mval {
	x := mval{v: beUint(o.Value), m: beUint(onesLike(o.Value))}
	if o.Mask != nil {
		x.m = beUint(o.Mask)
	}
	return x
}

func onesLike(b []byte) []byte {
	m := make([]byte, len(b))
	for i := range m {
		m[i] = 0xff
	}
	return m
}

// otherField renders a field OVS would not take in a match, so that it at
// least shows: OVS's name when it has one, else the raw header.
func otherField(o OXM) string {
	name := fmt.Sprintf("oxm(%#x,%d)", o.Class, o.Field)
	if o.Class == OXMClassExperimenter {
		name = fmt.Sprintf("oxm(%#x,%#x,%d)", o.Class, o.Experimenter, o.Field)
	} else if fi, ok := LookupField(o.Class, o.Field); ok {
		name = fi.Name
	}
	s := name + "=" + hexBytes(o.Value)
	if o.Mask != nil {
		s += "/" + hexBytes(o.Mask)
	}
	return s
}
