// Package pipeline compiles ovs-vnet's model — networks, routers, ports — into
// the flows and groups of the integration bridge. It is pure: no I/O, the same
// model always gives the same flows, and each object's flows can be compiled
// on their own so that a change to one port sends only that port's flows.
//
// The pipeline is declared as data (Stages, the registers below); docs/PIPELINE.md
// describes it for operators, and the golden tests show every flow as
// ovs-ofctl prints it.
package pipeline

import "github.com/ovs-vnet/ovs-vnet/api/v1"

// Table numbers. Gaps leave room for stages to come without renumbering the
// tables operators already know.
const (
	TableClassify   uint8 = 0
	TableSpoofGuard uint8 = 10
	TableFromHost   uint8 = 15
	TableGateway    uint8 = 20
	TableRoute      uint8 = 30
	TablePathMTU    uint8 = 35
	TableNeighbor   uint8 = 40
	TableL2         uint8 = 50
)

// TableDHCP takes the DHCP a port sends (spoof_guard sends it here) to the
// daemon through the port's meter, which answers it (docs/DESIGN.md §8.4).
const TableDHCP uint8 = 12

// Tables of security groups (docs/DESIGN.md §8.1): the egress side of
// the sending port, between the gateway and routing, and the ingress side
// of the receiving port, between l2_forward and the output. Each side
// tracks the packet in conntrack in its port's network's zone, lets
// replies and related packets through, and judges the rest by one pass
// per (port's group, peer's group) pair over the rules; only output
// commits, once both sides have allowed a new connection.
const (
	TableEgressCT       uint8 = 21 // a guarded port's packets into conntrack, in its network's zone
	TableEgressACL      uint8 = 22 // replies pass; the port's groups, one pass each (RegOwnGroup)
	TableEgressPeer     uint8 = 23 // the destination's groups, one pass each (RegPeerGroup)
	TableEgressRules    uint8 = 24 // egress rules, by (own group, peer group): FlagAllow
	TableEgressVerdict  uint8 = 25 // allowed on, new ones to be committed; the rest dropped (policy)
	TableEgressOut      uint8 = 26 // to route or l2_forward, as gateway decided (FlagRouted)
	TableIngressCT      uint8 = 60 // a guarded destination port's packets into conntrack, in its network's zone
	TableIngressACL     uint8 = 61 // as egress_acl, for the destination port (RegOutPort)
	TableIngressPeer    uint8 = 62 // the source's groups, one pass each (RegPeerGroup)
	TableIngressRules   uint8 = 63 // ingress rules, by (own group, peer group): FlagAllow
	TableIngressVerdict uint8 = 64 // as egress_verdict
	TableRemoteSender   uint8 = 65 // from the tunnel: the sender's own ingress passes on the packet's reverse (FlagSrcRev)
	TableOutput         uint8 = 70 // commit what both sides allowed new; out of RegOutPort
)

// RegNetwork is the register (reg0) holding the ID of the network a packet
// is in: the in_port's network from classification on, the destination
// network once routed.
const RegNetwork = 0

// RegFlags is the register (reg1) whose bits carry one stage's verdict on
// a packet to a later stage.
const RegFlags = 1

// Bits of RegFlags.
const (
	// FlagTooBig: route found a routed packet longer than the destination
	// network's MTU (check_pkt_larger), for path_mtu to act on.
	FlagTooBig = 0
	// FlagAllow: a rule of the side being judged allows the packet.
	FlagAllow = 1
	// FlagCommitSrc and FlagCommitDst: the egress or the ingress side
	// allowed a new connection, which output commits in that side's zone.
	FlagCommitSrc = 2
	FlagCommitDst = 3
	// FlagRouted: gateway sent the packet to route, which egress_out
	// resumes after the egress side.
	FlagRouted = 4
	// FlagAllowRev: a rule of the side being judged allows the packet's
	// reverse (a +new TCP packet without SYN: its receiver may have opened
	// the connection before conntrack was lost, e.g. by an ovs-vswitchd
	// restart).
	FlagAllowRev = 5
	// FlagSrcRev: the egress side allows the reverse (or has no groups):
	// the ingress side may take the packet as its own port's connection.
	// For a packet from the tunnel, which skips the egress side, the
	// receiving host sets it itself (remote_sender).
	FlagSrcRev = 6
	// FlagFlip: the sides took the packet as its reverse; output commits
	// it with ctMarkFlip.
	FlagFlip = 7
)

