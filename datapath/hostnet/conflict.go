package hostnet

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the host routes ovs-vnet adds (rtnetlink's protocol
// field), so that it finds — and removes — only its own.
const RouteProtocol = netlink.RouteProtocol(0x76)

// SubnetConflict tells why the host's own IP stack already uses a subnet,
// or "" when it does not. A network there must not get a host side (a
// route or a gateway address on a host interface): the host would then
// send to the network what it sends today to one of its own addresses, or
// out by one of its own routes — its uplink, a VPN, a container bridge. The
// answer names the address or route and its interface. What ovs-vnet made
// does not count (links whose alias starts with ownerAlias, routes of
// RouteProtocol), nor does a default route, which every subnet overlaps.
// Every table is read, not only main: a policy-routing table (ip rule) or a
// `local` route (AnyIP) sends the host's traffic elsewhere just the same.
func SubnetConflict(subnet netip.Prefix, ownerAlias string) (string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("check the host's addresses: list links: %w", err)
	}
	name := map[int]string{}
	ours := map[int]bool{}
	for _, l := range links {
		a := l.Attrs()
		name[a.Index] = a.Name
		ours[a.Index] = strings.HasPrefix(a.Alias, ownerAlias)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("check the host's addresses: %w", err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if ours[a.LinkIndex] || !ok || !subnet.Contains(ip) {
			continue
		}
		return fmt.Sprintf("subnet %s holds the host's own address %s on %s; pick a subnet the host does not use",
			subnet, a.IPNet, name[a.LinkIndex]), nil
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", fmt.Errorf("check the host's routes: %w", err)
	}
	for _, r := range routes {
		dst, ok := RoutePrefix(r.Dst)
		if !ok || dst.Bits() == 0 || r.Protocol == RouteProtocol || ours[r.LinkIndex] || !dst.Overlaps(subnet) {
			continue
		}
		via := ""
		if r.Gw != nil {
			via = " via " + r.Gw.String()
		}
		if dev := name[r.LinkIndex]; dev != "" {
			via += " dev " + dev
		}
		if r.Table != unix.RT_TABLE_MAIN {
			via += fmt.Sprintf(" table %d", r.Table)
		}
		return fmt.Sprintf("subnet %s overlaps the host's route %s%s (proto %s): the network would take that traffic from the host; pick a subnet the host does not route",
			subnet, dst, via, r.Protocol), nil
	}
	return "", nil
}

// RoutePrefix converts an IPv4 route destination; nil (the default route) is not one.
func RoutePrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP.To4())
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), ok
}
