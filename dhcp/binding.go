package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// LeaseTime is the lease every answer gives. The address never changes
// while the port exists, so a long lease costs nothing, and it rides over
// any restart of the daemon, during which nothing answers on OVS
// (docs/DESIGN.md §8.4). Renewal (T1) at half of it, rebinding (T2) at seven
// eighths, as RFC 2131 §4.4.5 suggests.
const LeaseTime = 24 * time.Hour

// Binding is what one port is owed: its IPAM record and its network's
// options. A backend builds it from the port the frame came in on.
type Binding struct {
	MAC        net.HardwareAddr // the port's
	IP         netip.Addr       // the port's IPAM address
	Subnet     netip.Prefix     // the network's: the mask and broadcast address
	Gateway    netip.Addr       // the router, and the server's identifier
	GatewayMAC net.HardwareAddr // the answers' Ethernet source (model.BridgeMAC)
	MTU        int              // option 26; 0 leaves it out
	DNS        []netip.Addr     // option 6, in order; none leaves it out
	Domain     string           // option 15; "" leaves it out
}

// valid tells whether b can address an answer at all.
func (b Binding) valid() bool {
	return len(b.MAC) == 6 && len(b.GatewayMAC) == 6 && b.IP.Is4() && b.Gateway.Is4() &&
		b.Subnet.Addr().Is4() && b.Subnet.Contains(b.IP)
}

// options are what an OFFER or ACK carries beside the message type: the
// lease's times unless the answer is to an INFORM (RFC 2131 §3.4), then
// the network's configuration. Every option goes whether the client asked
// for it or not: each is small, and clients ignore what they do not use.
func (b Binding) options(lease bool) []dhcpv4.Option {
	opts := []dhcpv4.Option{dhcpv4.OptServerIdentifier(b.Gateway.AsSlice())}
	if lease {
		opts = append(opts,
			dhcpv4.OptIPAddressLeaseTime(LeaseTime),
			dhcpv4.OptRenewTimeValue(LeaseTime/2),
			dhcpv4.OptRebindingTimeValue(LeaseTime*7/8))
	}
	opts = append(opts,
		dhcpv4.OptSubnetMask(net.CIDRMask(b.Subnet.Bits(), 32)),
		dhcpv4.OptRouter(b.Gateway.AsSlice()),
		dhcpv4.OptBroadcastAddress(broadcast(b.Subnet).AsSlice()))
	if b.MTU > 0 {
		opts = append(opts, dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, binary.BigEndian.AppendUint16(nil, uint16(b.MTU))))
	}
	if len(b.DNS) > 0 {
		dns := make([]net.IP, 0, len(b.DNS))
		for _, a := range b.DNS {
			dns = append(dns, a.AsSlice())
		}
		opts = append(opts, dhcpv4.OptDNS(dns...))
	}
	if b.Domain != "" {
		opts = append(opts, dhcpv4.OptDomainName(b.Domain))
	}
	return opts
}

// broadcast is the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, v)))
}
