package trace

import (
	"fmt"

	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Routes are the kernel's own answers that a Linux explanation quotes.
type Routes struct {
	InNetns string // the source namespace's route to the destination (`ip route get`), or why there is none
	OnHost  string // the host's route to it, for a packet that leaves the source's bridge
}

// ExplainLinux explains q on the Linux backend (bridges named with prefix):
// best-effort, since no datapath runs the packet. Each step names the
// kernel's route or the nftables chain (datapath/linux) that decides, in the
// order a packet meets them: the port's anti-spoofing chain in the bridge
// table, the namespace's route, then — off the bridge — the host's route,
// the inet table's forward chain and, for masquerade, postrouting.
func ExplainLinux(q Query, m pipeline.Model, prefix string, routes Routes) (Result, error) {
	o := index(m)
	p, n, err := o.source(q)
	if err != nil {
		return Result{}, err
	}
	src, srcMAC := p.IP, p.MAC
	if q.Src.IsValid() {
		src = q.Src
	}
	if q.SrcMAC != "" {
		srcMAC = q.SrcMAC
	}
	res := Result{
		Backend: "linux", BestEffort: true,
		Packet: fmt.Sprintf("%s from %s (%s) to %s, sent by port %s", q.l4(), src, srcMAC, q.To, p.Name),
	}
	br := model.BridgeName(prefix, n.Name)
	guard := Step{Table: -1, Stage: fmt.Sprintf("nft bridge %s port_%s", hostnet.Table, p.Name), Owner: "port " + p.Name}
	if src != p.IP || srcMAC != p.MAC {
		guard.Actions, guard.Drop = []string{"counter name spoof_" + p.Name + " drop"}, pipeline.DropSpoofed
		res.Steps = append(res.Steps, guard)
		return dropped(res, pipeline.DropSpoofed, "port "+p.Name+"'s chain in the bridge table"), nil
	}
	guard.Actions = []string{fmt.Sprintf("ether saddr %s ip saddr %s accept", p.MAC, p.IP)}
	res.Steps = append(res.Steps, guard)
	if p.Netns != "" {
		res.Steps = append(res.Steps, Step{Table: -1, Stage: "route in netns " + p.Netns, Actions: []string{routes.InNetns}})
	}

	if n.Subnet.Contains(q.To) {
		return onNetwork(res, o, n, br, q), nil
	}
	dn, known := o.networkOf(q.To)
	hostRoute := Step{Table: -1, Stage: "route on the host", Actions: []string{routes.OnHost}}
	forward := Step{Table: -1, Stage: fmt.Sprintf("nft inet %s forward", hostnet.Table)}
	switch {
	case known && o.router(n.Name, dn.Name) != "":
		forward.Owner = "routes of network " + n.Name
		forward.Actions = []string{fmt.Sprintf("iifname %q oifname %q accept", br, model.BridgeName(prefix, dn.Name))}
		res.Steps = append(res.Steps, hostRoute, forward)
		res = onNetwork(res, o, dn, model.BridgeName(prefix, dn.Name), q)
		if res.Verdict == Delivered {
			res.Summary += fmt.Sprintf(", routed from %s by router %s", n.Name, o.router(n.Name, dn.Name))
		}
		return res, nil
	case known:
		forward.Owner = "network " + n.Name
		forward.Actions, forward.Drop = []string{fmt.Sprintf("iifname %q drop", br)}, pipeline.DropIsolated
		res.Steps = append(res.Steps, hostRoute, forward)
		return dropped(res, pipeline.DropIsolated, "the forward chain"), nil
	case n.Masquerade:
		forward.Owner = "network " + n.Name
		forward.Actions = []string{fmt.Sprintf("iifname %q oifname != our bridges accept", br)}
		nat := Step{Table: -1, Stage: fmt.Sprintf("nft inet %s postrouting", hostnet.Table), Owner: "network " + n.Name,
			Actions: []string{fmt.Sprintf("ip saddr %s masquerade", n.Subnet)}}
		res.Steps = append(res.Steps, hostRoute, forward, nat)
		res.Verdict = ToHost
		res.Summary = fmt.Sprintf("routed by the host to %s with its source masqueraded (network %s masquerades)", q.To, n.Name)
		return res, nil
	default:
		forward.Owner = "network " + n.Name
		forward.Actions, forward.Drop = []string{fmt.Sprintf("iifname %q drop", br)}, pipeline.DropNoRoute
		res.Steps = append(res.Steps, hostRoute, forward)
		return dropped(res, pipeline.DropNoRoute, "the forward chain"), nil
	}
}

// onNetwork ends the packet's way on network n (bridge br): the gateway
// address is the host's own on the bridge, a port's address is delivered by
// the bridge, any other goes unanswered.
func onNetwork(res Result, o objects, n model.Network, br string, q Query) Result {
	if q.To == n.Gateway {
		res.Steps = append(res.Steps, Step{Table: -1, Stage: fmt.Sprintf("nft inet %s input", hostnet.Table), Owner: "network " + n.Name,
			Actions: []string{fmt.Sprintf("ip daddr %s accept: the address of bridge %s", q.To, br)}})
		res.Verdict = Answered
		res.Summary = fmt.Sprintf("answered by the host as the gateway %s of network %s", q.To, n.Name)
		return res
	}
	dst, ok := o.portWith(n.Name, q.To)
	if !ok {
		res.Steps = append(res.Steps, Step{Table: -1, Stage: "bridge " + br, Owner: "network " + n.Name,
			Actions: []string{fmt.Sprintf("ARP for %s: no port answers", q.To)}, Drop: pipeline.DropNoNeighbor})
		return dropped(res, pipeline.DropNoNeighbor, "bridge "+br)
	}
	res.Steps = append(res.Steps, Step{Table: -1, Stage: "bridge " + br, Owner: "port " + dst.Name,
		Actions: []string{fmt.Sprintf("to %s on %s", dst.MAC, dst.HostIfname)}})
	res.Verdict, res.Ports = Delivered, []string{dst.Name}
	res.Summary = fmt.Sprintf("delivered to port %s (network %s)", dst.Name, n.Name)
	return res
}

func dropped(res Result, reason, where string) Result {
	res.Verdict, res.Reason = Dropped, reason
	res.Summary = fmt.Sprintf("dropped by %s: %s", where, Meaning(reason))
	return res
}
