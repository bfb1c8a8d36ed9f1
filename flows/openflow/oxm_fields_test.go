package openflow

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// TestConstructorsMatchOVS compares matches built with the constructors to
// the ofp_match ovs-ofctl 3.1 sent (-O OpenFlow13 add-flow) for the flow in
// each case's name, so that flows we install read back byte for byte.
func TestConstructorsMatchOVS(t *testing.T) {
	var label, labelMask [16]byte
	label[15], labelMask[15] = 1, 1
	for _, c := range []struct {
		name   string
		fields []OXM
		hex    string
	}{
		{"tun_id=5", []OXM{TunID(5)}, "0001001080004c080000000000000005"},
		{"tun_id=5/0xff", []OXM{TunIDMasked(5, 0xff)}, "0001001880004d10000000000000000500000000000000ff"},
		{"ct_state=+trk+est-new,ct_zone=5,ct_mark=1/1,ct_label=0x1/0x1", []OXM{
			CtState(CtStateTracked|CtStateEstablished, CtStateTracked|CtStateEstablished|CtStateNew),
			CtZone(5), CtMark(1, 1), CtLabel(label, labelMask)},
			"000100460001d30800000022000000230001d40200050001d70800000001000000010001d92000000000000000000000000000000001000000000000000000000000000000010000"},
		{"metadata=5", []OXM{Metadata(5, ^uint64(0))}, "00010010800004080000000000000005"},
		{"dl_vlan=5", []OXM{VlanVID(VlanPresent | 5)}, "0001000a80000c021005000000000000"},
		{"vlan_tci=0x1000/0x1000", []OXM{VlanVIDMasked(VlanPresent, VlanPresent)}, "0001000c80000d041000100000000000"},
		{"tcp,nw_src=10.0.0.0/8,tp_dst=80", []OXM{EthType(EthTypeIPv4), IPv4SrcPrefix(netip.MustParsePrefix("10.0.0.0/8")),
			IPProto(IPProtoTCP), TCPDst(80)}, "0001002180000a020800800017080a000000ff000000800014010680001c02005000000000000000"},
		{"ipv6,ipv6_src=2001::/16", []OXM{EthType(EthTypeIPv6), IPv6SrcPrefix(netip.MustParsePrefix("2001::/16"))},
			"0001002e80000a0286dd8000352020010000000000000000000000000000ffff00000000000000000000000000000000"},
		{"arp,arp_op=1,arp_spa=10.0.0.1", []OXM{EthType(EthTypeARP), ARPOp(1), ARPSpa(netip.MustParseAddr("10.0.0.1"))},
			"0001001880000a02080680002a02000180002c040a000001"},
		{"in_port=LOCAL", []OXM{InPort(PortLocal)}, "0001000c80000004fffffffe00000000"},
		{"conj_id=7", []OXM{ConjID(7)}, "0001000c00014a040000000700000000"},
		{"tun_src=1.1.1.1", []OXM{TunIPv4Src(netip.MustParseAddr("1.1.1.1"))}, "0001000c00013e040101010100000000"},
		{"pkt_mark=5/0xff", []OXM{PktMark(5, 0xff)}, "000100100001430800000005000000ff"},
		{"ip,ip_dscp=8", []OXM{EthType(EthTypeIPv4), IPDSCP(8)}, "0001000f80000a020800800010010800"},
		// OVS sends xreg3=4 as reg6=0,reg7=4; XReg's own header is what
		// ovs-ofctl-of13-match vectors and OVS accept, checked here by layout.
		{"reg6=0,reg7=4", []OXM{Reg(6, 0), Reg(7, 4)}, "0001001400010c040000000000010e040000000400000000"},
		{"xreg3=4 (OXM_OF_PKT_REG3)", []OXM{XReg(3, 4)}, "00010010800106080000000000000004"},
		{"reg5=0xabcd/0xffff", []OXM{RegMasked(5, 0xabcd, 0xffff)}, "0001001000010b080000abcd0000ffff"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := Match{Fields: c.fields}
			if err := Validate(m); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := appendMatch(nil, m); !bytes.Equal(got, unhex(t, c.hex)) {
				t.Fatalf("got  %x\nwant %s", got, c.hex)
			}
		})
	}
}

