// Package explain holds what the backends' explainers of a traced packet
// (GET /v1/trace, `vnetctl trace`) share: the index of the desired state
// that names the objects a packet meets. Each backend explains in its own
// terms — datapath/ovs reads ofproto/trace, datapath/linux reasons from the
// kernel's routes and its own nftables rules — and imports this package;
// package datapath does not, so that its users need no explainer.
package explain

import (
	"fmt"
	"net/netip"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Objects indexes the desired state for the lookups a trace makes.
type Objects struct {
	State    datapath.State
	networks map[string]model.Network
	ports    map[string]model.Port
}

// Index indexes s.
func Index(s datapath.State) Objects {
	o := Objects{State: s, networks: map[string]model.Network{}, ports: map[string]model.Port{}}
	for _, n := range s.Networks {
		o.networks[n.Name] = n
	}
	for _, p := range s.Ports {
		o.ports[p.Name] = p
	}
	return o
}

// NetworkOf is the network whose subnet holds a.
func (o Objects) NetworkOf(a netip.Addr) (model.Network, bool) {
	for _, n := range o.State.Networks {
		if n.Subnet.Contains(a) {
			return n, true
		}
	}
	return model.Network{}, false
}

// PortWith is the port of network with address a: a local one, else one on
// another host.
func (o Objects) PortWith(network string, a netip.Addr) (model.Port, bool) {
	for _, p := range o.State.Ports {
		if p.Network == network && p.IP == a {
			return p, true
		}
	}
	for _, r := range o.State.Remote {
		if r.Port.Network == network && r.Port.IP == a {
			return r.Port, true
		}
	}
	return model.Port{}, false
}

// Router names a router that lists both networks, "" if none does.
func (o Objects) Router(a, b string) string {
	for _, r := range o.State.Routers {
		var hasA, hasB bool
		for _, n := range r.Networks {
			hasA, hasB = hasA || n == a, hasB || n == b
		}
		if hasA && hasB {
			return r.Name
		}
	}
	return ""
}

// Source is the port a query sends from, with the network it is in.
func (o Objects) Source(q v1.Query) (model.Port, model.Network, error) {
	p, ok := o.ports[q.From]
	if !ok {
		return p, model.Network{}, fmt.Errorf("port %q is not attached", q.From)
	}
	n, ok := o.networks[p.Network]
	if !ok {
		return p, n, fmt.Errorf("port %q: network %q is not in the model", p.Name, p.Network)
	}
	return p, n, nil
}

// Sender is the source MAC and IPv4 address of the packet q describes,
// sent by p: p's own unless the query forges them.
func Sender(q v1.Query, p model.Port) (netip.Addr, string) {
	src, srcMAC := p.IP, p.MAC
	if q.Src.IsValid() {
		src = q.Src
	}
	if q.SrcMAC != "" {
		srcMAC = q.SrcMAC
	}
	return src, srcMAC
}

// DHCPRequest reports whether q's packet, sent by a port, is a DHCP
// client's: UDP to port 67 is taken as coming from port 68, as a renewal
// does, and both backends hand it to the daemon whatever its destination
// (docs/DHCP.md).
func DHCPRequest(q v1.Query) bool {
	return !q.FromAddress.IsValid() && q.Proto == v1.ProtoUDP && q.DPort == dhcp.ServerPort
}

// DHCPAnswered is the summary of a DHCP request the daemon answers for
// network n, the same on both backends.
func DHCPAnswered(n model.Network) string {
	return fmt.Sprintf("answered by the daemon (DHCP of network %s)", n.Name)
}
