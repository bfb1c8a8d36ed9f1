package pipeline

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Security groups (docs/DESIGN.md §8.1, docs/PIPELINE.md): each side of a
// guarded port tracks the packet in its network's conntrack zone, lets
// replies and related packets through, and judges every other packet —
// new ones and the original direction of established ones, so that a rule
// removed cuts its connections at once — by one pass over the rules per
// (port's group, peer's group) pair: the port's flow loads its group
// (RegOwnGroup) and resubmits to the peer table, whose flow for the peer's
// address resubmits once with RegPeerGroup 0 (the rules with a CIDR or any
// peer) and once per group of the address. A rule is thus one flow per
// port mask, an address two flows, a port four: O(ports + members +
// rules), and a membership change touches only the address's flows. The
// pickup window (see policyBase) adds two per port and, in a cluster, one
// per address (remote_sender's).

// prioRule is the priority of a group's first rule; rule i has prioRule-i,
// so that within one pass the first matching rule by index decides and
// counts, as in the Linux backend's chains and model.Policy.Allows.
const prioRule uint16 = 2000

// ruleObject is the cookie object of a group's rule (KindRule): the
// index below v1.MaxRules fits ruleIndexMask.
func ruleObject(groupID, index int) uint32 { return uint32(groupID)<<10 | uint32(index) }

const ruleIndexMask = 1<<10 - 1

// PortMask is one value/mask pair of a port range's cover.
type PortMask struct{ Value, Mask uint16 }

// PortMasks covers lo..hi exactly, with the fewest value/mask pairs: the
// largest aligned block at each step. 0, 0 is every port: nil.
func PortMasks(lo, hi uint16) []PortMask {
	if lo == 0 && hi == 0 {
		return nil
	}
	var out []PortMask
	for v := uint32(lo); v <= uint32(hi); {
		size := uint32(1)
		for v&(2*size-1) == 0 && v+2*size-1 <= uint32(hi) {
			size *= 2
		}
		out = append(out, PortMask{Value: uint16(v), Mask: uint16(^(size - 1))})
		v += size
	}
	return out
}

