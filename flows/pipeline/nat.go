package pipeline

import (
	"slices"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Floating IPs and port forwards (docs/NAT.md, "NAT on the host"):
// the host's nftables translate, on both backends, so nothing is
// translated in flows. The flows only carry the packets of translated
// connections to the host and back: those for a forwarded host port or a
// floating address to LOCAL, from any network, and the target ports'
// answers to LOCAL, from networks that do not masquerade too. The way
// from the host into a network is Network's, for every network: the host
// decides by conntrack what it sends there.

// Cookie kinds of the NAT flows.
const (
	// KindNAT is a port that floating IPs or forwards translate to;
	// object = its IPv4 address.
	KindNAT uint8 = 8
	// KindHostBound is what the host's NAT takes from the networks; object
	// = proto<<16 | host port for a forwarded port (below 2^24), or a
	// floating address (at least 1.0.0.0, since 0.0.0.0/8 is refused): the
	// two never meet.
	KindHostBound uint8 = 9
)

// prioNAT is the NAT flows' priority in route: above a masquerading
// network's catch-all, which sends the same packets the same way, so that
// the flows do not depend on the flag; below isolation and the routes to
// peers, which keep deciding for the networks' subnets.
const prioNAT = prioFallback + 10

// NAT is the flows of n's translations. networks resolves the target
// ports' networks; a rule whose network is not there has no flows (the
// controller hands the backend only its ports' rules).
func (p Pipeline) NAT(n model.NAT, networks map[string]model.Network) []flowset.Flow {
	var flows []flowset.Flow
	toLocal := toIngress(outLocal, setField(openflow.EthDst(p.HostMAC)))
	ip := openflow.EthType(ethIPv4)
	// The target ports' answers: a forward's from its target port, all of
	// a floating port's packets for outside its network (its own
	// connections leave through the host's SNAT).
	for _, f := range n.Floating {
		nw, ok := networks[f.Network]
		if !ok {
			continue
		}
		c := p.Space.Cookie(KindNAT, addrObject(f.IP), 0)
		flows = append(flows, flow(TableRoute, prioNAT, c,
			match(openflow.Reg(RegNetwork, uint32(nw.ID)), ip, openflow.IPv4Src(f.IP)), toLocal...))
		flows = append(flows, flow(TableRoute, prioNAT, p.Space.Cookie(KindHostBound, addrObject(f.Address), 0),
			match(ip, openflow.IPv4Dst(f.Address)), toLocal...))
	}
	for _, f := range n.Forwards {
		nw, ok := networks[f.Network]
		if !ok {
			continue
		}
		src, dst := openflow.TCPSrc(f.TargetPort), openflow.TCPDst(f.HostPort)
		if f.Proto == model.ProtoUDP {
			src, dst = openflow.UDPSrc(f.TargetPort), openflow.UDPDst(f.HostPort)
		}
		proto := openflow.IPProto(f.Proto)
		c := p.Space.Cookie(KindNAT, addrObject(f.IP), 0)
		flows = append(flows, flow(TableRoute, prioNAT, c,
			match(openflow.Reg(RegNetwork, uint32(nw.ID)), ip, openflow.IPv4Src(f.IP), proto, src), toLocal...))
		// From any network: a port reaching the forward through the host's
		// address (or host_ip).
		bound := []openflow.OXM{ip}
		if f.HostIP.IsValid() {
			bound = append(bound, openflow.IPv4Dst(f.HostIP))
		}
		bound = append(bound, proto, dst)
		flows = append(flows, flow(TableRoute, prioNAT, p.Space.Cookie(KindHostBound, uint32(f.Proto)<<16|uint32(f.HostPort), 0),
			match(bound...), toLocal...))
	}
	return dedup(flows)
}

// dedup drops repeated flows, keeping the first: two forwards to one
// port and target port get one answer's way.
func dedup(flows []flowset.Flow) []flowset.Flow {
	seen := map[string]bool{}
	return slices.DeleteFunc(flows, func(f flowset.Flow) bool {
		text := openflow.FormatFlowMod(&openflow.FlowMod{Cookie: f.Cookie, TableID: f.Table, Priority: f.Priority,
			Match: f.Match, Instructions: f.Instructions})
		had := seen[text]
		seen[text] = true
		return had
	})
}
