package datapath

import (
	"context"
	"net"

	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// DHCPServer is a backend that answers DHCPv4 for its ports
// (docs/DESIGN.md §8.4) from the networks and ports it holds — a
// network's DHCP fields reach it with EnsureNetwork, in place too — with
// the pure responder of package dhcp. The OVS backend answers the
// switch's packet-ins, the Linux backend a packet socket per port.
type DHCPServer interface {
	// DHCPStats is one snapshot of the counters, bounded by ctx.
	DHCPStats(ctx context.Context) (DHCPStats, error)
}

// DHCPStats count DHCP by name, every name present (dhcp.Snapshot's): the
// requests by message type, the answers by type, and the refusals by
// reason — those the switch counts (OVS meters' drops, rate_limited)
// included.
type DHCPStats struct {
	Requests, Answers, Refused map[string]uint64
}

// DHCPBinding is what DHCP owes port p of network n, answered from
// gatewayMAC: the MAC the network's gateway answers ARP with on this host
// (model.BridgeMAC; model.BridgeMACOn on a Linux cluster host), so that a
// client that takes the server's MAC from the answer reaches the same
// gateway. ok is false when n answers no DHCP, or p has no address or MAC
// to hand out.
func DHCPBinding(n model.Network, p model.Port, gatewayMAC string) (b dhcp.Binding, ok bool) {
	mac, errPort := net.ParseMAC(p.MAC)
	gw, errGW := net.ParseMAC(gatewayMAC)
	if !n.DHCP || errPort != nil || errGW != nil || !p.IP.IsValid() {
		return dhcp.Binding{}, false
	}
	return dhcp.Binding{MAC: mac, IP: p.IP, Subnet: n.Subnet, Gateway: n.Gateway, GatewayMAC: gw,
		MTU: n.MTU, DNS: n.DNS.Addrs(), Domain: n.Domain}, true
}
