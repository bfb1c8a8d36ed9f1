// Package natnft renders ovs-vnet's table of floating IPs and port
// forwards, `ip ovs_vnet_nat` (docs/DESIGN.md §8.5), for both backends:
// traffic from outside enters through the host on both, so the host's
// nftables translate it on both, from one model.NAT and one text.
//
// The table holds only the translations and their counters. What lets
// translated connections through the backends' own filter chains (`ct
// status dnat`), and the hairpin SNAT that serves any DNAT to a port,
// ours or a chained portmap plugin's, are in each backend's `ovs_vnet`
// table, which exists while networks do.
package natnft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Chains of the table, and their priorities. DNAT comes before the
// default dstnat priority, where iptables-nft's nat table (and so the
// portmap plugin) sits, so that ours wins a host port both claim; the
// floating SNAT comes before the srcnat priority of the backends'
// masquerade, as the first NAT a connection meets is the one it keeps. nft
// 1.0.6 takes "dstnat - 10" in prerouting but only the number in output.
const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainCount       = "count"
	dnatPriority     = "-110"
)

// Counter name prefixes, before the object's name (which has no '_'):
// connections a forward translated, packets towards its port, connections
// a floating IP translated in and out.
const (
	counterConns    = "fc_"
	counterPackets  = "fp_"
	counterFloatIn  = "fi_"
	counterFloatOut = "fo_"
)

// hashPrefix starts the comment of the table's first rule, which names
// the hash of what was rendered: a restart that would render the same
// sends nothing (Hash).
const hashPrefix = "nat="

// Host is what a backend adds to the NAT it renders.
type Host struct {
	// Ours are the interfaces that lead into the backend's networks (OVS:
	// the bridge's own interface; Linux: the networks' bridges): a
	// floating port's connections are SNAT'd on any other.
	Ours []string
	// Subnets are the networks' subnets. A forward on every address of the
	// host takes none of them: the Linux backend's gateways are addresses
	// of the host, OVS's are not, and a port dialling its gateway must
	// meet the same on both (docs/PIPELINE.md).
	Subnets []netip.Prefix
}

// Render is the `nft -f` script that makes the table hold n, as one
// transaction, on h. had are the counters the table holds now: those n has no more are deleted,
// the others kept with their values, since the script flushes the rules
// and declares the counters again, which leaves an existing counter as it
// is. With n empty the table goes.
func Render(n model.NAT, h Host, had []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "add table ip %s\n", hostnet.NATTable)
	if n.Empty() {
		fmt.Fprintf(&b, "delete table ip %s\n", hostnet.NATTable)
		return b.String()
	}
	fmt.Fprintf(&b, "flush table ip %s\n", hostnet.NATTable)
	b.WriteString(body(n, h, Hash(n, h)))
	keep := CounterNames(n)
	for _, c := range slices.Sorted(slices.Values(had)) {
		if _, found := slices.BinarySearch(keep, c); !found {
			fmt.Fprintf(&b, "delete counter ip %s %s\n", hostnet.NATTable, c)
		}
	}
	return b.String()
}

// Hash names what Render makes of n on h; the first rule's comment
// carries it.
func Hash(n model.NAT, h Host) string {
	sum := sha256.Sum256([]byte(body(n, h, "")))
	return hex.EncodeToString(sum[:8])
}

// CounterNames are the counters the table holds for n, sorted.
func CounterNames(n model.NAT) []string {
	var names []string
	for _, f := range n.Floating {
		names = append(names, counterFloatIn+f.Name, counterFloatOut+f.Name)
	}
	for _, f := range n.Forwards {
		names = append(names, counterConns+f.Name, counterPackets+f.Name)
	}
	slices.Sort(names)
	return names
}