// policyBase is the skeleton of the security groups' tables: ports
// without groups pass both sides untracked, replies and related packets
// of tracked connections pass, a packet no rule allowed is dropped, and
// output commits what a side allowed new.
//
// Conntrack does not outlive ovs-vswitchd: after a restart a connection's
// next packet is +new, and if it comes from the side that did not open it
// (a download's data) the rules judge it as a connection the wrong way
// round. So while the pickup window is open (pickup: Model.Pickup) a +new
// TCP packet without SYN, which opens nothing, is judged both ways: as it
// is, and swapped, by the rules that would have judged its reverse (the
// receiver's egress, the sender's ingress). Both sides must take it the
// same way — one allowing it as it is and the other only as its reverse
// would let through what no connection allowed. Taken as the reverse, it
// is committed as it is with ctMarkFlip: the entry's reply direction is
// then the opener's, which is judged, and its original direction passes
// as replies do, but never a SYN, which would open a connection the rules
// deny. A connection a rule change cut has no allowing reverse either, so
// it stays cut. Outside the window such a packet is judged only as it is,
// from a local port or from the tunnel: otherwise any peer a guarded
// port's egress lets it answer could probe it with bare ACKs through
// default-deny (docs/PIPELINE.md); the flipped entries picked up stay,
// and keep passing by the ACL tables' flows, which are always there.
//
// A packet from the tunnel skips the egress side, whose verdict does not
// cross hosts: while the window is open the receiving host judges the
// remote sender's side of the reverse itself (remote_sender, see
// Member), from the sender's groups, which Members holds for every host's
// ports, and the rules it has of every group. Trusting the sending host
// instead would not do: it passes a +new packet its egress allows forward
// without asking whether its ingress allows the reverse, so the receiver
// would flip on its own egress alone — a non-SYN packet neither direction
// allows delivered, a connection a rule change cut revived by a restart.
// A source of no group is an unguarded sender's, which may flip as an
// unguarded local sender's does (egress_ct's miss). remote_sender's flows
// are pickup flows like the rest: outside the window nothing resubmits to
// the table.
func (p Pipeline) policyBase(c uint64, pickup bool) []flowset.Flow {
	tracked := func(bits uint32) openflow.OXM {
		return openflow.CtState(openflow.CtStateTracked|bits, openflow.CtStateTracked|bits)
	}
	reply := openflow.CtState(openflow.CtStateTracked|openflow.CtStateEstablished|openflow.CtStateReply,
		openflow.CtStateTracked|openflow.CtStateEstablished|openflow.CtStateReply)
	original := openflow.CtState(openflow.CtStateTracked|openflow.CtStateEstablished,
		openflow.CtStateTracked|openflow.CtStateEstablished|openflow.CtStateReply)
	notNew := openflow.CtState(openflow.CtStateTracked, openflow.CtStateTracked|openflow.CtStateNew)
	unflipped, flipped := openflow.CtMark(0, ctMarkFlip), openflow.CtMark(ctMarkFlip, ctMarkFlip)
	noSYN := openflow.TCPFlags(0, openflow.TCPFlagSYN)
	// flags matches the bits of RegFlags in set to 1, those in unset to 0.
	flags := func(set, unset uint32) openflow.OXM { return openflow.RegMasked(RegFlags, set, set|unset) }
	allow, allowRev := uint32(1)<<FlagAllow, uint32(1)<<FlagAllowRev
	commit := func(zone int, mark bool) openflow.Action {
		ct := openflow.NXCT{Flags: openflow.NXCTCommit, RecircTable: openflow.NXCTNoRecirc,
			ZoneSrc: openflow.SubField{Field: regRef(zone), NBits: 16}}
		if mark {
			ct.Actions = []openflow.Action{openflow.NXRegLoad{Dst: openflow.SubField{Field: openflow.RefOf("ct_mark"), NBits: 1}, Value: 1}}
		}
		return ct
	}
	src, dst, flip := uint32(1)<<FlagCommitSrc, uint32(1)<<FlagCommitDst, uint32(1)<<FlagFlip
	ip := openflow.EthType(ethIPv4)
	tcp := openflow.IPProto(model.ProtoTCP)
	judged := []openflow.Action{loadFlag(FlagAllow, 0), loadFlag(FlagAllowRev, 0)}
	out := outputChosen()
	// An unguarded sender allows any reverse: with the window open, its
	// egress says so.
	unguarded := []openflow.Instruction{gotoTable(TableEgressOut)}
	if pickup {
		unguarded = []openflow.Instruction{apply(loadFlag(FlagSrcRev, 1)), gotoTable(TableEgressOut)}
	}
	flows := []flowset.Flow{
		flow(TableEgressCT, prioMiss, c, match(), unguarded...),
		flow(TableEgressACL, prioExact, c, match(reply, unflipped), gotoTable(TableEgressOut)),
		flow(TableEgressACL, prioExact, c, match(ip, tcp, original, flipped, noSYN), gotoTable(TableEgressOut)),
		flow(TableEgressACL, prioExact, c, match(tracked(openflow.CtStateRelated)), gotoTable(TableEgressOut)),
		flow(TableEgressACL, prioMiss, c, match(), gotoTable(TableEgressVerdict)),
		flow(TableEgressPeer, prioMiss, c, match(), apply(peerPasses(TableEgressRules, nil)...)),
		flow(TableEgressVerdict, prioExact, c, match(flags(allow, 0), tracked(openflow.CtStateNew)),
			apply(append(judged, loadFlag(FlagCommitSrc, 1))...), gotoTable(TableEgressOut)),
		flow(TableEgressVerdict, prioGuard, c, match(flags(allow, 0)), apply(judged...), gotoTable(TableEgressOut)),
		drop(TableEgressVerdict, prioMiss, c),
		flow(TableEgressOut, prioFallback, c, match(openflow.RegMasked(RegFlags, 1<<FlagRouted, 1<<FlagRouted)), gotoTable(TableRoute)),
		flow(TableEgressOut, prioMiss, c, match(), gotoTable(TableL2)),

		flow(TableIngressCT, prioMiss, c, match(), gotoTable(TableOutput)),
		flow(TableIngressACL, prioExact, c, match(reply, unflipped), gotoTable(TableOutput)),
		flow(TableIngressACL, prioExact, c, match(ip, tcp, original, flipped, noSYN), gotoTable(TableOutput)),
		flow(TableIngressACL, prioExact, c, match(tracked(openflow.CtStateRelated)), gotoTable(TableOutput)),
		flow(TableIngressACL, prioMiss, c, match(), gotoTable(TableIngressVerdict)),
		flow(TableIngressPeer, prioMiss, c, match(), apply(peerPasses(TableIngressRules, nil)...)),
		flow(TableIngressVerdict, prioExact, c, match(flags(allow, flip), tracked(openflow.CtStateNew)),
			apply(loadFlag(FlagCommitDst, 1)), gotoTable(TableOutput)),
		flow(TableIngressVerdict, prioGuard, c, match(flags(allow, 0), notNew), gotoTable(TableOutput)),
		drop(TableIngressVerdict, prioMiss, c),

		flow(TableOutput, prioExact, c, match(ip, flags(src|dst, 0)), apply(commit(RegSrcZone, false), commit(RegDstZone, false), out)),
		flow(TableOutput, prioGuard, c, match(ip, flags(src, 0)), apply(commit(RegSrcZone, false), out)),
		flow(TableOutput, prioGuard, c, match(ip, flags(dst, 0)), apply(commit(RegDstZone, false), out)),
		flow(TableOutput, prioMiss, c, match(), apply(out)),
	}
	if !pickup {
		return flows
	}
	flows = append(flows,
		flow(TableEgressVerdict, prioBoth, c, match(flags(allow|allowRev, 0)),
			apply(append(judged, loadFlag(FlagCommitSrc, 1), loadFlag(FlagSrcRev, 1))...), gotoTable(TableEgressOut)),
		flow(TableEgressVerdict, prioReverse, c, match(flags(allowRev, 0)),
			apply(append(judged, loadFlag(FlagCommitSrc, 1), loadFlag(FlagSrcRev, 1), loadFlag(FlagFlip, 1))...), gotoTable(TableEgressOut)),
		pickupMark(c),
		flow(TableOutput, prioBoth, c, match(ip, flags(src|dst|flip, 0)), apply(commit(RegSrcZone, true), commit(RegDstZone, true), out)),
		flow(TableOutput, prioReverse, c, match(ip, flags(src|flip, 0)), apply(commit(RegSrcZone, true), out)),
		flow(TableOutput, prioReverse, c, match(ip, flags(dst|flip, 0)), apply(commit(RegDstZone, true), out)),
	)
	if p.Tunnel != 0 {
		flows = append(flows, flow(TableRemoteSender, prioFallback, c, match(openflow.InPort(p.Tunnel)), apply(loadFlag(FlagSrcRev, 1))))
	}
	return flows
}

