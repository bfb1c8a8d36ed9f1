package hostnet

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// LocalAddrs are the host's own IPv4 addresses in the current network
// namespace, on every interface: what nftables' `fib daddr type local`
// takes as the host's. A floating IP may not be one of them (a port
// forward is the way to share the host's address; docs/DESIGN.md §8.5).
func LocalAddrs() ([]netip.Addr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			out = append(out, ip)
		}
	}
	return out, nil
}

// Broadcasts are the host's directed broadcast addresses in the current
// network namespace: each IPv4 address's explicit one, and that of its
// subnet, for which the kernel adds a broadcast route below /31. A
// floating IP may not be one of them: the host's broadcasts to the subnet
// would reach the port.
func Broadcasts() ([]netip.Addr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if b, ok := netip.AddrFromSlice(a.Broadcast.To4()); ok && !b.IsUnspecified() {
			out = append(out, b)
		}
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		bits, _ := a.Mask.Size()
		if !ok || bits >= 31 {
			continue
		}
		last := ip.As4()
		for i := range last {
			last[i] |= ^a.Mask[len(a.Mask)-4+i]
		}
		out = append(out, netip.AddrFrom4(last))
	}
	return out, nil
}