func TestConstructorsMisc(t *testing.T) {
	mac := net.HardwareAddr{0, 1, 2, 3, 4, 5}
	for _, c := range []struct {
		got  OXM
		want string
	}{
		{EthDst(mac), "80000606000102030405"},
		{EthSrcMasked(mac, net.HardwareAddr{0xff, 0xff, 0xff, 0, 0, 0}), "8000090c000102000000ffffff000000"},
		{EthDstMasked(mac, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), "80000606000102030405"},
		{IPv4Dst(netip.MustParseAddr("1.2.3.4")), "8000180401020304"},
		{IPv4DstPrefix(netip.MustParsePrefix("1.2.3.4/32")), "8000180401020304"},
		{IPv4SrcPrefix(netip.MustParsePrefix("1.2.3.4/24")), "80001708010203 00ffffff00"},
		{PBBISID(0x123456), "80004a03123456"},
		{IPv6Exthdr(1, 1), "80004f0400010001"},
		{ARPTha(mac), "80003206000102030405"},
		{IPv6NDTLL(mac), "80004206000102030405"},
		{MPLSLabel(5), "8000440400000005"},
		{XRegMasked(1, 1, 3), "8001031000000000000000010000000000000003"},
		{CtState(CtStateTracked|CtStateNew, CtStateTracked), "0001d3080000002000000020"},
	} {
		if got := appendOXM(nil, c.got); !bytes.Equal(got, unhex(t, c.want)) {
			t.Errorf("got %x, want %s", got, c.want)
		}
	}
	for name, f := range map[string]func(){
		"reg16": func() { Reg(16, 0) }, "xreg8": func() { XReg(8, 0) }, "short mac": func() { EthDst(mac[:5]) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestValidate(t *testing.T) {
	ip, tcp := EthType(EthTypeIPv4), IPProto(IPProtoTCP)
	icmp6 := []OXM{EthType(EthTypeIPv6), IPProto(IPProtoICMPv6)}
	for _, c := range []struct {
		name   string
		fields []OXM
		want   error // nil, ErrMalformed or ErrUnsupported
	}{
		{"empty", nil, nil},
		{"tcp_dst", []OXM{ip, tcp, TCPDst(80)}, nil},
		{"tcp_dst over IPv6", []OXM{EthType(EthTypeIPv6), tcp, TCPDst(80)}, nil},
		{"tcp_dst without nw_proto", []OXM{ip, TCPDst(80)}, ErrMalformed},
		{"prerequisite after the field", []OXM{tcp, ip, TCPDst(80)}, ErrMalformed},
		{"udp_dst under tcp", []OXM{ip, tcp, UDPDst(53)}, ErrMalformed},
		{"ip_src over ARP", []OXM{EthType(EthTypeARP), IPv4Src(netip.MustParseAddr("1.1.1.1"))}, ErrMalformed},
		{"arp_spa", []OXM{EthType(EthTypeARP), ARPSpa(netip.MustParseAddr("1.1.1.1"))}, nil},
		{"duplicate", []OXM{ip, ip}, ErrMalformed},
		{"masked eth_type", []OXM{{Class: OXMClassOpenFlow, Field: 5, Value: []byte{8, 0}, Mask: []byte{0xff, 0}}}, ErrMalformed},
		{"short value", []OXM{{Class: OXMClassOpenFlow, Field: 5, Value: []byte{8}}}, ErrMalformed},
		{"short mask", []OXM{{Class: OXMClassOpenFlow, Field: 2, Value: make([]byte, 8), Mask: make([]byte, 4)}}, ErrMalformed},
		{"value outside mask", []OXM{{Class: OXMClassOpenFlow, Field: 2, Value: be64(3), Mask: be64(1)}}, ErrMalformed},
		{"unknown field", []OXM{{Class: OXMClassNXM1, Field: 120, Value: make([]byte, 4)}}, ErrUnsupported},
		{"experimenter field", []OXM{{Class: OXMClassExperimenter, Experimenter: vendorONF, Value: []byte{1}}}, ErrUnsupported},
		{"vlan_pcp tagged", []OXM{VlanVID(VlanPresent | 3), VlanPCP(1)}, nil},
		{"vlan_pcp any tag", []OXM{VlanVIDMasked(VlanPresent, VlanPresent), VlanPCP(1)}, nil},
		{"vlan_pcp untagged", []OXM{VlanVID(VlanNone), VlanPCP(1)}, ErrMalformed},
		{"vlan_pcp alone", []OXM{VlanPCP(1)}, ErrMalformed},
		{"nd_sll", append(icmp6, ICMPv6Type(135), IPv6NDSLL(net.HardwareAddr{1, 2, 3, 4, 5, 6})), nil},
		{"nd_tll on a solicitation", append(icmp6, ICMPv6Type(135), IPv6NDTLL(net.HardwareAddr{1, 2, 3, 4, 5, 6})), ErrMalformed},
		{"nd_target", append(icmp6, ICMPv6Type(136), IPv6NDTarget(netip.MustParseAddr("::1"))), nil},
		{"mpls", []OXM{EthType(EthTypeMPLSMulticast), MPLSLabel(3), MPLSTC(1), MPLSBoS(1)}, nil},
		{"pbb_isid", []OXM{EthType(EthTypePBB), PBBISID(7)}, nil},
		{"in_phy_port", []OXM{InPort(1), InPhyPort(2)}, nil},
		{"in_phy_port alone", []OXM{InPhyPort(2)}, ErrMalformed},
		{"icmp", []OXM{ip, IPProto(IPProtoICMP), ICMPv4Type(8), ICMPv4Code(0)}, nil},
		{"sctp", []OXM{ip, IPProto(IPProtoSCTP), SCTPSrc(1), SCTPDst(2)}, nil},
		{"ipv6", []OXM{EthType(EthTypeIPv6), IPv6Src(netip.MustParseAddr("::1")), IPv6Dst(netip.MustParseAddr("::2")),
			IPv6FLabel(5), IPv6Exthdr(1, 1), IPECN(1)}, nil},
		{"nicira", []OXM{Reg(0, 1), XReg(0, 1), CtZone(1), TunID(1), TunIPv4Dst(netip.MustParseAddr("1.1.1.1"))}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(Match{Fields: c.fields})
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("want %v, got %v", c.want, err)
			}
		})
	}
}

// TestValidateVectors: every match OVS or Ryu wrote in a flow_mod vector
// passes Validate, except 4-60's, which lists every OF1.3 field in one
// match (ip_dscp beside eth_type=ARP, and an ONF experimenter field), as a
// codec test rather than a flow a switch would take.
func TestValidateVectors(t *testing.T) {
	for name, raw := range flowModVectors(t) {
		mb, _ := splitFlowMod(t, raw)
		r := newReader(mb, "match")
		m := decodeMatch(r)
		if err := r.done(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err := Validate(m)
		if name == "4-60-ofp_flow_mod.packet" {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: want a prerequisite error, got %v", name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestFieldTable(t *testing.T) {
	basic := map[uint8]bool{}
	names := map[string]bool{}
	for _, f := range Fields {
		if names[f.Name] {
			t.Errorf("field name %s twice", f.Name)
		}
		names[f.Name] = true
		if f.Class == OXMClassOpenFlow {
			basic[f.Field] = true
		}
		if got, ok := LookupField(f.Class, f.Field); !ok || got.Name != f.Name {
			t.Errorf("LookupField(%#x, %d) = %v, %v", f.Class, f.Field, got.Name, ok)
		}
		for _, p := range f.Prereqs {
			if _, ok := FieldByName(p.Field); !ok {
				t.Errorf("%s: prerequisite on unknown field %s", f.Name, p.Field)
			}
		}
	}
	for i := range uint8(40) {
		if !basic[i] {
			t.Errorf("OpenFlow basic field %d missing", i)
		}
	}
}