// pickupMark is the ingress side's verdict on a packet taken as its
// reverse: a flow of the skeleton only an open pickup window has.
func pickupMark(c uint64) flowset.Flow {
	both := uint32(1)<<FlagAllowRev | 1<<FlagSrcRev
	return flow(TableIngressVerdict, prioReverse, c, match(openflow.RegMasked(RegFlags, both, both)),
		apply(loadFlag(FlagCommitDst, 1), loadFlag(FlagFlip, 1)), gotoTable(TableOutput))
}

// PickupMark is the table, cookie and priority of the one flow of the
// skeleton that only an open pickup window has (see policyBase): a switch
// whose skeleton holds it had the window open, and a switch without any
// flow of the skeleton's in that table holds none of ours. The skeleton
// comes and goes whole, in one bundle.
func (p Pipeline) PickupMark() (table uint8, cookie uint64, priority uint16) {
	f := pickupMark(p.Space.Cookie(KindBase, 0, 0))
	return f.Table, f.Cookie, f.Priority
}

// ctMarkFlip is the ct_mark bit of a connection committed as the reverse
// of its opening (see policyBase).
const ctMarkFlip uint32 = 1

// Priorities of the verdict and output tables beside the shared ones:
// both ways allowed above one way, the reverse between the exact case and
// the guard.
const (
	prioBoth    = prioExact + 10
	prioReverse = prioGuard + 10
)

