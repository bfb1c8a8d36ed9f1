package dhcp

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	broadcastIP  = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	zeroIP       = netip.AddrFrom4([4]byte{})
)

// nakMessage is option 56 of a NAK: what the client's log will say.
const nakMessage = "the address is not this port's"

// Answer answers frame, which the port of b sent, from b alone: the whole
// Ethernet frame of the answer, addressed to that port, or nil; and the
// verdict to count. Malformed input of any kind is an answer of nil,
// never a panic.
//
//	DISCOVER                          OFFER of b.IP
//	REQUEST naming another server     nothing (not_for_us)
//	REQUEST for b.IP                  ACK
//	REQUEST for another address       NAK (wrong_address), also when
//	                                  renewing it from that address
//	RELEASE, DECLINE                  nothing: the port keeps its address
//	INFORM from b.IP                  ACK without a lease (RFC 2131 §3.4)
//
// The address asked for is the requested-IP option, or else ciaddr
// (RENEWING, REBINDING); a server identifier names the server chosen
// (SELECTING). Every request must come from b.MAC, in its Ethernet source
// and its chaddr, and from 0.0.0.0 or b.IP — or, for a REQUEST, from its
// ciaddr: a client renewing a lease that is no longer the port's (the port
// re-created with its MAC and another address) is told so by a NAK, as
// RFC 2131 §4.3.2 asks, rather than left on it until the lease ends.
func Answer(frame []byte, b Binding) ([]byte, Verdict) {
	if !b.valid() {
		return nil, Verdict{Reason: ReasonUnknownPort}
	}
	h, payload, err := ParseFrame(frame)
	if err != nil || h.SrcPort != ClientPort || h.DstPort != ServerPort {
		return nil, Verdict{Reason: ReasonMalformed}
	}
	req, err := dhcpv4.FromBytes(payload)
	if err != nil || req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != iana.HWTypeEthernet ||
		len(req.ClientHWAddr) != 6 || req.MessageType() == dhcpv4.MessageTypeNone {
		return nil, Verdict{Reason: ReasonMalformed}
	}
	v := Verdict{Type: typeOf(req.MessageType())}
	ciaddr, giaddr := addr(req.ClientIPAddr), addr(req.GatewayIPAddr)
	switch {
	case !bytes.Equal(h.SrcMAC, b.MAC) || !bytes.Equal(req.ClientHWAddr, b.MAC):
		v.Reason = ReasonUnknownMAC
	case h.SrcIP != zeroIP && h.SrcIP != b.IP && (req.MessageType() != dhcpv4.MessageTypeRequest || h.SrcIP != ciaddr):
		v.Reason = ReasonWrongSource
	case giaddr.IsValid() && giaddr != zeroIP:
		v.Reason = ReasonRelayed
	case !ciaddr.IsValid():
		v.Reason = ReasonMalformed
	}
	if v.Reason != "" {
		return nil, v
	}

	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		v.Answer = AnswerOffer
		return reply(req, b, dhcpv4.MessageTypeOffer, b.IP, zeroIP, true), v
	case dhcpv4.MessageTypeRequest:
		asked := ciaddr
		if rip := req.RequestedIPAddress(); rip != nil {
			asked = addr(rip)
		}
		if sid := req.ServerIdentifier(); sid != nil && addr(sid) != b.Gateway {
			v.Reason = ReasonNotForUs
			return nil, v
		}
		switch {
		case !asked.IsValid() || asked == zeroIP:
			v.Reason = ReasonMalformed
			return nil, v
		case asked != b.IP, ciaddr != zeroIP && ciaddr != b.IP:
			v.Answer, v.Reason = AnswerNak, ReasonWrongAddress
			return nak(req, b), v
		}
		v.Answer = AnswerAck
		return reply(req, b, dhcpv4.MessageTypeAck, b.IP, ciaddr, true), v
	case dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
		// The IPAM record is the lease: the port keeps its address. A
		// DECLINE (someone else answers ARP for it) is the backend's to log.
		return nil, v
	case dhcpv4.MessageTypeInform:
		if ciaddr != b.IP {
			v.Reason = ReasonWrongAddress
			return nil, v
		}
		v.Answer = AnswerAck
		return reply(req, b, dhcpv4.MessageTypeAck, zeroIP, ciaddr, false), v
	default:
		v.Reason = ReasonUnsupported
		return nil, v
	}
}

