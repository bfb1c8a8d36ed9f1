package ovs

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/explain"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// traceSrcPort is the source port of traced TCP and UDP packets: an
// ephemeral one, as a client would pick.
const traceSrcPort = 40000

// tracePacket is the packet q describes, as ofproto/trace takes it
// (ovs-ofctl flow syntax): what the port's own stack would put on the wire.
// To an address of its subnet it goes to that port's MAC — or, when no port
// has the address, it is the ARP request the sender would broadcast first;
// to any other address it goes to the gateway's MAC (the default route).
func tracePacket(q v1.Query, s datapath.State) (string, error) {
	o := explain.Index(s)
	p, n, err := o.Source(q)
	if err != nil {
		return "", err
	}
	if p.Ofport <= 0 {
		return "", fmt.Errorf("port %q has no ofport yet", p.Name)
	}
	src, srcMAC := explain.Sender(q, p)
	dstMAC := model.BridgeMAC(n.Name)
	if n.Subnet.Contains(q.To) && q.To != n.Gateway {
		dst, ok := o.PortWith(n.Name, q.To)
		if !ok {
			return fmt.Sprintf("arp,in_port=%d,dl_src=%s,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=%s,arp_tpa=%s,arp_sha=%s",
				p.Ofport, srcMAC, src, q.To, srcMAC), nil
		}
		dstMAC = dst.MAC
	}
	return withL4(fmt.Sprintf("%s,in_port=%d,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64", q.Proto, p.Ofport, srcMAC, dstMAC, src, q.To), q), nil
}

// fromHost tells a query of a packet the host's stack sends into a
// network: a connection from outside or from the host itself as the
// host's NAT translated it (docs/NAT.md), with no port as its sender
// (From empty), FromAddress its source (v1.Query) and To, DPort its
// translated destination.
func fromHost(q v1.Query) bool { return q.From == "" }

// hostPacket is the packet of a query fromHost, as ofproto/trace takes
// it: in through the bridge's own port (LOCAL), from the host's MAC to the
// MAC of the port with the destination address, which the host learned by
// ARP — or, when no port has the address, that ARP request.
func hostPacket(q v1.Query, s datapath.State, hostMAC string) (string, error) {
	o := explain.Index(s)
	n, ok := o.NetworkOf(q.To)
	if !ok {
		return "", fmt.Errorf("%s is in no network: the host does not send it into the bridge", q.To)
	}
	dst, ok := o.PortWith(n.Name, q.To)
	if !ok {
		return fmt.Sprintf("arp,in_port=LOCAL,dl_src=%s,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=%s,arp_tpa=%s,arp_sha=%s",
			hostMAC, q.FromAddress, q.To, hostMAC), nil
	}
	return withL4(fmt.Sprintf("%s,in_port=LOCAL,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64", q.Proto, hostMAC, dst.MAC, q.FromAddress, q.To), q), nil
}

// withL4 completes an IPv4 packet with q's protocol header.
func withL4(pkt string, q v1.Query) string {
	if q.Proto == v1.ProtoICMP {
		return pkt + ",icmp_type=8,icmp_code=0"
	}
	sport := traceSrcPort
	if explain.DHCPRequest(q) {
		// What the dhcp stage takes.
		sport = dhcp.ClientPort
	}
	pkt = fmt.Sprintf("%s,%s_src=%d,%s_dst=%d", pkt, q.Proto, sport, q.Proto, q.DPort)
	if q.Proto == v1.ProtoTCP {
		// A SYN: a new TCP packet without one is also judged as its
		// reverse (flows/pipeline's policyBase), which a connection's
		// first packet never is.
		pkt += ",tcp_flags=syn"
	}
	return pkt
}

// traceSource is the port that sends q's packet and its network; for a
// packet from the host, no port and the destination's network.
func traceSource(o explain.Objects, q v1.Query) (model.Port, model.Network, error) {
	if !fromHost(q) {
		return o.Source(q)
	}
	n, ok := o.NetworkOf(q.To)
	if !ok {
		return model.Port{}, n, fmt.Errorf("%s is in no network", q.To)
	}
	return model.Port{}, n, nil
}

// stepLine is the head of one table's step in ofproto/trace's output:
// " 30. ip,reg0=0x1,nw_dst=10.62.0.0/24, priority 200, cookie 0x76030000..."
// (the match is absent for a flow that matches everything).
var stepLine = regexp.MustCompile(`^\s*(\d+)\.\s+(?:(.*), )?priority (\d+), cookie (0x[0-9a-f]+)\s*$`)

// noMatch tells a resubmit that found no flow: a rules pass no rule of
// which matched ("24. No match."), which does nothing.
func noMatch(act string) bool {
	table := strings.TrimLeft(act, "0123456789")
	rest, ok := strings.CutPrefix(table, ".")
	return ok && len(table) < len(act) && strings.TrimSuffix(strings.TrimSpace(rest), ".") == "No match"
}

