package pipeline

import (
	"net"

	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// DHCP on OVS (docs/DHCP.md, "DHCP on OVS"): spoof_guard sends what a port sends
// from its own MAC to the DHCP server port, from any source address —
// 0.0.0.0 before the client has one —, to the dhcp table, which sends it to
// the daemon through the port's meter unless the port's network answers no
// DHCP. The daemon knows the port by the packet-in's in_port and answers
// with a packet-out to that port alone: nothing of the exchange is
// forwarded, so it opens no way around the spoof guard, and security
// groups never judge it.
//
// The meter is the controller action's (meter_id), never a meter
// instruction: OVS takes a flow whose controller action names a meter it
// does not have, but refuses one whose instruction does — and ovs-save,
// which ovs-ctl restart restores the bridge with, saves no meters, so the
// first such flow would end its restore (docs/PIPELINE.md, Meters). All
// ports together are bounded by the daemon (datapath/ovs), since a
// packet-in carries one meter only.

// dhcpServerGuard drops the DHCP server messages (UDP 67 → 68) a port
// sends, from any address, above every flow of a port's: the daemon is
// its network's only DHCP server, and a port answering its neighbours'
// DISCOVERs (the answer floods) could hand them itself as their router and
// DNS server. The host and the tunnel never pass spoof_guard.
func dhcpServerGuard(c uint64) flowset.Flow {
	return drop(TableSpoofGuard, prioDHCPServer, c, openflow.EthType(ethIPv4), openflow.IPProto(protoUDP),
		openflow.UDPSrc(dhcp.ServerPort), openflow.UDPDst(dhcp.ClientPort))
}

// portDHCP is a port's intercept and its way to the daemon through its
// meter; none for a port whose ofport no meter ID holds (PortDHCPMeter),
// whose DHCP the spoof guard then drops. Neither depends on the network's
// DHCP, which networkDHCP alone decides.
func (p Pipeline) portDHCP(c uint64, port model.Port, mac net.HardwareAddr) []flowset.Flow {
	meter, ok := p.PortDHCPMeter(port.Ofport)
	if !ok {
		return nil
	}
	in := openflow.InPort(uint32(port.Ofport))
	return []flowset.Flow{
		flow(TableSpoofGuard, prioDHCP, c,
			match(in, openflow.EthSrc(mac), openflow.EthType(ethIPv4), openflow.IPProto(protoUDP),
				openflow.UDPSrc(dhcp.ClientPort), openflow.UDPDst(dhcp.ServerPort)),
			gotoTable(TableDHCP)),
		// Whole (no max_len): the answer needs all of the request.
		flow(TableDHCP, prioFallback, c, match(in), apply(openflow.NXController2{MeterID: meter})),
	}
}

// networkDHCP drops its network's DHCP, above its ports' ways to the
// daemon, when the network answers none; nothing when it does.
func (p Pipeline) networkDHCP(c uint64, n model.Network) []flowset.Flow {
	if n.DHCP {
		return nil
	}
	return []flowset.Flow{drop(TableDHCP, prioGuard, c, openflow.Reg(RegNetwork, uint32(n.ID)))}
}
