package ovs

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// The host side of masquerade. A masquerading network's traffic for the
// outside leaves the bridge through its own (LOCAL) interface into the host's
// IP stack, which routes it out and masquerades it; the replies come back the
// same way. For that the LOCAL interface carries the gateway address of every
// masquerading network (so the host has a connected route to each subnet), and
// our nftables table keeps the host from doing anything else with it.

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

// syncHost makes the LOCAL interface and our nftables table match the
// masquerading networks. Every IPv4 address on the integration bridge's own
// interface is ours: the bridge is.
func (b *Backend) syncHost(ctx context.Context, networks []model.Network) error {
	want := map[string]*netlink.Addr{}
	for _, n := range networks {
		if n.Masquerade {
			a := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
			want[a.IPNet.String()] = a
		}
	}
	if len(want) > 0 {
		if err := hostnet.EnableForwarding(); err != nil {
			return err
		}
	}
	if err := b.syncLocalAddrs(want); err != nil {
		return fmt.Errorf("bridge interface %s: %w", b.bridge, err)
	}
	if err := hostnet.ApplyNft(ctx, HostRuleset(b.bridge, networks)); err != nil {
		return fmt.Errorf("masquerade rules: %w", err)
	}
	return nil
}

func (b *Backend) syncLocalAddrs(want map[string]*netlink.Addr) error {
	l, err := netlink.LinkByName(b.bridge)
	if err != nil {
		return fmt.Errorf("look up: %w", err)
	}
	have, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range have {
		if _, ok := want[a.IPNet.String()]; !ok {
			if err := netlink.AddrDel(l, &a); err != nil {
				return fmt.Errorf("remove address %s: %w", a.IPNet, err)
			}
		}
	}
	for _, a := range want {
		if err := netlink.AddrReplace(l, a); err != nil {
			return fmt.Errorf("add address %s: %w", a.IPNet, err)
		}
	}
	if len(want) > 0 && l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	return nil
}
