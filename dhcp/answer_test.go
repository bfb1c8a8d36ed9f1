package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/ovs-vnet/ovs-vnet/internal/inetsum"
)

var (
	portMAC  = net.HardwareAddr{0x02, 0x10, 0, 0, 0, 0x05}
	otherMAC = net.HardwareAddr{0x02, 0x10, 0, 0, 0, 0x06}
	gwMAC    = net.HardwareAddr{0x02, 0x76, 0, 0, 0, 0x01}
	portIP   = netip.MustParseAddr("10.81.0.5")
	otherIP  = netip.MustParseAddr("10.81.0.6")
	gwIP     = netip.MustParseAddr("10.81.0.1")
)

func testBinding() Binding {
	return Binding{MAC: portMAC, IP: portIP, Subnet: netip.MustParsePrefix("10.81.0.0/24"),
		Gateway: gwIP, GatewayMAC: gwMAC, MTU: 1400,
		DNS:    []netip.Addr{netip.MustParseAddr("10.81.0.53"), netip.MustParseAddr("9.9.9.9")},
		Domain: "lab.example"}
}

// client describes a request as a port's DHCP client sends it.
type client struct {
	t         dhcpv4.MessageType
	ethSrc    net.HardwareAddr // default portMAC
	chaddr    net.HardwareAddr // default portMAC
	src       netip.Addr       // default 0.0.0.0
	ciaddr    netip.Addr
	giaddr    netip.Addr
	requested netip.Addr
	server    netip.Addr
	broadcast bool
	clientID  []byte
	op        dhcpv4.OpcodeType // default BootRequest
}

func (c client) frame(t testing.TB) []byte {
	t.Helper()
	if c.ethSrc == nil {
		c.ethSrc = portMAC
	}
	if c.chaddr == nil {
		c.chaddr = portMAC
	}
	if !c.src.IsValid() {
		c.src = zeroIP
	}
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(c.t), dhcpv4.WithHwAddr(c.chaddr), dhcpv4.WithBroadcast(c.broadcast)}
	if c.ciaddr.IsValid() {
		mods = append(mods, dhcpv4.WithClientIP(c.ciaddr.AsSlice()))
	}
	if c.giaddr.IsValid() {
		mods = append(mods, dhcpv4.WithGatewayIP(c.giaddr.AsSlice()))
	}
	if c.requested.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(c.requested.AsSlice())))
	}
	if c.server.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(c.server.AsSlice())))
	}
	if c.clientID != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(c.clientID)))
	}
	if c.op != 0 {
		op := c.op
		mods = append(mods, func(d *dhcpv4.DHCPv4) { d.OpCode = op })
	}
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return Frame(Header{SrcMAC: c.ethSrc, DstMAC: broadcastMAC, SrcIP: c.src, DstIP: broadcastIP,
		SrcPort: ClientPort, DstPort: ServerPort}, m.ToBytes())
}

