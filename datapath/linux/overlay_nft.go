package linux

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// In a cluster every host's bridge of a network holds the same gateway
// address, joined to the other hosts' bridges by the network's VXLAN device.
// Left alone, a port's ARP request for its gateway would be flooded to every
// other host, each of which would answer with its own MAC, and the port's
// gateway would flap between hosts; each host's ARP requests from the gateway
// address would likewise reach the others' ports. So ARP whose sender or
// target is a network's gateway is dropped on the network's VXLAN device, on
// the way out (postrouting: frames the bridge forwards or sends itself) and
// on the way in (prerouting, for a peer that lacks these rules). Hosts
// resolve remote ports through permanent neighbour entries (remote.go), so
// they never need to ARP across the overlay themselves.
//
// The rules live in our bridge table beside the per-port chains, in base
// chains of their own:
//
//	set overlay_gateways { ifname . ipv4_addr }  VXLAN device . its network's gateway
//	counter overlay_gateway_arp                  frames the rules dropped
//	chain overlay_in   prerouting:  iifname . arp saddr/daddr ip @overlay_gateways drop
//	chain overlay_out  postrouting: oifname . arp saddr/daddr ip @overlay_gateways drop
//
// The chains never change with the networks; a network adds or removes only
// its set element, so ensuring one network during a restart never lifts the
// protection of another not yet ensured. Nothing else about the VXLAN device
// needs a rule: it is not in the ports map, so the anti-spoofing dispatch
// lets its frames pass (the sending host checked them against its own ports'
// rules), and bridged traffic passes the inet forward chain with iif = oif =
// the network's bridge, which the network's own rule accepts. Isolation holds
// as on one host: a VXLAN device is a port of exactly one network's bridge,
// and between bridges only the routers' rules let traffic through.
const (
	overlaySet = "overlay_gateways"
	// overlayCounter counts the gateway ARP frames kept from crossing the
	// overlay: `nft list counter bridge ovs_vnet overlay_gateway_arp`.
	overlayCounter = "overlay_gateway_arp"
	overlayIn      = "overlay_in"
	overlayOut     = "overlay_out"
)

// OverlayRules renders the overlay's objects. Applying it again rewrites the
// chains in place (one transaction, so no frame passes unchecked meanwhile)
// and keeps the set's elements and the counter's value.
func OverlayRules() string {
	t := hostnet.Table
	var b strings.Builder
	fmt.Fprintf(&b, "add table bridge %s\n", t)
	fmt.Fprintf(&b, "add set bridge %s %s { type ifname . ipv4_addr; }\n", t, overlaySet)
	fmt.Fprintf(&b, "add counter bridge %s %s\n", t, overlayCounter)
	for _, c := range []struct{ chain, hook, dir string }{{overlayIn, "prerouting", "iifname"}, {overlayOut, "postrouting", "oifname"}} {
		fmt.Fprintf(&b, "add chain bridge %s %s { type filter hook %s priority filter; policy accept; }\n", t, c.chain, c.hook)
		fmt.Fprintf(&b, "flush chain bridge %s %s\n", t, c.chain)
		for _, field := range []string{"saddr", "daddr"} {
			fmt.Fprintf(&b, "add rule bridge %s %s %s . arp %s ip @%s counter name %s drop comment %s\n",
				t, c.chain, c.dir, field, overlaySet, quote(overlayCounter), quote("gateway ARP stays on its host"))
		}
	}
	return b.String()
}

// overlayElement is a network's element of the gateway set.
func overlayElement(prefix string, n model.Network) string {
	return fmt.Sprintf("%s . %s", quote(VXLANName(prefix, n.Name)), n.Gateway)
}

// OverlayNetwork renders what EnsureNetwork applies for n: the overlay's
// objects and n's element, before n's VXLAN device joins its bridge.
func OverlayNetwork(prefix string, n model.Network) string {
	return OverlayRules() + fmt.Sprintf("add element bridge %s %s { %s }\n", hostnet.Table, overlaySet, overlayElement(prefix, n))
}

// OverlayNetworkDelete renders the removal of n's element; like
// PortRulesDelete it succeeds whether or not the element or the table exist.
func OverlayNetworkDelete(prefix string, n model.Network) string {
	t, e := hostnet.Table, overlayElement(prefix, n)
	return fmt.Sprintf("add table bridge %s\nadd set bridge %s %s { type ifname . ipv4_addr; }\n"+
		"add element bridge %s %s { %s }\ndelete element bridge %s %s { %s }\n", t, t, overlaySet, t, overlaySet, e, t, overlaySet, e)
}

// OverlayPrune renders the overlay for exactly these networks: the set is
// emptied and refilled in the same transaction, so a network that stays is
// protected throughout.
func OverlayPrune(prefix string, networks []model.Network) string {
	var b strings.Builder
	b.WriteString(OverlayRules())
	fmt.Fprintf(&b, "flush set bridge %s %s\n", hostnet.Table, overlaySet)
	sorted := slices.SortedFunc(slices.Values(networks), func(a, b model.Network) int { return strings.Compare(a.Name, b.Name) })
	if len(sorted) > 0 {
		elems := make([]string, len(sorted))
		for i, n := range sorted {
			elems[i] = overlayElement(prefix, n)
		}
		fmt.Fprintf(&b, "add element bridge %s %s { %s }\n", hostnet.Table, overlaySet, strings.Join(elems, ", "))
	}
	return b.String()
}

// OverlayRemove renders the removal of every overlay object, for a host that
// left its cluster (a single-host backend finding them at Prune). It is only
// applied when they are there (bridgeTable.overlay).
func OverlayRemove() string {
	t := hostnet.Table
	var b strings.Builder
	b.WriteString(OverlayRules())
	for _, c := range []string{overlayIn, overlayOut} {
		fmt.Fprintf(&b, "flush chain bridge %s %s\ndelete chain bridge %s %s\n", t, c, t, c)
	}
	fmt.Fprintf(&b, "delete set bridge %s %s\ndelete counter bridge %s %s\n", t, overlaySet, t, overlayCounter)
	return b.String()
}
