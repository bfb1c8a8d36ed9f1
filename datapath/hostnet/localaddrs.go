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