// outputChosen outputs to the port l2_forward or route chose (RegOutPort).
func outputChosen() openflow.Action {
	return openflow.NXOutputReg{Src: openflow.SubField{Field: regRef(RegOutPort), NBits: 16}, MaxLen: openflow.OutputRegMaxLen}
}

// outLocal is the bridge's LOCAL port as RegOutPort holds it: output:FIELD
// reads an OpenFlow 1.0 port number, 16 bits.
const outLocal uint32 = 0xfffe

// toIngress hands a packet whose output port is chosen to the ingress
// side of that port, after the actions before.
func toIngress(ofport uint32, before ...openflow.Action) []openflow.Instruction {
	return []openflow.Instruction{apply(append(before, setField(openflow.Reg(RegOutPort, ofport)))...), gotoTable(TableIngressCT)}
}

// PortACL is a guarded local port's flows: into conntrack on both sides,
// in its network's zone, and its groups' passes over the rules (all its
// groups, so that a rule change leaves the port's flows alone; only
// whether its egress is limited at all depends on the rules), and while
// the pickup window is open (pickup, see policyBase) the judgement of a
// +new TCP packet without SYN both ways. nil for a port without groups or
// ofport.
func (p Pipeline) PortACL(pol model.Policy, port model.Port, n model.Network, pickup bool) []flowset.Flow {
	if !pol.Guarded(port.Name) || port.Ofport <= 0 {
		return nil
	}
	c := p.Space.Cookie(KindPort, uint32(port.Ofport), 0)
	in := openflow.InPort(uint32(port.Ofport))
	out := openflow.Reg(RegOutPort, uint32(port.Ofport))
	trk := openflow.CtState(openflow.CtStateTracked, openflow.CtStateTracked)
	ip := openflow.EthType(ethIPv4)
	var own []uint32
	for _, g := range pol.Ports[port.Name].Names() {
		if id := pol.Groups[g].ID; id > 0 {
			own = append(own, uint32(id))
		}
	}
	egress := []openflow.Action{loadFlag(FlagAllow, 1)}
	if pol.EgressLimited(port.Name) {
		egress = ownPasses(TableEgressPeer, own)
	}
	ingress := ownPasses(TableIngressPeer, own)
	flows := []flowset.Flow{
		flow(TableEgressCT, prioFallback, c, match(in, ip),
			apply(setField(openflow.Reg(RegSrcZone, uint32(n.ID))), openflow.NXCT{Zone: uint16(n.ID), RecircTable: TableEgressACL})),
		flow(TableEgressACL, prioFallback, c, match(in, trk), applyThen(egress, TableEgressVerdict)...),
		flow(TableIngressCT, prioFallback, c, match(ip, out),
			apply(setField(openflow.Reg(RegDstZone, uint32(n.ID))), openflow.NXCT{Zone: uint16(n.ID), RecircTable: TableIngressACL})),
		flow(TableIngressACL, prioFallback, c, match(out, trk), applyThen(ingress, TableIngressVerdict)...),
	}
	if !pickup {
		return flows
	}
	// A +new TCP packet without SYN: first the rules of the other
	// direction on the packet swapped, kept in FlagAllowRev.
	newNoSYN := []openflow.OXM{ip, openflow.IPProto(model.ProtoTCP),
		openflow.CtState(openflow.CtStateTracked|openflow.CtStateNew, openflow.CtStateTracked|openflow.CtStateNew),
		openflow.TCPFlags(0, openflow.TCPFlagSYN)}
	reversed := func(as []openflow.Action) []openflow.Action {
		out := append(swapped(), as...)
		return append(append(out, swapped()...), keepReverse()...)
	}
	// From the tunnel no egress side said whether the sender allows the
	// reverse: remote_sender judges it here (see policyBase).
	var sender []openflow.Action
	if p.Tunnel != 0 {
		sender = []openflow.Action{resubmit(TableRemoteSender)}
	}
	return append(flows,
		flow(TableEgressACL, prioGuard, c, match(append([]openflow.OXM{in}, newNoSYN...)...),
			applyThen(append(reversed(ingress), egress...), TableEgressVerdict)...),
		flow(TableIngressACL, prioGuard, c, match(append(newNoSYN, out)...),
			applyThen(slices.Concat(sender, reversed(egress), ingress), TableIngressVerdict)...),
	)
}