// TestAnswer holds every row of Answer's table: what each request gets,
// and how the answer is addressed.
func TestAnswer(t *testing.T) {
	for _, c := range []struct {
		name    string
		req     client
		want    Verdict
		yiaddr  netip.Addr // zero: no answer
		dstIP   netip.Addr
		dstMAC  net.HardwareAddr
		ciaddr  netip.Addr
		noLease bool
	}{
		{name: "discover", req: client{t: dhcpv4.MessageTypeDiscover},
			want: Verdict{TypeDiscover, AnswerOffer, ""}, yiaddr: portIP, dstIP: portIP, dstMAC: portMAC},
		{name: "discover asking broadcast", req: client{t: dhcpv4.MessageTypeDiscover, broadcast: true},
			want: Verdict{TypeDiscover, AnswerOffer, ""}, yiaddr: portIP, dstIP: broadcastIP, dstMAC: broadcastMAC},
		{name: "discover asking for another address gets its own", req: client{t: dhcpv4.MessageTypeDiscover, requested: otherIP},
			want: Verdict{TypeDiscover, AnswerOffer, ""}, yiaddr: portIP, dstIP: portIP, dstMAC: portMAC},
		{name: "discover with a ciaddr is offered with none", req: client{t: dhcpv4.MessageTypeDiscover, src: portIP, ciaddr: portIP},
			want: Verdict{TypeDiscover, AnswerOffer, ""}, yiaddr: portIP, dstIP: portIP, dstMAC: portMAC, ciaddr: zeroIP},
		{name: "request selecting", req: client{t: dhcpv4.MessageTypeRequest, requested: portIP, server: gwIP},
			want: Verdict{TypeRequest, AnswerAck, ""}, yiaddr: portIP, dstIP: portIP, dstMAC: portMAC},
		{name: "request selecting another server", req: client{t: dhcpv4.MessageTypeRequest, requested: portIP, server: netip.MustParseAddr("10.81.0.254")},
			want: Verdict{TypeRequest, "", ReasonNotForUs}},
		{name: "request selecting another address", req: client{t: dhcpv4.MessageTypeRequest, requested: otherIP, server: gwIP},
			want: Verdict{TypeRequest, AnswerNak, ReasonWrongAddress}, dstIP: broadcastIP, dstMAC: broadcastMAC},
		{name: "request init-reboot", req: client{t: dhcpv4.MessageTypeRequest, requested: portIP},
			want: Verdict{TypeRequest, AnswerAck, ""}, yiaddr: portIP, dstIP: portIP, dstMAC: portMAC},
		{name: "request init-reboot another address", req: client{t: dhcpv4.MessageTypeRequest, requested: otherIP},
			want: Verdict{TypeRequest, AnswerNak, ReasonWrongAddress}, dstIP: broadcastIP, dstMAC: broadcastMAC},
		{name: "request renewing", req: client{t: dhcpv4.MessageTypeRequest, src: portIP, ciaddr: portIP},
			want: Verdict{TypeRequest, AnswerAck, ""}, yiaddr: portIP, dstIP: portIP, dstMAC: portMAC, ciaddr: portIP},
		{name: "request rebinding broadcast goes to ciaddr", req: client{t: dhcpv4.MessageTypeRequest, src: portIP, ciaddr: portIP, broadcast: true},
			want: Verdict{TypeRequest, AnswerAck, ""}, yiaddr: portIP, dstIP: portIP, dstMAC: portMAC, ciaddr: portIP},
		{name: "request renewing another address", req: client{t: dhcpv4.MessageTypeRequest, ciaddr: otherIP},
			want: Verdict{TypeRequest, AnswerNak, ReasonWrongAddress}, dstIP: broadcastIP, dstMAC: broadcastMAC},
		// A port re-created with its MAC and another address, its client
		// still holding the old lease: RFC 2131 §4.3.2 asks for a NAK.
		{name: "request renewing a stale address", req: client{t: dhcpv4.MessageTypeRequest, src: otherIP, ciaddr: otherIP},
			want: Verdict{TypeRequest, AnswerNak, ReasonWrongAddress}, dstIP: broadcastIP, dstMAC: broadcastMAC},
		{name: "request rebinding a stale address", req: client{t: dhcpv4.MessageTypeRequest, src: otherIP, ciaddr: otherIP, broadcast: true},
			want: Verdict{TypeRequest, AnswerNak, ReasonWrongAddress}, dstIP: broadcastIP, dstMAC: broadcastMAC},
		{name: "request with a stale ciaddr asking for the port's", req: client{t: dhcpv4.MessageTypeRequest, ciaddr: otherIP, requested: portIP},
			want: Verdict{TypeRequest, AnswerNak, ReasonWrongAddress}, dstIP: broadcastIP, dstMAC: broadcastMAC},
		{name: "request renewing from another source than its ciaddr", req: client{t: dhcpv4.MessageTypeRequest, src: otherIP, ciaddr: netip.MustParseAddr("10.81.0.7")},
			want: Verdict{TypeRequest, "", ReasonWrongSource}},
		{name: "stale-address request from another MAC", req: client{t: dhcpv4.MessageTypeRequest, src: otherIP, ciaddr: otherIP, chaddr: otherMAC},
			want: Verdict{TypeRequest, "", ReasonUnknownMAC}},
		{name: "discover from a stale address", req: client{t: dhcpv4.MessageTypeDiscover, src: otherIP, ciaddr: otherIP},
			want: Verdict{TypeDiscover, "", ReasonWrongSource}},
		{name: "request for nothing", req: client{t: dhcpv4.MessageTypeRequest},
			want: Verdict{TypeRequest, "", ReasonMalformed}},
		{name: "release", req: client{t: dhcpv4.MessageTypeRelease, src: portIP, ciaddr: portIP, server: gwIP},
			want: Verdict{TypeRelease, "", ""}},
		{name: "decline", req: client{t: dhcpv4.MessageTypeDecline, requested: portIP, server: gwIP},
			want: Verdict{TypeDecline, "", ""}},
		{name: "inform", req: client{t: dhcpv4.MessageTypeInform, src: portIP, ciaddr: portIP},
			want: Verdict{TypeInform, AnswerAck, ""}, yiaddr: zeroIP, dstIP: portIP, dstMAC: portMAC, ciaddr: portIP, noLease: true},
		{name: "inform from another address", req: client{t: dhcpv4.MessageTypeInform, ciaddr: otherIP},
			want: Verdict{TypeInform, "", ReasonWrongAddress}},
		{name: "offer from a port", req: client{t: dhcpv4.MessageTypeOffer},
			want: Verdict{TypeOther, "", ReasonUnsupported}},
		{name: "another chaddr", req: client{t: dhcpv4.MessageTypeDiscover, chaddr: otherMAC},
			want: Verdict{TypeDiscover, "", ReasonUnknownMAC}},
		{name: "another Ethernet source", req: client{t: dhcpv4.MessageTypeDiscover, ethSrc: otherMAC},
			want: Verdict{TypeDiscover, "", ReasonUnknownMAC}},
		{name: "another IPv4 source", req: client{t: dhcpv4.MessageTypeRequest, src: otherIP, ciaddr: portIP},
			want: Verdict{TypeRequest, "", ReasonWrongSource}},
		{name: "relayed", req: client{t: dhcpv4.MessageTypeDiscover, giaddr: netip.MustParseAddr("10.9.9.9")},
			want: Verdict{TypeDiscover, "", ReasonRelayed}},
		{name: "a reply sent by a port", req: client{t: dhcpv4.MessageTypeDiscover, op: dhcpv4.OpcodeBootReply},
			want: Verdict{"", "", ReasonMalformed}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, v := Answer(c.req.frame(t), testBinding())
			if v != c.want {
				t.Fatalf("verdict %+v, want %+v", v, c.want)
			}
			if (out != nil) != (c.want.Answer != "") {
				t.Fatalf("answer %x with verdict %+v", out, v)
			}
			if out == nil {
				return
			}
			h, m := decode(t, out)
			if h.SrcIP != gwIP || !bytes.Equal(h.SrcMAC, gwMAC) || h.SrcPort != ServerPort || h.DstPort != ClientPort {
				t.Errorf("answer from %+v, want the gateway's port 67", h)
			}
			if h.DstIP != c.dstIP || !bytes.Equal(h.DstMAC, c.dstMAC) {
				t.Errorf("answer to %v at %v, want %v at %v", h.DstIP, h.DstMAC, c.dstIP, c.dstMAC)
			}
			if !bytes.Equal(m.ClientHWAddr, portMAC) || m.OpCode != dhcpv4.OpcodeBootReply {
				t.Errorf("answer %s", m.Summary())
			}
			if c.want.Answer == AnswerNak {
				if m.MessageType() != dhcpv4.MessageTypeNak || addr(m.ServerIdentifier()) != gwIP || !addr(m.YourIPAddr).IsUnspecified() {
					t.Errorf("NAK %s", m.Summary())
				}
				return
			}
			checkOptions(t, m, c.yiaddr, c.ciaddr, c.noLease)
		})
	}
}

