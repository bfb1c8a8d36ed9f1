package linux

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/explain"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// traceRoutes are the kernel's own answers that an explanation quotes.
type traceRoutes struct {
	InNetns string // the source namespace's route to the destination (`ip route get`), or why there is none
	OnHost  string // the host's route to it, for a packet that leaves the source's bridge
	// Local are the host's addresses, which a port forward without a
	// host_ip takes (nftables' `fib daddr type local`).
	Local []netip.Addr
	// NoDHCP is why the backend has no DHCP sockets (dhcp.go), if so.
	NoDHCP string
}

// explainTrace explains q on this backend (bridges named with prefix):
// best-effort, since no datapath runs the packet. Each step names the
// kernel's route or the nftables chain (nft.go, ports.go) that decides, in
// the order a packet meets them: the port's anti-spoofing chain in the
// bridge table, the namespace's route, then — off the bridge — the host's
// route, the inet table's forward chain and, for masquerade, postrouting;
// last the security groups' chains (s.Policy): egress on the forward
// hook, ingress on postrouting, after every translation of the host.
func explainTrace(q v1.Query, s datapath.State, prefix string, routes traceRoutes) (v1.Result, error) {
	o := explain.Index(s)
	if q.FromAddress.IsValid() {
		return fromOutside(q, o, s.Policy, prefix)
	}
	p, n, err := o.Source(q)
	if err != nil {
		return v1.Result{}, err
	}
	src, srcMAC := explain.Sender(q, p)
	res := v1.Result{
		Backend: "linux", BestEffort: true,
		Packet: fmt.Sprintf("%s from %s (%s) to %s, sent by port %s", l4(q), src, srcMAC, q.To, p.Name),
	}
	br := model.BridgeName(prefix, n.Name)
	guard := v1.Step{Table: -1, Stage: fmt.Sprintf("nft bridge %s %s", hostnet.Table, portChain(p.Name)), Owner: "port " + p.Name}
	if srcMAC == p.MAC && explain.DHCPRequest(q) {
		return dhcpRequest(res, guard, p, n, routes.NoDHCP), nil
	}
	if src != p.IP || srcMAC != p.MAC {
		guard.Actions, guard.Drop = []string{"counter name " + SpoofCounter(p.Name) + " drop"}, v1.DropSpoofed
		res.Steps = append(res.Steps, guard)
		return dropped(res, v1.DropSpoofed, "port "+p.Name+"'s chain in the bridge table"), nil
	}
	guard.Actions = []string{fmt.Sprintf("ether saddr %s ip saddr %s accept", p.MAC, p.IP)}
	res.Steps = append(res.Steps, guard)
	if p.Netns != "" {
		res.Steps = append(res.Steps, v1.Step{Table: -1, Stage: "route in netns " + p.Netns, Actions: []string{routes.InNetns}})
	}

	if t, ok := s.NAT.Translate(q.To, packet(p, q).Proto, q.DPort, model.HostAddress(routes.Local, s.Networks)); ok {
		return translated(res, o, s.Policy, p, q, t, prefix), nil
	}
	if n.Subnet.Contains(q.To) {
		return policed(onNetwork(res, o, n, br, q), s.Policy, p, q), nil
	}
	dn, known := o.NetworkOf(q.To)
	hostRoute := v1.Step{Table: -1, Stage: "route on the host", Actions: []string{routes.OnHost}}
	forward := v1.Step{Table: -1, Stage: fmt.Sprintf("nft inet %s %s", hostnet.Table, chainForward)}
	switch {
	case known && o.Router(n.Name, dn.Name) != "":
		forward.Owner = "routes of network " + n.Name
		forward.Actions = []string{fmt.Sprintf("iifname %q oifname %q accept", br, model.BridgeName(prefix, dn.Name))}
		res.Steps = append(res.Steps, hostRoute, forward)
		res = onNetwork(res, o, dn, model.BridgeName(prefix, dn.Name), q)
		if res.Verdict == v1.Delivered {
			res.Summary += fmt.Sprintf(", routed from %s by router %s", n.Name, o.Router(n.Name, dn.Name))
		}
		return policed(res, s.Policy, p, q), nil
	case known:
		forward.Owner = "network " + n.Name
		forward.Actions, forward.Drop = []string{fmt.Sprintf("iifname %q drop", br)}, v1.DropIsolated
		res.Steps = append(res.Steps, hostRoute, forward)
		return dropped(res, v1.DropIsolated, "the forward chain"), nil
	case n.Masquerade:
		forward.Owner = "network " + n.Name
		forward.Actions = []string{fmt.Sprintf("iifname %q oifname != our bridges accept", br)}
		nat := v1.Step{Table: -1, Stage: fmt.Sprintf("nft inet %s %s", hostnet.Table, chainPostrouting), Owner: "network " + n.Name,
			Actions: []string{fmt.Sprintf("ip saddr %s masquerade", n.Subnet)}}
		res.Steps = append(res.Steps, hostRoute, forward, nat)
		res.Verdict = v1.ToHost
		res.Summary = fmt.Sprintf("routed by the host to %s with its source masqueraded (network %s masquerades)", q.To, n.Name)
		return policed(res, s.Policy, p, q), nil
	default:
		forward.Owner = "network " + n.Name
		forward.Actions, forward.Drop = []string{fmt.Sprintf("iifname %q drop", br)}, v1.DropNoRoute
		res.Steps = append(res.Steps, hostRoute, forward)
		return dropped(res, v1.DropNoRoute, "the forward chain"), nil
	}
}