func typeOf(t dhcpv4.MessageType) string {
	switch t {
	case dhcpv4.MessageTypeDiscover:
		return TypeDiscover
	case dhcpv4.MessageTypeRequest:
		return TypeRequest
	case dhcpv4.MessageTypeDecline:
		return TypeDecline
	case dhcpv4.MessageTypeRelease:
		return TypeRelease
	case dhcpv4.MessageTypeInform:
		return TypeInform
	default:
		return TypeOther
	}
}

// addr converts an address field of a message; the zero Addr for one
// that is not four bytes.
func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || !a.Unmap().Is4() {
		return netip.Addr{}
	}
	return a.Unmap()
}

// reply builds an OFFER or ACK of yiaddr (zero for an INFORM's ACK) with
// the client's ciaddr (zero in an OFFER, RFC 2131 table 3) and frames it
// as §4.1 says a server on the client's link sends it: to ciaddr when the
// client has one, else broadcast when it asks so, else to yiaddr at
// chaddr. Every one of them reaches only the port.
func reply(req *dhcpv4.DHCPv4, b Binding, t dhcpv4.MessageType, yiaddr, ciaddr netip.Addr, lease bool) []byte {
	r := header(req)
	r.ClientIPAddr = ciaddr.AsSlice()
	r.YourIPAddr = yiaddr.AsSlice()
	r.UpdateOption(dhcpv4.OptMessageType(t))
	for _, o := range b.options(lease) {
		r.UpdateOption(o)
	}
	echoClientID(req, r)
	dst, dstMAC := yiaddr, req.ClientHWAddr
	switch {
	case ciaddr != zeroIP:
		dst = ciaddr
	case req.IsBroadcast():
		dst, dstMAC = broadcastIP, broadcastMAC
	}
	return frame(b, dstMAC, dst, r)
}

// nak builds the NAK of a REQUEST, broadcast as RFC 2131 §4.1 says, which
// still reaches only the port.
func nak(req *dhcpv4.DHCPv4, b Binding) []byte {
	r := header(req)
	r.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
	r.UpdateOption(dhcpv4.OptServerIdentifier(b.Gateway.AsSlice()))
	r.UpdateOption(dhcpv4.OptMessage(nakMessage))
	echoClientID(req, r)
	return frame(b, broadcastMAC, broadcastIP, r)
}

// header is the part of every answer copied from the request; the
// message is built whole here rather than with dhcpv4.New, which draws a
// random transaction ID only to overwrite it.
func header(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	zero := net.IPv4zero.To4()
	return &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        iana.HWTypeEthernet,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  zero,
		YourIPAddr:    zero,
		ServerIPAddr:  zero,
		GatewayIPAddr: zero,
		ClientHWAddr:  req.ClientHWAddr,
		Options:       dhcpv4.Options{},
	}
}

// echoClientID copies the client identifier, which RFC 6842 asks servers
// to return.
func echoClientID(req, r *dhcpv4.DHCPv4) {
	if id := req.Options.Get(dhcpv4.OptionClientIdentifier); id != nil {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientIdentifier, id))
	}
}

func frame(b Binding, dstMAC net.HardwareAddr, dst netip.Addr, r *dhcpv4.DHCPv4) []byte {
	return Frame(Header{SrcMAC: b.GatewayMAC, DstMAC: dstMAC, SrcIP: b.Gateway, DstIP: dst,
		SrcPort: ServerPort, DstPort: ClientPort}, r.ToBytes())
}