// Registers of the security groups' tables, beside RegNetwork and
// RegFlags.
const (
	// RegSrcZone (reg2) is the conntrack zone of the egress side: the
	// sending port's network ID.
	RegSrcZone = 2
	// RegOutPort (reg3, bits 0-15) is the port l2_forward or route chose,
	// for ingress and output: an ofport, or LOCAL (0xfffe).
	RegOutPort = 3
	// RegDstZone (reg4) is the conntrack zone of the ingress side: the
	// destination port's network ID.
	RegDstZone = 4
	// RegOwnGroup (reg5) and RegPeerGroup (reg6) are the group IDs of one
	// rules pass: one of the judged port's groups, and one of the peer
	// address's groups or 0, the pass of remote CIDR rules.
	RegOwnGroup  = 5
	RegPeerGroup = 6
)

// Stage describes one table: what it does and why it drops.
type Stage struct {
	Table   uint8
	Name    string
	Purpose string
	// Drops maps the priority of each dropping flow in the table to its
	// reason: a flow of the table drops exactly when its priority is here,
	// which the tests check on the compiled flows (stages_test.go).
	Drops map[uint16]string
}

// Priorities, per meaning rather than per table, so that the order of the
// cases within a table reads the same everywhere.
const (
	prioMiss     uint16 = 0   // the table's default
	prioFallback uint16 = 100 // a port's or network's catch-all
	prioGuard    uint16 = 150 // exceptions to the catch-all
	prioExact    uint16 = 200 // the specific case
	// prioDHCP: a port's DHCP, above its own-MAC and -address flows
	// (prioExact), since a client without an address sends from 0.0.0.0.
	prioDHCP uint16 = 210
	// prioDHCPServer: DHCP server messages from any port, above all of a
	// port's flows, its DHCP intercept included.
	prioDHCPServer uint16 = 220
)