// dhcpRequest ends the way of a DHCP request from port p of network n, as
// on OVS: whatever its destination, the daemon's packet socket on the
// port's host end reads it before the bridge, and the port's chain drops
// the frame (ports.go) after it was read.
func dhcpRequest(res v1.Result, guard v1.Step, p model.Port, n model.Network, noDHCP string) v1.Result {
	res.Packet = strings.Replace(res.Packet, "udp dport", fmt.Sprintf("udp sport %d dport", dhcp.ClientPort), 1)
	guard.Actions = []string{fmt.Sprintf("ether saddr %s udp sport %d udp dport %d drop comment %q", p.MAC, dhcp.ClientPort, dhcp.ServerPort, dhcpComment)}
	if noDHCP != "" {
		guard.Drop = v1.DropDHCPOff
		res.Steps = append(res.Steps, guard)
		res.Verdict, res.Reason = v1.Dropped, v1.DropDHCPOff
		res.Summary = fmt.Sprintf("dropped by port %s's chain in the bridge table, unanswered: %s", p.Name, noDHCP)
		return res
	}
	read := v1.Step{Table: -1, Stage: "dhcp socket on " + p.HostIfname, Owner: "port " + p.Name,
		Actions: []string{fmt.Sprintf("read by the daemon: udp sport %d dport %d", dhcp.ClientPort, dhcp.ServerPort)}}
	if !n.DHCP {
		read.Drop = v1.DropDHCPOff
		res.Steps = append(res.Steps, read, guard)
		return dropped(res, v1.DropDHCPOff, "the daemon (network "+n.Name+")")
	}
	res.Steps = append(res.Steps, read, guard)
	res.Verdict, res.Summary = v1.Answered, explain.DHCPAnswered(n)
	return res
}

