package pipeline

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Cookie kinds: the owner of each flow, so that a change to one object
// replaces exactly its flows, and ovs-ofctl output says whose a flow is.
const (
	KindBase    uint8 = 1 // the pipeline's skeleton; object 0
	KindNetwork uint8 = 2 // object = network ID
	KindRoutes  uint8 = 3 // a network's routes to its peers; object = network ID
	KindPort    uint8 = 4 // object = ofport
	// KindRemote is a port on another host; object = its IPv4 address,
	// unique cluster-wide because subnets may not overlap (an ofport means
	// nothing across hosts).
	KindRemote uint8 = 5
	// KindRule is a security group's rule; object = the group's ID << 10 |
	// the rule's index (below v1.MaxRules, so within 10 bits), so that a
	// rule's flows (one per port mask) count its hits together.
	KindRule uint8 = 6
	// KindMember is an address in the security groups' address sets;
	// object = the IPv4 address.
	KindMember uint8 = 7
)

// Pipeline compiles flows for one integration bridge.
type Pipeline struct {
	Space flowset.CookieSpace
	// HostMAC is the MAC of the bridge's own (LOCAL) interface, through which
	// masquerading networks reach the host's IP stack.
	HostMAC net.HardwareAddr
	// Tunnel is the ofport of the bridge's flow-based tunnel port (VXLAN or
	// Geneve, the VNI of a network is its ID); 0 on a single host, where
	// remote ports get no flows.
	Tunnel uint32
}

// Model is everything the flows depend on.
type Model struct {
	Networks []model.Network
	Routers  []model.Router
	Ports    []model.Port // attached: Ofport set
	// Remote are other hosts' ports this host forwards to through the
	// tunnel (see Pipeline.Tunnel): those that get flows, which the backend
	// chose (datapath.SelectRemote), each with a distinct address and MAC.
	Remote []model.RemotePort
	// Policy is the security groups' policy: its groups' rules and its
	// members' addresses, and the ACL flows of those of Ports that are
	// attached.
	Policy model.Policy
	// NAT is this host's floating IPs and port forwards (see NAT).
	NAT model.NAT
	// Pickup opens the pickup window: the flows that take up, after
	// conntrack was lost, connections whose next packet comes from the
	// side that did not open them (see policyBase). The backend opens it
	// when the switch may have lost conntrack, for a while.
	Pickup bool
}

// Compile returns the whole desired state of the bridge for m.
func (p Pipeline) Compile(m Model) (flowset.Desired, error) {
	byName := make(map[string]model.Network, len(m.Networks))
	for _, n := range m.Networks {
		byName[n.Name] = n
	}
	members := map[string][]model.Port{}
	for _, port := range m.Ports {
		members[port.Network] = append(members[port.Network], port)
	}
	remote := map[string][]model.RemotePort{}
	for _, r := range m.Remote {
		remote[r.Port.Network] = append(remote[r.Port.Network], r)
	}
	peers := model.Peers(m.Routers)
	d := flowset.Desired{Flows: p.Base(m.Pickup), Meters: p.BaseMeters()}
	for _, n := range m.Networks {
		d.Flows = append(d.Flows, p.Network(n)...)
		nets, err := resolve(byName, peers[n.Name])
		if err != nil {
			return d, fmt.Errorf("routes of network %s: %w", n.Name, err)
		}
		d.Flows = append(d.Flows, p.Routes(n, nets)...)
		d.Flows = append(d.Flows, p.RemoteFlows(n, remote[n.Name])...)
		d.Groups = append(d.Groups, p.Flood(n, members[n.Name], remote[n.Name]))
	}
	for _, port := range m.Ports {
		n, ok := byName[port.Network]
		if !ok {
			return d, fmt.Errorf("port %s: network %q is not in the model", port.Name, port.Network)
		}
		d.Flows = append(d.Flows, p.Port(port, n)...)
		d.Flows = append(d.Flows, p.PortACL(m.Policy, port, n, m.Pickup)...)
		d.Meters = append(d.Meters, p.PortMeters(port)...)
	}
	d.Flows = append(d.Flows, p.Policy(m.Policy, m.Pickup)...)
	d.Flows = append(d.Flows, p.NAT(m.NAT, byName)...)
	return d, nil
}

