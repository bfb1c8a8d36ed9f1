package ovs

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// The host side of masquerade and NAT. A masquerading network's traffic
// for the outside leaves the bridge through its own (LOCAL) interface into
// the host's IP stack, which routes it out and masquerades it; the replies
// come back the same way. Floating IPs and port forwards are translated
// there too (datapath/natnft), for every network. For that the host has a
// route to each network's subnet through the LOCAL interface — and no
// address in it: on the userspace datapath the host stack also sees every
// frame of the ports' veth ends, and would answer ARP for the gateway there
// in place of the flows. Our nftables table keeps the host from doing
// anything else with the networks' traffic.

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
// rule. The bridge's own interface (LOCAL) is in no group, so the traffic
// that enters the host there is judged by the chains below.
//
// The host never forwards between two networks on its own (routing between
// them is in the flows, where isolation is decided), forwards from a
// masquerading network or a floating IP's port only to the outside, lets
// nothing open a connection into a network but what a DNAT translated (a
// port forward, a floating IP, a chained portmap plugin's), lets no port
// through another tool's translation that leads out of the networks (a
// Docker published port, a kube-proxy service) unless it may go out at
// all, sends nothing
// of its own into one but that, and offers the networks none of its own
// services. A connection a port opens to a forward or floating address
// leaves the host into the networks with the address it dialled as its
// source, so that its answers come back through the host (docs/DESIGN.md
// §8.5).
func HostRuleset(bridge string, networks []model.Network, nat model.NAT) string {
	var b strings.Builder
	// "add table" makes the delete valid when the table does not exist yet.
	for _, family := range []string{"inet", "arp"} {
		fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", family, hostnet.Table, family, hostnet.Table)
	}
	if len(networks) == 0 {
		return b.String()
	}
	var all, masq, floating []string
	for _, n := range networks {
		all = append(all, n.Subnet.String())
		if n.Masquerade {
			masq = append(masq, n.Subnet.String())
		}
	}
	for _, f := range nat.Floating {
		floating = append(floating, f.IP.String())
	}
	fmt.Fprintf(&b, "table inet %s {\n", hostnet.Table)
	b.WriteString(hostEndsChain("prerouting", "raw"))
	fmt.Fprintf(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	// Into the networks and the replies back: a translation that leads
	// elsewhere is another tool's (Docker's, kube-proxy's), which the
	// networks reach only as far as the rules below let them out.
	fmt.Fprintf(&b, "\t\toifname %q ct status dnat accept comment %q\n", bridge, "forwarded ports, floating IPs")
	fmt.Fprintf(&b, "\t\tiifname %q ct direction reply ct status dnat accept comment %q\n", bridge, "forwarded ports, floating IPs")
	fmt.Fprintf(&b, "\t\tiifname %q oifname %q drop\n", bridge, bridge)
	fmt.Fprintf(&b, "\t\toifname %q ct state established,related accept\n", bridge)
	fmt.Fprintf(&b, "\t\toifname %q drop\n", bridge)
	for _, from := range [][]string{masq, floating} {
		if len(from) > 0 {
			fmt.Fprintf(&b, "\t\tiifname %q ip saddr %s accept\n", bridge, set(from))
		}
	}
	fmt.Fprintf(&b, "\t\tiifname %q drop\n\t}\n", bridge)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q ct state established,related accept\n", bridge)
	fmt.Fprintf(&b, "\t\tiifname %q drop\n\t}\n", bridge)
	fmt.Fprintf(&b, "\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\toifname %q ct status dnat accept\n", bridge)
	fmt.Fprintf(&b, "\t\toifname %q ct state established,related accept\n", bridge)
	fmt.Fprintf(&b, "\t\toifname %q drop comment %q\n\t}\n", bridge, "host to port")
	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&b, "\t\tct status dnat ip saddr %s oifname %q snat ip to ct original ip daddr comment %q\n", set(all), bridge, "hairpin: from the address dialled")
	if len(masq) > 0 {
		fmt.Fprintf(&b, "\t\toifname != %q ip saddr %s masquerade\n", bridge, set(masq))
	}
	b.WriteString("\t}\n}\n")
	fmt.Fprintf(&b, "table arp %s {\n%s}\n", hostnet.Table, hostEndsChain("input", "filter"))
	return b.String()
}

// set is an nft anonymous set of the elements, sorted.
func set(elems []string) string {
	return "{ " + strings.Join(slices.Sorted(slices.Values(elems)), ", ") + " }"
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

// syncHostAfter syncs the host side after network n changed: every
// network has a route, and its subnet is in the host's rules. Until the
// state is complete the first Prune does it.
func (b *Backend) syncHostAfter(ctx context.Context, n model.Network) error {
	b.mu.Lock()
	primed := b.primed
	b.mu.Unlock()
	if !primed {
		return nil
	}
	if err := b.syncHost(ctx); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

// syncHost makes the host's routes through the LOCAL interface, our
// nftables tables and the NAT table match the networks and the NAT, the
// tables in one nft transaction.
func (b *Backend) syncHost(ctx context.Context) error {
	b.hostMu.Lock()
	defer b.hostMu.Unlock()
	networks, nat := b.hostSide()
	want := map[netip.Prefix]bool{}
	masquerade := false
	for _, n := range networks {
		want[n.Subnet] = true
		masquerade = masquerade || n.Masquerade
	}
	// The routes come first: they need the bridge's interface, so a call in
	// the wrong network namespace fails before it changes anything.
	if err := b.syncRoutes(want); err != nil {
		return fmt.Errorf("routes through %s: %w", b.bridge, err)
	}
	if masquerade || !nat.Empty() {
		if err := hostnet.EnableForwarding(); err != nil {
			return err
		}
	}
	// One transaction with the NAT table: the admission of a floating
	// port's own connections (HostRuleset) never goes in without the SNAT
	// that gives them the floating address.
	natScript, hash := b.natTable(networks, nat)
	if err := hostnet.ApplyNft(ctx, HostRuleset(b.bridge, networks, nat)+natScript); err != nil {
		return fmt.Errorf("host rules: %w", err)
	}
	if natScript != "" {
		b.natTook(hash, nat)
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
