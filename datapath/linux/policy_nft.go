package linux

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Security groups (docs/DESIGN.md §8.1) live in the table `inet
// ovs_vnet_sg` (hostnet.PolicyTable). Its layout:
//
//	set guarded, limited     local ports with groups / whose groups have egress rules
//	set p_<group>            the group's local ports: whom its rules govern
//	set m_<group>            every port of the group, any host: remote_group's peers
//	chain ig_<group>         the group's ingress rules, each `... counter name r_<group>_<i> accept`
//	chain eg_<group>         its egress rules
//	chain egress             base chain on the forward hook (filter+10)
//	chain ingress            base chain on the postrouting hook (srcnat+10)
//	                         both: replies and related ICMP pass on conntrack, then a
//	                         jump per group into its chain, then a guarded port's
//	                         leftovers count in drop_policy and drop
//
// Egress judges what a port sends, ingress what it receives, as on OVS:
// egress rules match the connection's original destination (`ct
// original`), the address and port the port dialled even when the host
// translates them (a port forward, a floating IP); ingress sits after
// every translation — the host's own packets and hairpinned ones, whose
// source the host rewrote, pass postrouting and not forward — so its
// rules see the source the port sees. A drop there still comes before
// conntrack confirms the connection.
//
// Every address is a port's own (the bridge table pins them to ports), so
// rules keyed on addresses are keyed on ports, which br_netfilter does not
// show here. The chains change only when rules do, by one `nft -f`
// (policyScript); a port joining or leaving a group changes set elements
// only, over netlink (policy.go). An accept ends one base chain only: a
// packet passes when both agree, and conntrack confirms a connection only
// then, after the hooks.
const (
	policySetGuarded  = "guarded"
	policySetLimited  = "limited"
	policyDropCounter = "drop_policy"
	policyEgress      = "egress"
	policyIngress     = "ingress"
	// policyHashPfx starts the comment of the ingress chain's first rule:
	// the hash of the rules rendered, so that a restart that finds the
	// same rules sends nothing (a table's comment cannot be changed).
	policyHashPfx  = "rules="
	ruleCounterPfx = "r_"
)

func portSet(group string) string   { return "p_" + group }
func memberSet(group string) string { return "m_" + group }

func groupChain(d model.Direction, group string) string {
	if d == model.Egress {
		return "eg_" + group
	}
	return "ig_" + group
}

// RuleCounter names the nftables counter of a rule's hits: r_<group>_<index>.
// Group names have no '_', so the last one splits it (parseRuleCounter).
func RuleCounter(group string, index int) string {
	return ruleCounterPfx + group + "_" + strconv.Itoa(index)
}

func parseRuleCounter(name string) (group string, index int, ok bool) {
	rest, ok := strings.CutPrefix(name, ruleCounterPfx)
	i := strings.LastIndexByte(rest, '_')
	if !ok || i <= 0 {
		return "", 0, false
	}
	index, err := strconv.Atoi(rest[i+1:])
	if err != nil {
		return "", 0, false
	}
	return rest[:i], index, true
}

// policyTable is the table as a policy wants it, or as the kernel holds it
// (readPolicyTable): exists false is no table at all.
type policyTable struct {
	exists bool
	// hash names the rules of every chain; "" when unknown.
	hash string
	// groups holds each group's chains' rules as rendered; nil when
	// unknown (read from the kernel): every group's are rewritten.
	groups map[string]string
	// base holds the base chains' rules as rendered.
	base string
	// Object names, sorted.
	sets, chains, counters []string
	// elems are the sets' elements.
	elems map[string]map[netip.Addr]bool
	// forwardIngress: the kernel's ingress chain is on the forward hook,
	// where releases before floating IPs had it; it is made again.
	forwardIngress bool
}

