package ovs

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// The host side of masquerade. A masquerading network's traffic for the
// outside leaves the bridge through its own (LOCAL) interface into the host's
// IP stack, which routes it out and masquerades it; the replies come back the
// same way. For that the host has a route to each masquerading subnet through
// the LOCAL interface — and no address in it: on the userspace datapath the
// host stack also sees every frame of the ports' veth ends, and would answer
// ARP for the gateway there in place of the flows. Our nftables table keeps
// the host from doing anything else with the networks' traffic.

// routeProtocol marks the routes we add (rtnetlink's protocol field), so
// that we find — and remove — only ours.
const routeProtocol = netlink.RouteProtocol(0x76)

// HostRuleset renders our `inet ovs_vnet` table for the OVS backend as an
// `nft -f` script that replaces it atomically; with no masquerading network
// the table is removed.
//
// The host never forwards between two networks (routing between them is in
// the flows, where isolation is decided), forwards from a masquerading
// network only to the outside, lets nothing from outside open a connection
// into a network, and offers the networks none of its own services.
func HostRuleset(bridge string, networks []model.Network) string {
	var b strings.Builder
	// "add table" makes the delete valid when the table does not exist yet.
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", hostnet.Table, hostnet.Table)
	var subnets []string
	for _, n := range networks {
		if n.Masquerade {
			subnets = append(subnets, n.Subnet.String())
		}
	}
	if len(subnets) == 0 {
		return b.String()
	}
	slices.Sort(subnets)
	set := "{ " + strings.Join(subnets, ", ") + " }"
	fmt.Fprintf(&b, "table inet %s {\n", hostnet.Table)
	fmt.Fprintf(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q oifname %q drop\n", bridge, bridge)
	fmt.Fprintf(&b, "\t\toifname %q ct state established,related accept\n", bridge)
	fmt.Fprintf(&b, "\t\toifname %q drop\n", bridge)
	fmt.Fprintf(&b, "\t\tiifname %q ip saddr %s accept\n", bridge, set)
	fmt.Fprintf(&b, "\t\tiifname %q drop\n\t}\n", bridge)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q ct state established,related accept\n", bridge)
	fmt.Fprintf(&b, "\t\tiifname %q drop\n\t}\n", bridge)
	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&b, "\t\toifname != %q ip saddr %s masquerade\n\t}\n}\n", bridge, set)
	return b.String()
}

// syncHost makes the host's routes through the LOCAL interface and our
// nftables table match the masquerading networks.
func (b *Backend) syncHost(ctx context.Context) error {
	b.hostMu.Lock()
	defer b.hostMu.Unlock()
	b.mu.Lock()
	networks := slices.Collect(maps.Values(b.state.networks))
	b.mu.Unlock()
	want := map[netip.Prefix]bool{}
	for _, n := range networks {
		if n.Masquerade {
			want[n.Subnet] = true
		}
	}
	// The routes come first: they need the bridge's interface, so a call in
	// the wrong network namespace fails before it changes anything.
	masquerade := len(want) > 0
	if err := b.syncRoutes(want); err != nil {
		return fmt.Errorf("routes through %s: %w", b.bridge, err)
	}
	if masquerade {
		if err := hostnet.EnableForwarding(); err != nil {
			return err
		}
	}
	if err := hostnet.ApplyNft(ctx, HostRuleset(b.bridge, networks)); err != nil {
		return fmt.Errorf("masquerade rules: %w", err)
	}
	return nil
}

func (b *Backend) syncRoutes(want map[netip.Prefix]bool) error {
	l, err := netlink.LinkByName(b.bridge)
	if err != nil {
		return fmt.Errorf("look up: %w", err)
	}
	if len(want) > 0 && l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: l.Attrs().Index, Protocol: routeProtocol},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range have {
		p, ok := netipx(r.Dst)
		if ok && want[p] {
			delete(want, p)
			continue
		}
		if err := netlink.RouteDel(&r); err != nil {
			return fmt.Errorf("remove route %s: %w", r.Dst, err)
		}
	}
	for p := range want {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)},
			Scope: netlink.SCOPE_LINK, Protocol: routeProtocol}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("add route %s: %w", p, err)
		}
	}
	return nil
}

func netipx(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP.To4())
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), ok
}