// body is the table's declaration, hash in its first rule's comment.
func body(n model.NAT, h Host, hash string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", hostnet.NATTable)
	for _, c := range CounterNames(n) {
		fmt.Fprintf(&b, "\tcounter %s {\n\t}\n", c)
	}
	var pre, out []string
	for _, r := range dnatRules(n, h.Subnets) {
		pre = append(pre, r.match+r.action)
		if r.anyLocal {
			// The host's own connections to 127.0.0.0/8 stay its own:
			// the kernel routes no loopback address to another host.
			out = append(out, "ip daddr != 127.0.0.0/8 "+r.match+r.action)
		} else {
			out = append(out, r.match+r.action)
		}
	}
	first := hashPrefix + hash
	chain(&b, chainPrerouting, "nat", "prerouting", "dstnat - 10", first, pre)
	chain(&b, chainOutput, "nat", "output", dnatPriority, first, out)

	notOurs := ""
	if len(h.Ours) > 0 {
		quoted := make([]string, len(h.Ours))
		for i, o := range slices.Sorted(slices.Values(h.Ours)) {
			quoted[i] = quote(o)
		}
		// From our bridges only: another tool's container may use the
		// same address behind its own bridge.
		notOurs = "iifname { " + strings.Join(quoted, ", ") + " } oifname != { " + strings.Join(quoted, ", ") + " } "
	}
	var snat []string
	for _, f := range n.Floating {
		snat = append(snat, fmt.Sprintf("ip saddr %s %scounter name %s snat to %s comment %s",
			f.IP, notOurs, quote(counterFloatOut+f.Name), f.Address, quote(model.KindFloatingIP+" "+f.Name)))
	}
	chain(&b, chainPostrouting, "nat", "postrouting", "srcnat - 10", "", snat)

	var count []string
	for _, f := range n.Forwards {
		// Towards the port, after the translation: the original direction
		// of the connections this forward translated.
		orig := ""
		if f.HostIP.IsValid() {
			orig = fmt.Sprintf("ct original ip daddr %s ", f.HostIP)
		}
		count = append(count, fmt.Sprintf("ct direction original ct status dnat ip daddr %s %s dport %d %sct original proto-dst %d counter name %s",
			f.IP, protoName(f.Proto), f.TargetPort, orig, f.HostPort, quote(counterPackets+f.Name)))
	}
	chain(&b, chainCount, "filter", "postrouting", "filter", "", count)
	b.WriteString("}\n")
	return b.String()
}

// dnatRule is one translation, as prerouting and output share it.
type dnatRule struct {
	match, action string
	// anyLocal: the rule takes every local address (a forward without
	// host_ip), which output narrows to non-loopback ones.
	anyLocal bool
}

// dnatRules are n's translations in the order model.NAT.Translate tries
// them: floating addresses, forwards on one local address, forwards on
// every local address. Overlaps are ResolveNAT's to leave out.
func dnatRules(n model.NAT, subnets []netip.Prefix) []dnatRule {
	anyLocal := "fib daddr type local "
	if len(subnets) > 0 {
		s := make([]string, len(subnets))
		for i, p := range slices.SortedFunc(slices.Values(subnets), netip.Prefix.Compare) {
			s[i] = p.Masked().String()
		}
		anyLocal += "ip daddr != { " + strings.Join(s, ", ") + " } "
	}
	var rules []dnatRule
	for _, f := range n.Floating {
		rules = append(rules, dnatRule{match: fmt.Sprintf("ip daddr %s ", f.Address),
			action: fmt.Sprintf("counter name %s dnat to %s comment %s", quote(counterFloatIn+f.Name), f.IP, quote(model.KindFloatingIP+" "+f.Name))})
	}
	for _, specific := range []bool{true, false} {
		for _, f := range n.Forwards {
			if f.HostIP.IsValid() != specific {
				continue
			}
			r := dnatRule{match: anyLocal, anyLocal: true,
				action: fmt.Sprintf("%s dport %d counter name %s dnat to %s comment %s", protoName(f.Proto), f.HostPort,
					quote(counterConns+f.Name), netip.AddrPortFrom(f.IP, f.TargetPort), quote(model.KindPortForward+" "+f.Name))}
			if specific {
				// While the host has the address: one it has lost (or
				// never had) is a third party's, whose traffic is not
				// the forward's to take (docs/API.md).
				r.match, r.anyLocal = fmt.Sprintf("fib daddr type local ip daddr %s ", f.HostIP), false
			}
			rules = append(rules, r)
		}
	}
	return rules
}

// chain writes a base chain of rules; first, unless empty, opens the
// first rule's comment.
func chain(b *strings.Builder, name, typ, hook, priority, first string, rules []string) {
	fmt.Fprintf(b, "\tchain %s {\n\t\ttype %s hook %s priority %s; policy accept;\n", name, typ, hook, priority)
	for _, r := range rules {
		if first != "" {
			if before, comment, ok := strings.Cut(r, " comment \""); ok {
				r = before + " comment \"" + first + " " + comment
			} else {
				r += " comment " + quote(first)
			}
			first = ""
		}
		fmt.Fprintf(b, "\t\t%s\n", r)
	}
	b.WriteString("\t}\n")
}

func protoName(p uint8) string {
	if p == model.ProtoUDP {
		return "udp"
	}
	return "tcp"
}

// quote makes an nft string literal. What reaches here are object names
// (the API's name rule) and interface names the backends made: none holds
// a quote.
func quote(s string) string { return `"` + s + `"` }