// swapped exchanges a TCP packet's addresses and ports, through the stack:
// done twice it is the packet again, and between the two the rules judge
// the packet's reverse. No commit point lies between, so the datapath
// never sees the swap.
func swapped() []openflow.Action {
	var as []openflow.Action
	for _, pair := range [][2]openflow.FieldRef{{nxmIPSrc, nxmIPDst}, {nxmTCPSrc, nxmTCPDst}} {
		a, b := pair[0], pair[1]
		as = append(as,
			openflow.NXStackPush{Field: openflow.SubField{Field: a, NBits: uint16(a.Len) * 8}},
			openflow.NXStackPush{Field: openflow.SubField{Field: b, NBits: uint16(b.Len) * 8}},
			openflow.NXStackPop{Field: openflow.SubField{Field: a, NBits: uint16(a.Len) * 8}},
			openflow.NXStackPop{Field: openflow.SubField{Field: b, NBits: uint16(b.Len) * 8}})
	}
	return as
}

// keepReverse moves the reverse's verdict to FlagAllowRev, for the
// packet's own passes to start from nothing allowed.
func keepReverse() []openflow.Action {
	return []openflow.Action{
		openflow.NXRegMove{NBits: 1, SrcOfs: FlagAllow, DstOfs: FlagAllowRev, Src: regRef(RegFlags), Dst: regRef(RegFlags)},
		loadFlag(FlagAllow, 0),
	}
}

// GroupRules is the flows of a group's rules under pol: one per port mask
// of each rule (one for a rule without ports), in its direction's rules
// table. A rule whose remote_group is no group of pol allows nothing and
// has none. nil for a group pol does not have.
func (p Pipeline) GroupRules(pol model.Policy, name string) []flowset.Flow {
	g, ok := pol.Groups[name]
	if !ok || g.ID <= 0 {
		return nil
	}
	allow := apply(loadFlag(FlagAllow, 1))
	var flows []flowset.Flow
	for i, r := range g.Rules {
		var peer uint32
		if r.RemoteGroup != "" {
			if peer = uint32(pol.Groups[r.RemoteGroup].ID); peer == 0 {
				continue
			}
		}
		table, peerPrefix := TableIngressRules, openflow.IPv4SrcPrefix
		if r.Direction == model.Egress {
			table, peerPrefix = TableEgressRules, openflow.IPv4DstPrefix
		}
		fields := []openflow.OXM{openflow.Reg(RegOwnGroup, uint32(g.ID)), openflow.Reg(RegPeerGroup, peer), openflow.EthType(ethIPv4)}
		if r.Proto != model.ProtoAny {
			fields = append(fields, openflow.IPProto(r.Proto))
		}
		// A /0 is any peer: no match on the address at all.
		if r.Remote.IsValid() && r.Remote.Bits() > 0 {
			fields = append(fields, peerPrefix(r.Remote))
		}
		c := p.Space.Cookie(KindRule, ruleObject(g.ID, i), 0)
		prio := prioRule - uint16(i)
		masks := PortMasks(r.PortMin, r.PortMax)
		if masks == nil {
			flows = append(flows, flow(table, prio, c, match(fields...), allow))
			continue
		}
		dport := openflow.TCPDstMasked
		if r.Proto == model.ProtoUDP {
			dport = openflow.UDPDstMasked
		}
		for _, m := range masks {
			flows = append(flows, flow(table, prio, c, match(append(slices.Clone(fields), dport(m.Value, m.Mask))...), allow))
		}
	}
	return flows
}