// wantPolicy renders the table p needs, given this host's attached ports'
// addresses: a port of p.Ports not attached has no address yet and no
// elements until it is. No groups and no guarded port, no table: a port
// may list groups this host has none of yet (made on another host), and
// it must be guarded, with nothing allowed, until they arrive.
func wantPolicy(p model.Policy, ports map[string]netip.Addr) policyTable {
	if len(p.Groups) == 0 && len(p.Ports) == 0 {
		return policyTable{}
	}
	t := policyTable{exists: true, groups: map[string]string{}, elems: map[string]map[netip.Addr]bool{}}
	t.sets = []string{policySetGuarded, policySetLimited}
	t.counters = []string{policyDropCounter}
	// Sets for every group and every group a rule names, so that a rule
	// never names a missing set.
	setGroups := map[string]bool{}
	for name, g := range p.Groups {
		setGroups[name] = true
		for _, r := range g.References() {
			setGroups[r] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(setGroups)) {
		t.sets = append(t.sets, portSet(name), memberSet(name))
	}
	var egress strings.Builder
	egress.WriteString(ruleLine(policyEgress, "ct direction reply accept"))
	egress.WriteString(ruleLine(policyEgress, "ct state related accept"))
	var ingressJumps strings.Builder
	names := slices.Sorted(maps.Keys(p.Groups))
	for _, name := range names {
		g := p.Groups[name]
		var rules strings.Builder
		for _, d := range []model.Direction{model.Ingress, model.Egress} {
			if !g.Has(d) {
				continue
			}
			chain := groupChain(d, name)
			t.chains = append(t.chains, chain)
			for i, r := range g.Rules {
				if r.Direction == d {
					rules.WriteString(ruleLine(chain, ruleText(name, i, r)))
				}
			}
			// Name order: the order Policy.Allows names the deciding rule in.
			if d == model.Egress {
				egress.WriteString(ruleLine(policyEgress, fmt.Sprintf("ip saddr @%s jump %s", portSet(name), chain)))
			} else {
				ingressJumps.WriteString(ruleLine(policyIngress, fmt.Sprintf("ip daddr @%s jump %s", portSet(name), chain)))
			}
		}
		for i := range g.Rules {
			t.counters = append(t.counters, RuleCounter(name, i))
		}
		t.groups[name] = rules.String()
	}
	egress.WriteString(ruleLine(policyEgress, policyDrop(model.Egress)))
	ingressRest := ruleLine(policyIngress, "ct state related accept") + ingressJumps.String() + ruleLine(policyIngress, policyDrop(model.Ingress))

	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%s\n%s", name, t.groups[name])
	}
	h.Write([]byte(egress.String() + ingressRest))
	t.hash = hex.EncodeToString(h.Sum(nil))[:16]
	t.base = egress.String() + ruleLine(policyIngress, "ct direction reply accept comment "+quote(policyHashPfx+t.hash)) + ingressRest
	t.chains = append(t.chains, policyEgress, policyIngress)
	slices.Sort(t.chains)
	slices.Sort(t.counters)
	slices.Sort(t.sets)

	for _, set := range t.sets {
		t.elems[set] = map[netip.Addr]bool{}
	}
	for port, groups := range p.Ports {
		addr, ok := ports[port]
		if !ok || groups == "" {
			continue
		}
		t.elems[policySetGuarded][addr] = true
		if p.EgressLimited(port) {
			t.elems[policySetLimited][addr] = true
		}
		for _, g := range groups.Names() {
			if set, ok := t.elems[portSet(g)]; ok {
				set[addr] = true
			}
		}
	}
	for g, members := range p.Members {
		if set, ok := t.elems[memberSet(g)]; ok {
			for _, addr := range members {
				set[addr] = true
			}
		}
	}
	return t
}

// ruleText renders rule i of group as its chain holds it.
func ruleText(group string, i int, r model.Rule) string {
	return ruleMatch(r) + "counter name " + quote(RuleCounter(group, i)) + " accept"
}

// ruleMatch renders what a rule matches, the peer's address first: the
// source of an ingress packet, the destination an egress one was sent to
// (its connection's original one, before the host translated it).
func ruleMatch(r model.Rule) string {
	peer, dport := "ip saddr", "%s dport"
	if r.Direction == model.Egress {
		peer, dport = "ct original ip daddr", "meta l4proto %s ct original proto-dst"
	}
	var b strings.Builder
	switch {
	case r.RemoteGroup != "":
		fmt.Fprintf(&b, "%s @%s ", peer, memberSet(r.RemoteGroup))
	case r.Remote.IsValid():
		fmt.Fprintf(&b, "%s %s ", peer, r.Remote)
	}
	proto := map[uint8]string{model.ProtoICMP: "icmp", model.ProtoTCP: "tcp", model.ProtoUDP: "udp"}[r.Proto]
	switch {
	case r.PortMin != 0 && r.PortMin == r.PortMax:
		fmt.Fprintf(&b, dport+" %d ", proto, r.PortMin)
	case r.PortMin != 0:
		fmt.Fprintf(&b, dport+" %d-%d ", proto, r.PortMin, r.PortMax)
	case proto != "":
		fmt.Fprintf(&b, "ip protocol %s ", proto)
	}
	return b.String()
}

