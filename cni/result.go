package cni

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// containerIface is the index of the container's interface in a result:
// the host end comes first, as the reference plugins order them.
const containerIface = 1

// BuildResult is the ADD result for a port the daemon answered: the host end
// and the container's interface, the port's address on the latter, and the
// default route through the network's gateway that the daemon set.
func BuildResult(p model.PortView, netnsPath, ifname string) (*current.Result, error) {
	ip, subnet, err := net.ParseCIDR(p.IP)
	if err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("the daemon answered port %s with ip %q, not an IPv4 prefix", p.Name, p.IP)
	}
	gw := net.ParseIP(p.Gateway).To4()
	if gw == nil {
		return nil, fmt.Errorf("the daemon answered port %s with gateway %q, not an IPv4 address", p.Name, p.Gateway)
	}
	_, anyNet, _ := net.ParseCIDR("0.0.0.0/0")
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: p.HostIfname},
			{Name: ifname, Mac: p.MAC, Sandbox: netnsPath},
		},
		IPs: []*current.IPConfig{{
			Interface: current.Int(containerIface),
			Address:   net.IPNet{IP: ip.To4(), Mask: subnet.Mask},
			Gateway:   gw,
		}},
		Routes: []*types.Route{{Dst: *anyNet, GW: gw}},
	}, nil
}
