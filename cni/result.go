package cni

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// containerIface is the index of the container's interface in a result:
// the host end comes first, as the reference plugins order them.
const containerIface = 1

// BuildResult is the ADD result for a port the daemon answered: the host end
// and the container's interface, the port's address on the latter, and,
// when the interface holds it (holdsDefaultRoute), the default route through
// the network's gateway. The daemon sets that route only where the
// namespace has no default route (docs/API.md, "Default route"): a second
// network's interface, or one beside another plugin's, gets none.
func BuildResult(p v1.Port, netnsPath, ifname string, defaultRoute bool) (*current.Result, error) {
	ip, subnet, err := net.ParseCIDR(p.IP)
	if err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("the daemon answered port %s with ip %q, not an IPv4 prefix", p.Name, p.IP)
	}
	gw := net.ParseIP(p.Gateway).To4()
	if gw == nil {
		return nil, fmt.Errorf("the daemon answered port %s with gateway %q, not an IPv4 address", p.Name, p.Gateway)
	}
	res := &current.Result{
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
	}
	if defaultRoute {
		_, anyNet, _ := net.ParseCIDR("0.0.0.0/0")
		res.Routes = []*types.Route{{Dst: *anyNet, GW: gw}}
	}
	return res, nil
}

// holdsDefaultRoute tells whether ifname, in the namespace at netnsPath,
// holds an IPv4 default route via gateway.
func holdsDefaultRoute(netnsPath, ifname, gateway string) (bool, error) {
	var ours bool
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("look up interface %s: %w", ifname, err)
		}
		ours, _, err = defaultRoute(l, net.ParseIP(gateway))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("netns %s: %w", netnsPath, err)
	}
	return ours, nil
}
