package linux

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Chains of the inet table, by the hook each is on; the trace explainer
// (explain.go) names them too.
const (
	chainForward     = "forward"
	chainInput       = "input"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
)

// Ruleset renders the whole of our inet table for the given networks,
// routers and NAT as an `nft -f` script that replaces the table atomically
// (nft applies a file as one transaction). With no networks the table is
// removed. The table holds no per-port state but the floating IPs' ports,
// so re-rendering it on every network or router change costs nothing per
// port; per-port rules live in the bridge table (ports.go), the
// translations in the NAT table (datapath/natnft).
//
// Forward: a connection the host translated (DNAT: a port forward or
// floating IP, ours or a chained portmap plugin's) passes first, when it
// goes into one of our bridges, from anywhere, and its replies back out:
// security groups judge it in their own table. A translation that leads
// out of our bridges is another tool's (Docker's published ports,
// kube-proxy's services), and a port reaches it only where the rules
// below let the port out. Then a network's bridge forwards to itself (br_netfilter sends
// bridged IPv4 through the forward hook with iif = oif = the bridge), to
// the bridges of the networks a router joins it to, and — with masquerade,
// or from a port with a floating IP — to any interface that is not one of
// our bridges; replies of those connections come back. Everything else
// from or to our bridges is dropped, while traffic between interfaces that
// are not ours is left to whoever owns them (policy accept).
//
// Input: from a network the host answers on that network's gateway and the
// gateways of the networks it routes to, plus the replies of connections.
//
// Output: the host reaches a port only through a port forward or a
// floating IP, and in replies to what the port opened (docs/API.md
// "Traffic the host itself starts"), as on OVS.
//
// A bridge of our prefix that no network names (one that outlived its network,
// or one a restarted daemon has not ensured yet) is cut off in every chain, so
// a gap in what we know fails closed.
//
// Postrouting: every translated connection from a network's subnet into
// one of our bridges — to any port, not only back to the port that opened
// it — leaves with the address the port dialled as its source, so that the
// reply comes back through the host to be translated back (needed for the
// hairpin, where a port would drop packets from its own address, and kept
// for the rest as one rule). Its target sees the forward's or floating
// address, never the client's: remote-group rules do not match these
// clients (docs/PIPELINE.md). A masquerade network's source is rewritten to the host's
// address on the way out of an interface that is not ours; routed traffic
// between networks keeps its source.
func Ruleset(prefix string, networks []model.Network, routers []model.Router, nat model.NAT) string {
	var b strings.Builder
	// "add table" makes the delete valid when the table does not exist yet.
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", hostnet.Table, hostnet.Table)
	if len(networks) == 0 {
		return b.String()
	}
	sorted := slices.SortedFunc(slices.Values(networks), func(a, b model.Network) int { return strings.Compare(a.Name, b.Name) })
	byName := map[string]model.Network{}
	var all, masq, subnets []string
	for _, n := range sorted {
		byName[n.Name] = n
		all = append(all, quote(model.BridgeName(prefix, n.Name)))
		subnets = append(subnets, n.Subnet.Masked().String())
		if n.Masquerade {
			masq = append(masq, quote(model.BridgeName(prefix, n.Name)))
		}
	}
	ours := "{ " + strings.Join(all, ", ") + " }"
	peers := livePeers(routers, byName)
	floating := floatingPorts(nat)

	fmt.Fprintf(&b, "table inet %s {\n", hostnet.Table)
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook forward priority filter; policy accept;\n", chainForward)
	fmt.Fprintf(&b, "\t\toifname %s ct status dnat accept comment %s\n", ours, quote(commentTranslated))
	fmt.Fprintf(&b, "\t\tiifname %s ct direction reply ct status dnat accept comment %s\n", ours, quote(commentTranslated))
	for _, n := range sorted {
		br := quote(model.BridgeName(prefix, n.Name))
		comment := quote("network " + n.Name)
		fmt.Fprintf(&b, "\t\tiifname %s oifname %s accept comment %s\n", br, br, comment)
		if ps := peers[n.Name]; len(ps) > 0 {
			fmt.Fprintf(&b, "\t\tiifname %s oifname %s accept comment %s\n", br, bridgeSet(prefix, ps), quote("routes of "+n.Name))
		}
		switch {
		case n.Masquerade:
			fmt.Fprintf(&b, "\t\tiifname %s oifname != %s accept comment %s\n", br, ours, quote("masquerade "+n.Name))
		case len(floating[n.Name]) > 0:
			// A masquerading network lets every port out already.
			fmt.Fprintf(&b, "\t\tiifname %s ip saddr { %s } oifname != %s accept comment %s\n",
				br, strings.Join(floating[n.Name], ", "), ours, quote("floating IPs of "+n.Name))
		}
		fmt.Fprintf(&b, "\t\tiifname %s drop\n", br)
	}
	if len(masq) > 0 {
		fmt.Fprintf(&b, "\t\toifname { %s } ct state established,related accept comment \"masquerade replies\"\n", strings.Join(masq, ", "))
	}
	for _, n := range sorted {
		if ips := floating[n.Name]; !n.Masquerade && len(ips) > 0 {
			fmt.Fprintf(&b, "\t\toifname %s ip daddr { %s } ct state established,related accept comment %s\n",
				quote(model.BridgeName(prefix, n.Name)), strings.Join(ips, ", "), quote("floating IP replies of "+n.Name))
		}
	}
	fmt.Fprintf(&b, "\t\toifname %s drop\n", ours)
	fmt.Fprintf(&b, "\t\tiifname %s drop comment \"unknown bridge\"\n", ourPattern(prefix))
	fmt.Fprintf(&b, "\t\toifname %s drop comment \"unknown bridge\"\n\t}\n", ourPattern(prefix))

	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook input priority filter; policy accept;\n", chainInput)
	fmt.Fprintf(&b, "\t\tiifname %s ct state established,related accept\n", ours)
	for _, n := range sorted {
		gws := []string{n.Gateway.String()}
		for _, p := range peers[n.Name] {
			gws = append(gws, byName[p].Gateway.String())
		}
		// The gateways answer ping and nothing else, as on OVS, where
		// the flows answer ICMP echo and ARP and no one listens: no
		// service of the host is a network's (docs/PIPELINE.md).
		fmt.Fprintf(&b, "\t\tiifname %s ip daddr { %s } icmp type echo-request accept comment %s\n",
			quote(model.BridgeName(prefix, n.Name)), strings.Join(gws, ", "), quote("network "+n.Name))
	}
	fmt.Fprintf(&b, "\t\tiifname %s drop\n", ours)
	fmt.Fprintf(&b, "\t\tiifname %s drop comment \"unknown bridge\"\n\t}\n", ourPattern(prefix))

	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook output priority filter; policy accept;\n", chainOutput)
	fmt.Fprintf(&b, "\t\toifname %s ct status dnat accept comment %s\n", ours, quote(commentTranslated))
	fmt.Fprintf(&b, "\t\toifname %s ct state established,related accept\n", ours)
	fmt.Fprintf(&b, "\t\toifname %s drop comment \"host to port\"\n", ours)
	fmt.Fprintf(&b, "\t\toifname %s drop comment \"unknown bridge\"\n\t}\n", ourPattern(prefix))

	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n", chainPostrouting)
	fmt.Fprintf(&b, "\t\tct status dnat ip saddr { %s } oifname %s snat ip to ct original ip daddr comment \"hairpin\"\n",
		strings.Join(subnets, ", "), ours)
	// The input interface is unknown at postrouting, so the subnet stands for
	// the network, as in the classic `-s SUBNET ! -o BRIDGE -j MASQUERADE`.
	for _, n := range sorted {
		if n.Masquerade {
			fmt.Fprintf(&b, "\t\tip saddr %s oifname != %s masquerade comment %s\n", n.Subnet.Masked(), ours, quote("network "+n.Name))
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// commentTranslated names the rules that admit translated connections.
const commentTranslated = "forwarded ports, floating IPs"

// floatingPorts are the addresses of the ports with a floating IP, by
// network, sorted.
func floatingPorts(nat model.NAT) map[string][]string {
	ips := map[string][]netip.Addr{}
	for _, f := range nat.Floating {
		ips[f.Network] = append(ips[f.Network], f.IP)
	}
	out := map[string][]string{}
	for n, as := range ips {
		slices.SortFunc(as, netip.Addr.Compare)
		for _, a := range slices.Compact(as) {
			out[n] = append(out[n], a.String())
		}
	}
	return out
}

// livePeers is model.Peers restricted to networks that exist: a router may
// outlive one of its networks for a moment while the controller deletes both.
func livePeers(routers []model.Router, networks map[string]model.Network) map[string][]string {
	peers := model.Peers(routers)
	for n, ps := range peers {
		if _, ok := networks[n]; !ok {
			delete(peers, n)
			continue
		}
		peers[n] = slices.DeleteFunc(ps, func(p string) bool { _, ok := networks[p]; return !ok })
	}
	return peers
}

// routing reports whether the host must forward IPv4 for these networks
// and this NAT.
func routing(networks []model.Network, routers []model.Router, nat model.NAT) bool {
	if !nat.Empty() {
		return true
	}
	byName := map[string]model.Network{}
	for _, n := range networks {
		if n.Masquerade {
			return true
		}
		byName[n.Name] = n
	}
	for _, ps := range livePeers(routers, byName) {
		if len(ps) > 0 {
			return true
		}
	}
	return false
}

// ourPattern matches every bridge name model.BridgeName can make with prefix.
func ourPattern(prefix string) string {
	name := model.BridgeName(prefix, "")
	return quote(name[:min(len(prefix)+1, len(name))] + "*")
}

func bridgeSet(prefix string, networks []string) string {
	names := make([]string, len(networks))
	for i, n := range networks {
		names[i] = quote(model.BridgeName(prefix, n))
	}
	return "{ " + strings.Join(names, ", ") + " }"
}

// quote makes an nft string literal. Names that reach here are our bridge and
// port names, or interface names checked by validIfname: none holds a quote.
func quote(s string) string { return `"` + s + `"` }