// decode reads an answer back as a client would.
func decode(t *testing.T, frame []byte) (Header, *dhcpv4.DHCPv4) {
	t.Helper()
	h, payload, err := ParseFrame(frame)
	if err != nil {
		t.Fatalf("answer frame: %v", err)
	}
	m, err := dhcpv4.FromBytes(payload)
	if err != nil {
		t.Fatalf("answer message: %v", err)
	}
	return h, m
}

func checkOptions(t *testing.T, m *dhcpv4.DHCPv4, yiaddr, ciaddr netip.Addr, noLease bool) {
	t.Helper()
	if got := addr(m.YourIPAddr); got != yiaddr {
		t.Errorf("yiaddr %v, want %v", got, yiaddr)
	}
	if ciaddr.IsValid() && addr(m.ClientIPAddr) != ciaddr {
		t.Errorf("ciaddr %v, want %v", m.ClientIPAddr, ciaddr)
	}
	if addr(m.ServerIdentifier()) != gwIP || len(m.Router()) != 1 || addr(m.Router()[0]) != gwIP {
		t.Errorf("server %v, router %v: want the gateway", m.ServerIdentifier(), m.Router())
	}
	if ones, _ := m.SubnetMask().Size(); ones != 24 || addr(m.BroadcastAddress()) != netip.MustParseAddr("10.81.0.255") {
		t.Errorf("mask %v, broadcast %v", m.SubnetMask(), m.BroadcastAddress())
	}
	if mtu, err := dhcpv4.GetUint16(dhcpv4.OptionInterfaceMTU, m.Options); err != nil || mtu != 1400 {
		t.Errorf("mtu %d, %v", mtu, err)
	}
	if dns := m.DNS(); len(dns) != 2 || addr(dns[0]) != netip.MustParseAddr("10.81.0.53") || addr(dns[1]) != netip.MustParseAddr("9.9.9.9") {
		t.Errorf("dns %v", dns)
	}
	if m.DomainName() != "lab.example" {
		t.Errorf("domain %q", m.DomainName())
	}
	lease := m.IPAddressLeaseTime(0)
	if noLease {
		if lease != 0 || m.Options.Has(dhcpv4.OptionRenewTimeValue) || m.Options.Has(dhcpv4.OptionRebindingTimeValue) {
			t.Errorf("an INFORM's ACK with lease times: %s", m.Summary())
		}
		return
	}
	if lease != LeaseTime || m.IPAddressRenewalTime(0) != 12*time.Hour || m.IPAddressRebindingTime(0) != 21*time.Hour {
		t.Errorf("lease %v, T1 %v, T2 %v", lease, m.IPAddressRenewalTime(0), m.IPAddressRebindingTime(0))
	}
}

