package linux

import (
	"fmt"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath/explain"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// fromOutside explains a packet from outside that the host translated
// (the controller's NAT step, docs/DESIGN.md §8.5): q is the translated
// packet, q.FromAddress its source. It enters the networks from the host:
// the admission of translated connections in the forward chain, the
// target's bridge, and its ingress rules, which see the outside's address.
func fromOutside(q v1.Query, o explain.Objects, pol model.Policy, prefix string) (v1.Result, error) {
	res := v1.Result{Backend: "linux", BestEffort: true,
		Packet: fmt.Sprintf("%s from %s to %s, translated by the host", l4(q), q.FromAddress, q.To)}
	res.Steps = append(res.Steps, admitted())
	dn, ok := o.NetworkOf(q.To)
	if !ok {
		return v1.Result{}, fmt.Errorf("trace from outside: %s is in no network", q.To)
	}
	res = onNetwork(res, o, dn, model.BridgeName(prefix, dn.Name), q)
	if res.Verdict != v1.Delivered {
		return res, nil
	}
	in := packet(model.Port{IP: q.FromAddress}, q)
	in.DstPort = res.Ports[0]
	return judged(res, pol, model.Packet{}, in), nil
}

// admitted is the forward chain's step that lets translated connections
// through, to any port.
func admitted() v1.Step {
	return v1.Step{Table: -1, Stage: fmt.Sprintf("nft inet %s %s", hostnet.Table, chainForward), Owner: commentTranslated,
		Actions: []string{"ct status dnat accept"}}
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
		admitted(),
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