// onNetwork ends the packet's way on network n (bridge br): the gateway
// address is the host's own on the bridge, a port's address is delivered by
// the bridge, any other goes unanswered.
func onNetwork(res v1.Result, o explain.Objects, n model.Network, br string, q v1.Query) v1.Result {
	if q.To == n.Gateway {
		res.Steps = append(res.Steps, v1.Step{Table: -1, Stage: fmt.Sprintf("nft inet %s %s", hostnet.Table, chainInput), Owner: "network " + n.Name,
			Actions: []string{fmt.Sprintf("ip daddr %s accept: the address of bridge %s", q.To, br)}})
		res.Verdict = v1.Answered
		res.Summary = fmt.Sprintf("answered by the host as the gateway %s of network %s", q.To, n.Name)
		return res
	}
	dst, ok := o.PortWith(n.Name, q.To)
	if !ok {
		res.Steps = append(res.Steps, v1.Step{Table: -1, Stage: "bridge " + br, Owner: "network " + n.Name,
			Actions: []string{fmt.Sprintf("ARP for %s: no port answers", q.To)}, Drop: v1.DropNoNeighbor})
		return dropped(res, v1.DropNoNeighbor, "bridge "+br)
	}
	res.Steps = append(res.Steps, v1.Step{Table: -1, Stage: "bridge " + br, Owner: "port " + dst.Name,
		Actions: []string{fmt.Sprintf("to %s on %s", dst.MAC, dst.HostIfname)}})
	res.Verdict, res.Ports = v1.Delivered, []string{dst.Name}
	res.Summary = fmt.Sprintf("delivered to port %s (network %s)", dst.Name, n.Name)
	return res
}

// policed adds to a packet the datapath forwards (to a port or out of the
// host) the verdicts of the security groups' chains, as model.Policy.Allows
// gives them for the first packet of a connection: the rule that allows
// it, or the drop. Sides whose port no group governs are not shown.
func policed(res v1.Result, pol model.Policy, src model.Port, q v1.Query) v1.Result {
	if res.Verdict != v1.Delivered && res.Verdict != v1.ToHost {
		return res
	}
	pkt := packet(src, q)
	if res.Verdict == v1.Delivered {
		pkt.DstPort = res.Ports[0]
	}
	return judged(res, pol, pkt, pkt)
}

// judged adds the egress side's verdict on out, the packet as its port
// sent it, and the ingress side's on in, the packet as its port receives
// it: the same packet unless the host translated it.
func judged(res v1.Result, pol model.Policy, out, in model.Packet) v1.Result {
	egress, _ := pol.Allows(out)
	_, ingress := pol.Allows(in)
	for _, side := range []struct {
		v     model.Verdict
		port  string
		chain string
	}{{egress, out.SrcPort, policyEgress}, {ingress, in.DstPort, policyIngress}} {
		if side.v.Allowed && side.v.Group == "" {
			continue // the port is not guarded on this side
		}
		step := v1.Step{Table: -1, Stage: fmt.Sprintf("nft inet %s %s", hostnet.PolicyTable, side.chain)}
		if side.v.Allowed {
			step.Owner = v1.OwnerString(v1.OwnerRule, v1.RuleOwner(side.v.Group, side.v.Index), "")
			step.Actions = []string{ruleText(side.v.Group, side.v.Index, pol.Groups[side.v.Group].Rules[side.v.Index])}
			res.Steps = append(res.Steps, step)
			continue
		}
		step.Owner = "port " + side.port
		step.Actions, step.Drop = []string{policyDrop(side.v.Dir)}, v1.DropPolicy
		res.Steps = append(res.Steps, step)
		res.Ports = nil
		return dropped(res, v1.DropPolicy, fmt.Sprintf("the %s chain of the security groups (port %s)", side.chain, side.port))
	}
	return res
}

// packet is the first packet of the connection q describes, sent by port
// src.
func packet(src model.Port, q v1.Query) model.Packet {
	pkt := model.Packet{SrcPort: src.Name, Src: src.IP, Dst: q.To, Proto: model.ProtoICMP}
	switch q.Proto {
	case v1.ProtoTCP:
		pkt.Proto, pkt.DPort = model.ProtoTCP, q.DPort
	case v1.ProtoUDP:
		pkt.Proto, pkt.DPort = model.ProtoUDP, q.DPort
	}
	return pkt
}

func dropped(res v1.Result, reason, where string) v1.Result {
	res.Verdict, res.Reason = v1.Dropped, reason
	res.Summary = fmt.Sprintf("dropped by %s: %s", where, v1.DropMeaning(reason))
	return res
}

// l4 is the transport part of the packet in words.
func l4(q v1.Query) string {
	if q.Proto == v1.ProtoICMP {
		return "icmp echo request"
	}
	return q.Proto + " dport " + strconv.Itoa(int(q.DPort))
}