func resolve(byName map[string]model.Network, names []string) ([]model.Network, error) {
	nets := make([]model.Network, 0, len(names))
	for _, name := range names {
		n, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("network %q is not in the model", name)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// Base is the pipeline's skeleton: each table's default, and the host's
// way in; pickup is Model.Pickup.
func (p Pipeline) Base(pickup bool) []flowset.Flow {
	c := p.Space.Cookie(KindBase, 0, 0)
	flows := []flowset.Flow{
		drop(TableClassify, prioMiss, c),
		flow(TableClassify, prioFallback, c, match(openflow.InPort(openflow.PortLocal)), gotoTable(TableFromHost)),
		drop(TableSpoofGuard, prioGuard, c, openflow.EthType(ethIPv6)),
		dhcpServerGuard(c),
		drop(TableDHCP, prioMiss, c),
		drop(TableFromHost, prioMiss, c),
		flow(TableGateway, prioMiss, c, match(), gotoTable(TableEgressCT)),
		drop(TableRoute, prioMiss, c),
		drop(TablePathMTU, prioMiss, c),
		// A copy to the controller, as the packet came in, for the ICMP to
		// quote; then, with the flag cleared, the table again to be routed
		// on. OVS cannot fragment: a frame the destination's link cannot
		// carry is lost there, as it is without this stage. With userspace
		// TSO the switch cannot tell a TCP super-packet, whose segments
		// fit, from a packet too big: that one must go on, and the ICMP
		// about it changes nothing at a sender that knows the path MTU
		// (docs/PIPELINE.md, Path MTU).
		flow(TablePathMTU, prioExact, c, match(openflow.RegMasked(RegFlags, 1<<FlagTooBig, 1<<FlagTooBig)),
			apply(openflow.NXController2{MaxLen: PacketInLen, MeterID: p.PacketInMeter()},
				openflow.NXRegLoad{Dst: flagTooBig, Value: 0}, openflow.NXResubmitTable{InPort: openflow.ResubmitInPort, Table: TablePathMTU})),
		drop(TableNeighbor, prioMiss, c),
		drop(TableL2, prioMiss, c),
	}
	flows = append(flows, p.policyBase(c, pickup)...)
	if p.Tunnel != 0 {
		// Above the networks' catch-alls and below their VNIs (prioExact).
		flows = append(flows, drop(TableClassify, prioGuard, c, openflow.InPort(p.Tunnel)))
	}
	return flows
}

// Network is a network's own flows: its gateway answering ARP and ping,
// routing entry, isolation from the other networks, flooding, its DHCP to
// the daemon, the way in from the host, and the way out through the host
// when it masquerades. The host routes to every network (the targets of
// its port forwards and floating IPs may be in any); its nftables decide
// what it sends there.
func (p Pipeline) Network(n model.Network) []flowset.Flow {
	c := p.Space.Cookie(KindNetwork, uint32(n.ID), 0)
	gwMAC := gatewayMAC(n)
	in := openflow.Reg(RegNetwork, uint32(n.ID))
	flows := []flowset.Flow{
		flow(TableGateway, prioExact, c, match(in, openflow.EthType(ethARP), openflow.ARPOp(arpRequest), openflow.ARPTpa(n.Gateway)),
			apply(arpReply(gwMAC, n.Gateway)...)),
		echoReply(c, n, n),
		// To route, after the egress side (egress_out).
		flow(TableGateway, prioFallback, c, match(in, openflow.EthDst(gwMAC), openflow.EthType(ethIPv4)),
			apply(loadFlag(FlagRouted, 1)), gotoTable(TableEgressCT)),
		drop(TableRoute, prioGuard, c, openflow.EthType(ethIPv4), openflow.IPv4DstPrefix(n.Subnet)),
		// Routed into n, and not too big for it: on through n's gateway
		// with the TTL decremented, as a router would.
		flow(TablePathMTU, prioFallback, c, match(in, openflow.EthType(ethIPv4)),
			apply(openflow.ActionDecNWTTL{}, setField(openflow.EthSrc(gwMAC))), gotoTable(TableNeighbor)),
		flow(TableL2, prioFallback, c, match(in, openflow.EthDstMasked(multicastBit, multicastBit)),
			apply(openflow.ActionGroup{GroupID: p.floodGroupID(n)})),
		flow(TableFromHost, prioFallback, c, match(openflow.EthType(ethIPv4), openflow.IPv4DstPrefix(n.Subnet)),
			apply(setField(openflow.Reg(RegNetwork, uint32(n.ID))), setField(openflow.EthSrc(gwMAC))), gotoTable(TableNeighbor)),
	}
	flows = append(flows, p.networkDHCP(c, n)...)
	if p.Tunnel != 0 {
		flows = append(flows, p.fromTunnel(c, n))
	}
	if n.Masquerade {
		// The host routes and masquerades; it decrements the TTL itself.
		flows = append(flows, flow(TableRoute, prioFallback, c, match(in, openflow.EthType(ethIPv4)),
			toIngress(outLocal, setField(openflow.EthDst(p.HostMAC)))...))
	}
	return flows
}

// Routes is a network's way to each of its peers (the networks a router
// joins it to), on to the peer's path_mtu flows (see Network), and pings of
// the peers' gateway addresses answered.
func (p Pipeline) Routes(n model.Network, peers []model.Network) []flowset.Flow {
	c := p.Space.Cookie(KindRoutes, uint32(n.ID), 0)
	var flows []flowset.Flow
	for _, m := range peers {
		flows = append(flows,
			flow(TableRoute, prioExact, c,
				match(openflow.Reg(RegNetwork, uint32(n.ID)), openflow.EthType(ethIPv4), openflow.IPv4DstPrefix(m.Subnet)),
				apply(routeTo(n, m)...), gotoTable(TablePathMTU)),
			echoReply(c, n, m),
		)
	}
	return flows
}

// Port is a port's flows: classification into its network, the spoof
// guard and its DHCP intercept, delivery by MAC and by IP, and the host's
// ARP for it answered. Its meters are PortMeters'.
func (p Pipeline) Port(port model.Port, n model.Network) []flowset.Flow {
	c := p.Space.Cookie(KindPort, uint32(port.Ofport), 0)
	in := openflow.InPort(uint32(port.Ofport))
	mac, _ := net.ParseMAC(port.MAC)
	inNet := openflow.Reg(RegNetwork, uint32(n.ID))
	flows := []flowset.Flow{
		flow(TableClassify, prioFallback, c, match(in), apply(setField(inNet)), gotoTable(TableSpoofGuard)),
		flow(TableSpoofGuard, prioExact, c, match(in, openflow.EthSrc(mac), openflow.EthType(ethIPv4), openflow.IPv4Src(port.IP)),
			gotoTable(TableGateway)),
		flow(TableSpoofGuard, prioExact, c,
			match(in, openflow.EthSrc(mac), openflow.EthType(ethARP), openflow.ARPSpa(port.IP), openflow.ARPSha(mac)),
			gotoTable(TableGateway)),
		drop(TableSpoofGuard, prioFallback, c, in),
		flow(TableNeighbor, prioFallback, c, match(inNet, openflow.EthType(ethIPv4), openflow.IPv4Dst(port.IP)),
			apply(setField(openflow.EthDst(mac))), gotoTable(TableL2)),
		flow(TableL2, prioFallback, c, match(inNet, openflow.EthDst(mac)), toIngress(uint32(port.Ofport))...),
		flow(TableFromHost, prioExact, c,
			match(openflow.EthType(ethARP), openflow.ARPOp(arpRequest), openflow.ARPTpa(port.IP)),
			apply(arpReply(mac, port.IP)...)),
	}
	return append(flows, p.portDHCP(c, port, mac)...)
}

// Flood is a network's ALL group: one bucket per local port, in ofport
// order, then one per other host that has ports in it among remote (by
// underlay address), which sends the packet into the tunnel with the
// network's VNI. OVS never sends a packet back out of its
// in_port, so the sender is skipped — and a packet that came from the
// tunnel goes out of none of the tunnel buckets (split horizon: the sending
// host flooded to every host itself).
func (p Pipeline) Flood(n model.Network, ports []model.Port, remote []model.RemotePort) flowset.Group {
	ofports := make([]int, 0, len(ports))
	for _, port := range ports {
		ofports = append(ofports, port.Ofport)
	}
	slices.Sort(ofports)
	g := flowset.Group{ID: p.floodGroupID(n), Type: openflow.GroupTypeAll}
	for _, o := range ofports {
		g.Buckets = append(g.Buckets, openflow.Bucket{WatchPort: openflow.PortAny, WatchGroup: openflow.GroupAny,
			Actions: []openflow.Action{openflow.ActionOutput{Port: uint32(o)}}})
	}
	for _, host := range p.remoteHosts(n, remote) {
		g.Buckets = append(g.Buckets, openflow.Bucket{WatchPort: openflow.PortAny, WatchGroup: openflow.GroupAny,
			Actions: p.toTunnel(n, host)})
	}
	return g
}

func (p Pipeline) floodGroupID(n model.Network) uint32 { return p.Space.Group(uint32(n.ID)) }

// echoReply answers a ping from network `from` to the gateway address of
// network gw (its own, or a peer's) in place, as the gateway would.
func echoReply(cookie uint64, from, gw model.Network) flowset.Flow {
	mac := gatewayMAC(from)
	return flow(TableGateway, prioExact, cookie,
		match(openflow.Reg(RegNetwork, uint32(from.ID)), openflow.EthDst(mac), openflow.EthType(ethIPv4), openflow.IPProto(protoICMP),
			openflow.IPv4Dst(gw.Gateway), openflow.ICMPv4Type(icmpEchoRequest), openflow.ICMPv4Code(0)),
		apply(
			move(nxmEthSrc, nxmEthDst, 48), setField(openflow.EthSrc(mac)),
			move(nxmIPSrc, nxmIPDst, 32), setField(openflow.IPv4Src(gw.Gateway)),
			setField(openflow.ICMPv4Type(icmpEchoReply)),
			openflow.ActionOutput{Port: openflow.PortInPort},
		))
}

// arpReply turns an ARP request for ip into the reply of mac, back out of
// the port it came in on.
func arpReply(mac net.HardwareAddr, ip netip.Addr) []openflow.Action {
	return []openflow.Action{
		move(nxmEthSrc, nxmEthDst, 48), setField(openflow.EthSrc(mac)),
		setField(openflow.ARPOp(arpReplyOp)),
		move(nxmARPSha, nxmARPTha, 48), move(nxmARPSpa, nxmARPTpa, 32),
		setField(openflow.ARPSha(mac)), setField(openflow.ARPSpa(ip)),
		openflow.ActionOutput{Port: openflow.PortInPort},
	}
}

// gatewayMAC is the router MAC of a network's gateway; the Linux backend's
// bridge has the same.
func gatewayMAC(n model.Network) net.HardwareAddr {
	mac, err := net.ParseMAC(model.BridgeMAC(n.Name))
	if err != nil {
		panic(fmt.Sprintf("pipeline: model.BridgeMAC(%q): %v", n.Name, err))
	}
	return mac
}
