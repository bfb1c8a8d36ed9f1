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
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
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
// that we find — and remove — only ours, and hostnet.SubnetConflict does not
// count them as the host's.
const routeProtocol = hostnet.RouteProtocol

// HostRuleset renders our tables for the OVS backend, `inet ovs_vnet` and
// `arp ovs_vnet`, as an `nft -f` script that replaces both atomically; with
// no network both are removed, as nothing of ours is left to guard.
//
// While a network exists the host's own stack takes nothing from the links
// that carry ports' frames (link.Group: veth host ends, taps, spares): on the
// userspace datapath ovs-vswitchd reads them with packet sockets, which see
// every frame before netfilter's hooks do, while the host kernel processes the
// same frames. The prerouting chain at priority raw drops their IPv4 (and
// IPv6, which link.Seal turns off on them already) before conntrack or
// routing; the arp table drops their ARP, so the host neither answers nor
// learns a neighbour. One static rule per family: attaching a port changes no
// rule. The bridge's own interface (LOCAL) is in no group, so masquerade
// traffic, which enters the host there, is judged by the chains below.
//
// The host never forwards between two networks (routing between them is in
// the flows, where isolation is decided), forwards from a masquerading
// network only to the outside, lets nothing from outside open a connection
// into a network, and offers the networks none of its own services.
func HostRuleset(bridge string, networks []model.Network) string {
	var b strings.Builder
	// "add table" makes the delete valid when the table does not exist yet.
	for _, family := range []string{"inet", "arp"} {
		fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", family, hostnet.Table, family, hostnet.Table)
	}
	if len(networks) == 0 {
		return b.String()
	}
	var subnets []string
	for _, n := range networks {
		if n.Masquerade {
			subnets = append(subnets, n.Subnet.String())
		}
	}
	fmt.Fprintf(&b, "table inet %s {\n", hostnet.Table)
	b.WriteString(hostEndsChain("prerouting", "raw"))
	if len(subnets) > 0 {
		slices.Sort(subnets)
		set := "{ " + strings.Join(subnets, ", ") + " }"
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
		fmt.Fprintf(&b, "\t\toifname != %q ip saddr %s masquerade\n\t}\n", bridge, set)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "table arp %s {\n%s}\n", hostnet.Table, hostEndsChain("input", "filter"))
	return b.String()
}

// HostEndsGuard renders the two chains of HostRuleset that keep the host's
// stack off the ports' links, as an `nft -f` script that adds them to our
// tables and leaves everything else in them as it is. It is loaded once at
// start, before the first attach: the tables a previous run left stay in
// force until the first Prune, but a fresh host (or one upgraded from a
// version without these chains) has none, and the reconcile attaches ports
// before that Prune renders the whole.
func HostEndsGuard() string {
	var b strings.Builder
	for _, c := range []struct{ family, chain, priority string }{{"inet", "prerouting", "raw"}, {"arp", "input", "filter"}} {
		t := c.family + " " + hostnet.Table
		fmt.Fprintf(&b, "add table %s\n", t)
		fmt.Fprintf(&b, "add chain %s %s { type filter hook %s priority %s; policy accept; }\n", t, c.chain, c.chain, c.priority)
		fmt.Fprintf(&b, "flush chain %s %s\n", t, c.chain)
		fmt.Fprintf(&b, "add rule %s %s %s\n", t, c.chain, hostEndsRule())
	}
	return b.String()
}

// hostEndsRule drops what enters through a port's link; its counter is the
// witness that the host's stack was offered something and took nothing.
func hostEndsRule() string {
	return fmt.Sprintf("meta iifgroup %#x counter drop comment %q", link.Group, "ports' links: not for the host")
}

func hostEndsChain(hook, priority string) string {
	return fmt.Sprintf("\tchain %s {\n\t\ttype filter hook %s priority %s; policy accept;\n\t\t%s\n\t}\n", hook, hook, priority, hostEndsRule())
}

// syncHostAfter syncs the host side after network n changed, if the change
// matters to it: n masquerades, or n is the first network or was the last
// (HostRuleset guards the ports' links while any network exists). Until the
// state is complete the first Prune does it.
func (b *Backend) syncHostAfter(ctx context.Context, n model.Network) error {
	b.mu.Lock()
	primed, count := b.primed, len(b.state.networks)
	b.mu.Unlock()
	if !primed || !n.Masquerade && count > 1 {
		return nil
	}
	if err := b.syncHost(ctx); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

// syncHost makes the host's routes through the LOCAL interface and our
// nftables tables match the networks.
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
		return fmt.Errorf("host rules: %w", err)
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
		p, ok := hostnet.RoutePrefix(r.Dst)
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