// Member is the flows of an address in pol's groups: as the peer of
// either side, one pass over the rules for each of its groups after the
// pass every peer gets; in a cluster while the pickup window is open
// (pickup, see policyBase) also, as the source of a packet from the
// tunnel, its groups' ingress passes on the packet swapped, whose verdict
// is FlagSrcRev. nil for an address of no group. The last flow is for
// other hosts' ports, but the policy does not tell them from this host's:
// a local address's never matches, since no packet of a local port comes
// from the tunnel.
func (p Pipeline) Member(pol model.Policy, addr netip.Addr, pickup bool) []flowset.Flow {
	var peer []uint32
	for _, g := range pol.GroupsOf(addr) {
		if id := pol.Groups[g].ID; id > 0 {
			peer = append(peer, uint32(id))
		}
	}
	if len(peer) == 0 || !addr.Is4() {
		return nil
	}
	slices.Sort(peer)
	c := p.Space.Cookie(KindMember, addrObject(addr), 0)
	ip := openflow.EthType(ethIPv4)
	flows := []flowset.Flow{
		flow(TableEgressPeer, prioFallback, c, match(ip, openflow.IPv4Dst(addr)), apply(peerPasses(TableEgressRules, peer)...)),
		flow(TableIngressPeer, prioFallback, c, match(ip, openflow.IPv4Src(addr)), apply(peerPasses(TableIngressRules, peer)...)),
	}
	if pickup && p.Tunnel != 0 {
		as := slices.Concat([]openflow.Action{loadFlag(FlagAllow, 0)}, swapped(), ownPasses(TableIngressPeer, peer), swapped(), keepSrcRev())
		flows = append(flows, flow(TableRemoteSender, prioExact, c, match(openflow.InPort(p.Tunnel), ip, openflow.IPProto(model.ProtoTCP), openflow.IPv4Src(addr)), apply(as...)))
	}
	return flows
}

// keepSrcRev moves the remote sender's verdict on the reverse to
// FlagSrcRev, for the receiver's passes to start from nothing allowed.
func keepSrcRev() []openflow.Action {
	return []openflow.Action{
		openflow.NXRegMove{NBits: 1, SrcOfs: FlagAllow, DstOfs: FlagSrcRev, Src: regRef(RegFlags), Dst: regRef(RegFlags)},
		loadFlag(FlagAllow, 0),
	}
}

// Policy is the flows of every group's rules and every member address of
// pol, pickup as Model.Pickup; the ports' flows are PortACL's.
func (p Pipeline) Policy(pol model.Policy, pickup bool) []flowset.Flow {
	var flows []flowset.Flow
	for _, name := range slices.Sorted(maps.Keys(pol.Groups)) {
		flows = append(flows, p.GroupRules(pol, name)...)
	}
	return append(flows, p.Members(pol, pickup)...)
}

// Members is Member's flows of every member address of pol: all the
// pickup window changes of the policy's flows (remote_sender's, in a
// cluster), which closing it compiles both ways.
func (p Pipeline) Members(pol model.Policy, pickup bool) []flowset.Flow {
	var flows []flowset.Flow
	var addrs []netip.Addr
	for _, members := range pol.Members {
		addrs = append(addrs, members...)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range slices.Compact(addrs) {
		flows = append(flows, p.Member(pol, a, pickup)...)
	}
	return flows
}

// ownPasses loads each of a port's groups and resubmits to the peer table.
func ownPasses(peerTable uint8, groups []uint32) []openflow.Action {
	var as []openflow.Action
	for _, g := range groups {
		as = append(as, setField(openflow.Reg(RegOwnGroup, g)), resubmit(peerTable))
	}
	return as
}

// peerPasses is the passes of a peer over the rules table: with no group
// (rules of any or a CIDR peer), then with each of its groups.
func peerPasses(rulesTable uint8, groups []uint32) []openflow.Action {
	as := []openflow.Action{setField(openflow.Reg(RegPeerGroup, 0)), resubmit(rulesTable)}
	for _, g := range groups {
		as = append(as, setField(openflow.Reg(RegPeerGroup, g)), resubmit(rulesTable))
	}
	return as
}

// applyThen is the actions, if any, then on to table.
func applyThen(as []openflow.Action, table uint8) []openflow.Instruction {
	if len(as) == 0 {
		return []openflow.Instruction{gotoTable(table)}
	}
	return []openflow.Instruction{apply(as...), gotoTable(table)}
}

func resubmit(table uint8) openflow.Action {
	return openflow.NXResubmitTable{InPort: openflow.ResubmitInPort, Table: table}
}

// addrObject is an IPv4 address as a cookie object.
func addrObject(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
