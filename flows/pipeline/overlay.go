package pipeline

import (
	"net"
	"net/netip"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// The overlay: networks span hosts through one flow-based tunnel port per
// bridge (Pipeline.Tunnel). A packet for a port on another host is switched
// and routed on the sending host as for a local port — spoof guard, gateway,
// route, neighbor — and only l2_forward differs: it sets the tunnel key (the
// VNI, which is the destination network's ID) and the other host's underlay
// address, and outputs to the tunnel. The receiving host trusts that and
// goes straight to l2_forward in the network the VNI names. So routing is
// distributed: the sender's router does the work, and the packet crosses the
// underlay once, in the destination network.

// RemoteCookieObject is the cookie object of a remote port's flows: its IPv4
// address, 0 for one that has none (it gets no flows).
func RemoteCookieObject(p model.Port) uint32 {
	if !p.IP.Is4() {
		return 0
	}
	return addrObject(p.IP)
}

// RemoteFlows are the flows of n's remote ports among remote: delivery by
// IP (a routed packet gets the port's MAC, as for a local port) and by MAC
// (into the tunnel towards the port's host). None on a single host.
func (p Pipeline) RemoteFlows(n model.Network, remote []model.RemotePort) []flowset.Flow {
	if p.Tunnel == 0 {
		return nil
	}
	remote = inNetwork(n, remote)
	flows := make([]flowset.Flow, 0, 2*len(remote))
	inNet := openflow.Reg(RegNetwork, uint32(n.ID))
	for _, r := range remote {
		mac, _ := net.ParseMAC(r.Port.MAC)
		c := p.Space.Cookie(KindRemote, RemoteCookieObject(r.Port), 0)
		flows = append(flows,
			flow(TableNeighbor, prioFallback, c, match(inNet, openflow.EthType(ethIPv4), openflow.IPv4Dst(r.Port.IP)),
				apply(setField(openflow.EthDst(mac))), gotoTable(TableL2)),
			flow(TableL2, prioFallback, c, match(inNet, openflow.EthDst(mac)),
				toIngress(p.Tunnel, p.tunnelKey(n, r.HostIP)...)...),
		)
	}
	return flows
}

// inNetwork is the ports of remote that are in n.
func inNetwork(n model.Network, remote []model.RemotePort) []model.RemotePort {
	for _, r := range remote {
		if r.Port.Network != n.Name {
			return slices.DeleteFunc(slices.Clone(remote), func(r model.RemotePort) bool { return r.Port.Network != n.Name })
		}
	}
	return remote
}

// fromTunnel classifies a packet from the tunnel by its VNI into network n
// and sends it straight to l2_forward: the sending host did the spoof guard
// and the routing (a routed packet arrives in its destination network, with
// the destination port's MAC).
func (p Pipeline) fromTunnel(cookie uint64, n model.Network) flowset.Flow {
	return flow(TableClassify, prioExact, cookie, match(openflow.InPort(p.Tunnel), openflow.TunID(uint64(n.ID))),
		apply(setField(openflow.Reg(RegNetwork, uint32(n.ID)))), gotoTable(TableL2))
}

// toTunnel sends a packet of network n to the host at underlay address host.
func (p Pipeline) toTunnel(n model.Network, host netip.Addr) []openflow.Action {
	return append(p.tunnelKey(n, host), openflow.ActionOutput{Port: p.Tunnel})
}

// tunnelKey addresses a packet of network n to the host at underlay
// address host, for an output into the tunnel.
func (p Pipeline) tunnelKey(n model.Network, host netip.Addr) []openflow.Action {
	return []openflow.Action{
		setField(openflow.TunID(uint64(n.ID))),
		setField(openflow.TunIPv4Dst(host)),
	}
}

// remoteHosts are the underlay addresses of the hosts with ports of n
// among remote, sorted, each once; none on a single host.
func (p Pipeline) remoteHosts(n model.Network, remote []model.RemotePort) []netip.Addr {
	if p.Tunnel == 0 {
		return nil
	}
	remote = inNetwork(n, remote)
	hosts := make([]netip.Addr, 0, len(remote))
	for _, r := range remote {
		hosts = append(hosts, r.HostIP)
	}
	slices.SortFunc(hosts, netip.Addr.Compare)
	return slices.Compact(hosts)
}