// ctNext is conntrack's answer to each ct action that a traced packet
// meets (egress_ct, ingress_ct): the first packet of a new connection.
func ctNext() []string { return []string{"--ct-next", "trk,new", "--ct-next", "trk,new"} }

// explainTrace reads ofproto/trace's output for the packet made by
// tracePacket(q, s) and maps each step to its table and owner, and the last
// one to a verdict.
func explainTrace(q v1.Query, s datapath.State, packet, raw string) (v1.Result, error) {
	o := explain.Index(s)
	from, n, err := traceSource(o, q)
	if err != nil {
		return v1.Result{}, err
	}
	res := v1.Result{Backend: "ovs", Packet: packet, Raw: raw}
	owners := pipeline.NewOwners(pipelineModel(s))
	var last *v1.Step
	var rules []string // the rules that allowed the packet, in the order met
	for _, line := range strings.Split(raw, "\n") {
		if g := stepLine.FindStringSubmatch(line); g != nil {
			table, _ := strconv.Atoi(g[1])
			prio, _ := strconv.Atoi(g[3])
			cookie, err := strconv.ParseUint(g[4], 0, 64)
			if err != nil {
				return res, fmt.Errorf("trace step %q: cookie: %w", line, err)
			}
			step := v1.Step{Table: table, Stage: pipeline.StageName(uint8(table)), Priority: prio, Match: g[2]}
			if owner, ok := owners.Of(cookie); ok {
				step.Owner = owner.String()
			}
			if _, _, ok := owners.Rule(cookie); ok {
				rules = append(rules, step.Owner)
			}
			res.Steps = append(res.Steps, step)
			last = &res.Steps[len(res.Steps)-1]
			continue
		}
		act := strings.TrimSpace(line)
		switch {
		case last == nil || act == "":
			if last != nil && act == "" {
				last = nil // the blank line after the last table
			}
		case strings.HasPrefix(act, "->"):
			// OVS's note on what an action did; the action says enough,
			// except which port output:FIELD took.
			if port, ok := strings.CutPrefix(act, "-> output port is "); ok && len(last.Actions) > 0 {
				if i := len(last.Actions) - 1; strings.HasPrefix(last.Actions[i], "output:NXM_") {
					last.Actions[i] = outputTo(port)
				}
			}
		case noMatch(act):
		default:
			last.Actions = append(last.Actions, act)
		}
	}
	if len(res.Steps) == 0 {
		return res, fmt.Errorf("ofproto/trace shows no table: %s", firstLine(raw))
	}
	traceVerdict(&res, o, from, n, q)
	if res.Verdict != v1.Dropped && len(rules) > 0 {
		res.Summary += "; allowed by " + strings.Join(rules, " and ")
	}
	return res, nil
}

// outputTo is the output action to the port output:FIELD chose, as
// ovs-ofctl writes an output to it: LOCAL by name.
func outputTo(port string) string {
	if port == "65534" {
		return "LOCAL"
	}
	return "output:" + port
}

