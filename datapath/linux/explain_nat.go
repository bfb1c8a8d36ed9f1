package linux

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/explain"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// hostAddress reports whether a is one a forward without a host_ip takes:
// an address of the host (local), but none of the networks' — the
// gateways, here — as the NAT table's rules skip the subnets.
func hostAddress(s datapath.State, local []netip.Addr) func(netip.Addr) bool {
	return func(a netip.Addr) bool {
		return slices.Contains(local, a) && !slices.ContainsFunc(s.Networks, func(n model.Network) bool { return n.Subnet.Contains(a) })
	}
}

// translated ends the way of a packet port p sends to an address the
// host translates (t): the NAT table's DNAT in prerouting, the admission
// of translated connections in the forward chain, the hairpin SNAT that
// makes the source the address p dialled, and the target port's bridge;
// p's egress rules judge what it sent, the target's ingress rules what
// it receives.
func translated(res v1.Result, o explain.Objects, pol model.Policy, p model.Port, q v1.Query, t model.Translation, prefix string) v1.Result {
	res.Steps = append(res.Steps,
		v1.Step{Table: -1, Stage: fmt.Sprintf("nft ip %s prerouting", hostnet.NATTable), Owner: t.Kind + " " + t.Name,
			Actions: []string{"dnat to " + dnatTo(t)}},
		v1.Step{Table: -1, Stage: fmt.Sprintf("nft inet %s %s", hostnet.Table, chainForward), Owner: commentTranslated,
			Actions: []string{"ct status dnat accept"}},
		v1.Step{Table: -1, Stage: fmt.Sprintf("nft inet %s %s", hostnet.Table, chainPostrouting), Owner: "hairpin",
			Actions: []string{fmt.Sprintf("snat ip to ct original ip daddr: source %s", q.To)}})
	dn, ok := o.NetworkOf(t.To.Addr())
	if !ok {
		return dropped(res, v1.DropNoRoute, "the host: the target's network is not in the model")
	}
	to := q
	to.To = t.To.Addr()
	res = onNetwork(res, o, dn, model.BridgeName(prefix, dn.Name), to)
	if res.Verdict != v1.Delivered {
		return res
	}
	res.Summary += fmt.Sprintf(" through %s %s, from %s", t.Kind, t.Name, q.To)
	out := packet(p, q)
	in := model.Packet{DstPort: res.Ports[0], Src: q.To, Dst: t.To.Addr(), Proto: out.Proto}
	if out.Proto != model.ProtoICMP {
		in.DPort = t.To.Port()
	}
	return judged(res, pol, out, in)
}

// dnatTo is a translation's new destination as the rule writes it: a
// floating IP's address alone (every protocol), a forward's with its port.
func dnatTo(t model.Translation) string {
	if t.Kind == model.KindFloatingIP {
		return t.To.Addr().String()
	}
	return t.To.String()
}