// policyDrop is the last rule of a base chain: what no group allowed of
// a port that its groups govern on that side.
func policyDrop(d model.Direction) string {
	if d == model.Egress {
		return fmt.Sprintf("ip saddr @%s counter name %s drop", policySetLimited, quote(policyDropCounter))
	}
	return fmt.Sprintf("ip daddr @%s counter name %s drop", policySetGuarded, quote(policyDropCounter))
}

func ruleLine(chain, rule string) string {
	return fmt.Sprintf("add rule inet %s %s %s\n", hostnet.PolicyTable, chain, rule)
}

// policyScript renders the `nft -f` transaction that turns the table have
// into want: objects added and removed, the chains of the groups whose
// rules differ rewritten with their counters reset (a counter counts one
// rule), the base chains rewritten, and the elements that differ — all at
// once, so no packet meets half a change. Counters of groups whose rules
// stay keep counting. No table wanted, none left.
func policyScript(have, want policyTable) string {
	t := hostnet.PolicyTable
	var b strings.Builder
	if !want.exists {
		fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", t, t)
		return b.String()
	}
	changed := func(g string) bool { return have.groups == nil || have.groups[g] != want.groups[g] }
	fmt.Fprintf(&b, "add table inet %s { comment \"ovs-vnet security groups\"; }\n", t)
	for _, s := range want.sets {
		fmt.Fprintf(&b, "add set inet %s %s { type ipv4_addr; }\n", t, s)
	}
	for _, c := range want.chains {
		switch c {
		case policyEgress:
			fmt.Fprintf(&b, "add chain inet %s %s { type filter hook forward priority filter + 10; policy accept; }\n", t, c)
		case policyIngress:
			if have.forwardIngress {
				fmt.Fprintf(&b, "flush chain inet %s %s\ndelete chain inet %s %s\n", t, c, t, c)
			}
			fmt.Fprintf(&b, "add chain inet %s %s { type filter hook postrouting priority srcnat + 10; policy accept; }\n", t, c)
		default:
			fmt.Fprintf(&b, "add chain inet %s %s\n", t, c)
		}
	}
	// Every chain that is rewritten or goes is emptied first, so that
	// nothing refers any more to what goes next.
	gone := func(have, want []string) []string {
		return slices.DeleteFunc(slices.Clone(have), func(s string) bool { _, found := slices.BinarySearch(want, s); return found })
	}
	for _, c := range slices.Concat(want.chains, gone(have.chains, want.chains)) {
		g := strings.TrimPrefix(strings.TrimPrefix(c, "ig_"), "eg_")
		if c == policyEgress || c == policyIngress || !slices.Contains(want.chains, c) || changed(g) {
			fmt.Fprintf(&b, "flush chain inet %s %s\n", t, c)
		}
	}
	for _, c := range gone(have.chains, want.chains) {
		fmt.Fprintf(&b, "delete chain inet %s %s\n", t, c)
	}
	for _, c := range have.counters {
		g, _, isRule := parseRuleCounter(c)
		if !slices.Contains(want.counters, c) || isRule && changed(g) {
			fmt.Fprintf(&b, "delete counter inet %s %s\n", t, c)
		}
	}
	for _, s := range gone(have.sets, want.sets) {
		fmt.Fprintf(&b, "delete set inet %s %s\n", t, s)
	}
	for _, c := range want.counters {
		fmt.Fprintf(&b, "add counter inet %s %s\n", t, c)
	}
	for _, s := range want.sets {
		add, del := elemDiff(have.elems[s], want.elems[s])
		if len(del) > 0 {
			fmt.Fprintf(&b, "delete element inet %s %s { %s }\n", t, s, joinAddrs(del))
		}
		if len(add) > 0 {
			fmt.Fprintf(&b, "add element inet %s %s { %s }\n", t, s, joinAddrs(add))
		}
	}
	for _, g := range slices.Sorted(maps.Keys(want.groups)) {
		if changed(g) {
			b.WriteString(want.groups[g])
		}
	}
	b.WriteString(want.base)
	return b.String()
}

// elemDiff is what to add to have and delete from it to make want, sorted.
func elemDiff(have, want map[netip.Addr]bool) (add, del []netip.Addr) {
	for a := range want {
		if !have[a] {
			add = append(add, a)
		}
	}
	for a := range have {
		if !want[a] {
			del = append(del, a)
		}
	}
	slices.SortFunc(add, netip.Addr.Compare)
	slices.SortFunc(del, netip.Addr.Compare)
	return add, del
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