// traceVerdict reads the last step's actions: an output to a port delivers, to
// IN_PORT answers in place, to LOCAL hands to the host, a group floods, to
// the controller from the dhcp stage is the daemon's to answer, and
// nothing drops for the reason the dropping flow stands for.
func traceVerdict(res *v1.Result, o explain.Objects, from model.Port, n model.Network, q v1.Query) {
	s := &res.Steps[len(res.Steps)-1]
	byOfport := map[string]string{}
	for _, p := range o.State.Ports {
		byOfport[strconv.Itoa(p.Ofport)] = p.Name
	}
	var outs []string
	answered, local, group, daemon := false, false, false, false
	// Set by the actions before an output into the tunnel: in l2_forward,
	// which hands a unicast packet on to output.
	var tunDst netip.Addr
	for _, st := range res.Steps[:len(res.Steps)-1] {
		for _, a := range st.Actions {
			if dst, ok := tunnelDst(a); ok {
				tunDst = dst
			}
		}
	}
	for i, a := range s.Actions {
		switch {
		case strings.HasPrefix(a, "set_field:") && strings.HasSuffix(a, "->tun_dst"):
			tunDst, _ = tunnelDst(a)
		case a == "IN_PORT":
			answered = true
		case strings.HasPrefix(a, "controller(") && s.Table == int(pipeline.TableDHCP):
			daemon = true
		case a == "LOCAL" || a == "output:LOCAL":
			local = true
		case strings.HasPrefix(a, "group:"):
			group = true
		case strings.HasPrefix(a, "output:"):
			if i+1 < len(s.Actions) && strings.HasPrefix(s.Actions[i+1], ">> skipping") {
				continue
			}
			name, ok := byOfport[strings.TrimPrefix(a, "output:")]
			switch {
			case ok:
			case tunDst.IsValid():
				name = tunnelTarget(o.State, tunDst, q.To)
			default:
				name = "ofport " + strings.TrimPrefix(a, "output:")
			}
			tunDst = netip.Addr{}
			outs = append(outs, name)
		}
	}
	switch {
	case daemon:
		res.Verdict = v1.Answered
		res.Summary = explain.DHCPAnswered(n)
	case answered:
		res.Verdict = v1.Answered
		res.Summary = fmt.Sprintf("answered in place by the gateway of network %s (%s)", n.Name, q.To)
		if q.To == n.Gateway {
			break
		}
		if dn, ok := o.NetworkOf(q.To); ok {
			res.Summary = fmt.Sprintf("answered in place as the gateway %s of network %s, which router %s joins to %s", q.To, dn.Name, o.Router(n.Name, dn.Name), n.Name)
		}
	case local:
		res.Verdict = v1.ToHost
		res.Summary = fmt.Sprintf("handed to the host's IP stack, which masquerades it to %s (network %s masquerades)", q.To, n.Name)
	case group:
		res.Verdict = v1.Flooded
		res.Ports = outs
		res.Summary = fmt.Sprintf("broadcast to network %s: %s", n.Name, portList(outs))
		if strings.HasPrefix(res.Packet, "arp,") {
			res.Summary = fmt.Sprintf("no port of network %s has %s: port %s's ARP request for it is broadcast to %s, and nobody answers", n.Name, q.To, from.Name, portList(outs))
		}
	case len(outs) > 0:
		res.Verdict = v1.Delivered
		res.Ports = outs
		res.Summary = fmt.Sprintf("delivered to port %s", strings.Join(outs, ", "))
		if dn, ok := o.NetworkOf(q.To); ok && dn.Name != n.Name {
			res.Summary += fmt.Sprintf(" (network %s), routed from %s by router %s", dn.Name, n.Name, o.Router(n.Name, dn.Name))
		} else {
			res.Summary += fmt.Sprintf(" (network %s)", n.Name)
		}
	default:
		res.Verdict = v1.Dropped
		if r, ok := pipeline.DropReason(uint8(s.Table), uint16(s.Priority)); ok {
			res.Reason = r
			s.Drop = r
		}
		res.Summary = fmt.Sprintf("dropped in table %d (%s) by a flow of %s: %s", s.Table, s.Stage, s.Owner, v1.DropMeaning(res.Reason))
		if res.Reason == v1.DropPolicy {
			res.Summary = fmt.Sprintf("dropped in table %d (%s): %s", s.Table, s.Stage, policyDenial(o, from, q, uint8(s.Table)))
		}
	}
}

// policyDenial says whose security groups allow no rule for the packet:
// the sender's egress (egress_verdict) or the receiver's ingress — a port
// of this host with the destination address, since only those have an
// ingress side here.
func policyDenial(o explain.Objects, from model.Port, q v1.Query, table uint8) string {
	side, port := "egress", from.Name
	if table == pipeline.TableIngressVerdict {
		side, port = "ingress", q.To.String()
		for _, p := range o.State.Ports {
			if p.IP == q.To {
				port = p.Name
			}
		}
	}
	return fmt.Sprintf("no %s rule of port %s's security groups (%s) allows it", side, port, strings.Join(o.State.Policy.Ports[port].Names(), ", "))
}

// tunnelDst reads the address of a set_field:ADDR->tun_dst action.
func tunnelDst(action string) (netip.Addr, bool) {
	v, ok := strings.CutSuffix(strings.TrimPrefix(action, "set_field:"), "->tun_dst")
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(v)
	return a, err == nil
}

// tunnelTarget names what a packet sent into the tunnel to the host at
// underlay address host reaches: the remote port with address to there,
// else the host (a flood group's bucket).
func tunnelTarget(s datapath.State, host, to netip.Addr) string {
	name := host.String()
	for _, r := range s.Remote {
		if r.HostIP != host {
			continue
		}
		if r.Port.IP == to {
			if r.Port.Host == "" {
				return r.Port.Name
			}
			return r.Port.Name + " on " + r.Port.Host
		}
		if r.Port.Host != "" {
			name = r.Port.Host
		}
	}
	return "host " + name
}

// portList names where a broadcast went: local ports, and the other hosts
// it was tunnelled to ("host NAME", see tunnelTarget).
func portList(outs []string) string {
	var ports, hosts []string
	for _, o := range outs {
		if h, ok := strings.CutPrefix(o, "host "); ok {
			hosts = append(hosts, h)
		} else {
			ports = append(ports, o)
		}
	}
	var parts []string
	if len(ports) > 0 {
		parts = append(parts, "ports "+strings.Join(ports, ", "))
	}
	if len(hosts) > 0 {
		parts = append(parts, "hosts "+strings.Join(hosts, ", "))
	}
	if len(parts) == 0 {
		return "no other port"
	}
	return strings.Join(parts, " and ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
