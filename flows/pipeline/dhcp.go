package pipeline

import (
	"net"

	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// DHCP on OVS (docs/PIPELINE.md, DHCP): spoof_guard sends what a port sends
// from its own MAC to the DHCP server port, from any source address —
// 0.0.0.0 before the client has one —, through the port's meter to the dhcp
// table, which sends it to the daemon through the bridge's meter when the
// port's network answers DHCP. The daemon knows the port by the
// packet-in's in_port and answers with a packet-out to that port alone:
// nothing of the exchange is forwarded, so it opens no way around the
// spoof guard, and security groups never judge it.

// portDHCP is a port's intercept; none for a port whose ofport no meter ID
// holds (PortDHCPMeter), whose DHCP the spoof guard then drops.
func (p Pipeline) portDHCP(c uint64, port model.Port, mac net.HardwareAddr) []flowset.Flow {
	meter, ok := p.PortDHCPMeter(port.Ofport)
	if !ok {
		return nil
	}
	return []flowset.Flow{flow(TableSpoofGuard, prioDHCP, c,
		match(openflow.InPort(uint32(port.Ofport)), openflow.EthSrc(mac), openflow.EthType(ethIPv4), openflow.IPProto(protoUDP),
			openflow.UDPSrc(dhcp.ClientPort), openflow.UDPDst(dhcp.ServerPort)),
		openflow.MeterInstruction{MeterID: meter}, gotoTable(TableDHCP))}
}

// networkDHCP sends its network's DHCP to the daemon, whole (no max_len:
// the answer needs all of the request); none with DHCP off, whose DHCP
// the table's miss drops.
func (p Pipeline) networkDHCP(c uint64, n model.Network) []flowset.Flow {
	if !n.DHCP {
		return nil
	}
	return []flowset.Flow{flow(TableDHCP, prioFallback, c, match(openflow.Reg(RegNetwork, uint32(n.ID))),
		apply(openflow.NXController2{MeterID: p.DHCPMeter()}))}
}