func TestAnswerEchoesClientID(t *testing.T) {
	id := []byte{1, 2, 0x10, 0, 0, 0, 5}
	out, _ := Answer(client{t: dhcpv4.MessageTypeDiscover, clientID: id}.frame(t), testBinding())
	_, m := decode(t, out)
	if got := m.Options.Get(dhcpv4.OptionClientIdentifier); !bytes.Equal(got, id) {
		t.Fatalf("client identifier %x, want %x (RFC 6842)", got, id)
	}
}

// TestAnswerLeavesOutWhatIsNotSet: no DNS, domain or MTU option for a
// network without them.
func TestAnswerLeavesOutWhatIsNotSet(t *testing.T) {
	b := testBinding()
	b.DNS, b.Domain, b.MTU = nil, "", 0
	out, _ := Answer(client{t: dhcpv4.MessageTypeDiscover}.frame(t), b)
	_, m := decode(t, out)
	for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionDomainNameServer, dhcpv4.OptionDomainName, dhcpv4.OptionInterfaceMTU} {
		if m.Options.Has(o) {
			t.Errorf("option %v present", o)
		}
	}
}

func TestAnswerRefusesWhatIsNoDHCP(t *testing.T) {
	good := client{t: dhcpv4.MessageTypeDiscover}.frame(t)
	wrongPort := bytes.Clone(good)
	wrongPort[ethLen+ipv4MinLen+3] = 68 // to the client port
	fragment := bytes.Clone(good)
	fragment[ethLen+6] = 0x20 // MF
	short := good[:ethLen+ipv4MinLen+udpLen+100]
	noCookie := bytes.Clone(good)
	noCookie[ethLen+ipv4MinLen+udpLen+236] = 0
	for name, f := range map[string][]byte{
		"empty": nil, "wrong port": wrongPort, "fragment": fragment, "cut": short, "no magic cookie": noCookie,
	} {
		if out, v := Answer(f, testBinding()); out != nil || v.Reason != ReasonMalformed {
			t.Errorf("%s: %x, %+v", name, out, v)
		}
	}
	if out, v := Answer(good, Binding{}); out != nil || v.Reason != ReasonUnknownPort {
		t.Errorf("no binding: %x, %+v", out, v)
	}
}

// TestFrameChecksums: the answer's IPv4 and UDP checksums verify, as a
// client's stack checks them.
func TestFrameChecksums(t *testing.T) {
	out, _ := Answer(client{t: dhcpv4.MessageTypeDiscover}.frame(t), testBinding())
	ip := out[ethLen : ethLen+ipv4MinLen]
	if inetsum.Checksum(0, ip) != 0 {
		t.Errorf("IPv4 header checksum does not verify")
	}
	udp := out[ethLen+ipv4MinLen:]
	pseudo := uint32(protoUDP) + uint32(len(udp))
	for i := 12; i < 20; i += 2 {
		pseudo += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	if inetsum.Checksum(pseudo, udp) != 0 {
		t.Errorf("UDP checksum does not verify")
	}
}