// Stages lists the pipeline's tables in the order packets traverse them.
func Stages() []Stage {
	return []Stage{
		{TableClassify, "classify", "in_port → the port's network (reg0); the host's port goes to from_host; the tunnel's VNI → its network, straight to l2_forward",
			map[uint16]string{prioMiss: v1.DropUnknownPort, prioGuard: v1.DropUnknownVNI}},
		{TableSpoofGuard, "spoof_guard", "DHCP server messages (UDP 67 → 68) from any port dropped; only the port's own MAC and IPv4 address (and ARP sender) pass; DHCP from the port's MAC, from any address, → dhcp",
			map[uint16]string{prioFallback: v1.DropSpoofed, prioGuard: v1.DropIPv6, prioDHCPServer: v1.DropDHCPServer}},
		{TableDHCP, "dhcp", "DHCP from a port → the daemon through the port's meter (in_port), which answers with a packet-out to that port; networks with dhcp false drop it (reg0)",
			map[uint16]string{prioMiss: v1.DropDHCPOff, prioGuard: v1.DropDHCPOff}},
		{TableFromHost, "from_host", "what the host sends into a network (masquerade replies, translated connections), by destination subnet; ARP for ports answered",
			map[uint16]string{prioMiss: v1.DropHost}},
		{TableGateway, "gateway", "ARP and ping for gateway addresses answered in place; IPv4 to the gateway MAC is to be routed (reg1 bit 4); on to the egress side",
			nil},
		{TableEgressCT, "egress_ct", "IPv4 of a port with security groups → conntrack in its network's zone (reg2); other packets skip the egress side",
			nil},
		{TableEgressACL, "egress_acl", "replies (the original direction of a flipped connection's TCP without SYN) and related packets pass; else the port's open egress allows (reg1 bit 1), or one pass over the rules per group of the port (reg5); a new TCP packet without SYN also over its ingress rules, swapped (reg1 bit 5)",
			nil},
		{TableEgressPeer, "egress_peer", "per pass: the rules with no peer group, then one pass per group of the destination address (reg6)",
			nil},
		{TableEgressRules, "egress_rules", "egress rules by (port's group, peer's group): a match allows (reg1 bit 1); the first rule by index counts",
			nil},
		{TableEgressVerdict, "egress_verdict", "allowed packets on, new connections to be committed (reg1 bit 2), those allowed swapped also flippable (bit 6) or flipped (bit 7); the rest dropped",
			map[uint16]string{prioMiss: v1.DropPolicy}},
		{TableEgressOut, "egress_out", "to route when gateway said so (reg1 bit 4), else to l2_forward",
			nil},
		{TableRoute, "route", "between networks a router joins: the destination network (reg0) and whether the packet is too big for it (reg1 bit 0); masquerade networks, forwarded host ports, floating addresses and the answers of their target ports → the host (LOCAL in reg3, to the ingress side)",
			map[uint16]string{prioGuard: v1.DropIsolated, prioMiss: v1.DropNoRoute}},
		{TablePathMTU, "path_mtu", "a copy of a packet too big for the destination network → the controller (metered), which answers ICMP fragmentation needed; routed on: TTL decremented, source MAC the destination's gateway",
			map[uint16]string{prioMiss: v1.DropNoRoute}},
		{TableNeighbor, "neighbor", "routed packets get the destination port's MAC (a remote port's too)",
			map[uint16]string{prioMiss: v1.DropNoNeighbor}},
		{TableL2, "l2_forward", "the port of the destination MAC (reg3), or the tunnel to a remote port's host, on to the ingress side; broadcast and multicast → the network's flood group",
			map[uint16]string{prioMiss: v1.DropUnknownDst}},
		{TableIngressCT, "ingress_ct", "IPv4 to a port with security groups → conntrack in its network's zone (reg4); other packets skip the ingress side",
			nil},
		{TableIngressACL, "ingress_acl", "as egress_acl: a new TCP packet without SYN also over the port's egress rules, swapped (reg1 bit 5)",
			nil},
		{TableIngressPeer, "ingress_peer", "per pass: the rules with no peer group, then one pass per group of the source address (reg6)",
			nil},
		{TableIngressRules, "ingress_rules", "ingress rules by (port's group, peer's group): a match allows (reg1 bit 1); the first rule by index counts",
			nil},
		{TableIngressVerdict, "ingress_verdict", "allowed packets on, new connections to be committed (reg1 bit 3): as they are if both sides allow them so, flipped (bit 7) if both allow the reverse; the rest dropped",
			map[uint16]string{prioMiss: v1.DropPolicy}},
		{TableRemoteSender, "remote_sender", "resubmitted from ingress_acl for a new TCP packet without SYN: from the tunnel, per member address (source), the packet swapped through the sender's groups' ingress passes, that verdict in reg1 bit 6; another source from the tunnel has no groups: bit 6",
			nil},
		{TableOutput, "output", "commits the connections a side allowed new, in that side's zone (flipped ones with ct_mark 1), and outputs to the chosen port (reg3)",
			nil},
	}
}

// DropReason names why the flow at table and priority drops, if it does.
func DropReason(table uint8, priority uint16) (string, bool) {
	for _, s := range Stages() {
		if s.Table == table {
			r, ok := s.Drops[priority]
			return r, ok
		}
	}
	return "", false
}
