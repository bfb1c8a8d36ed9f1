package model

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Policy is everything the datapath enforces of security groups: the
// controller computes it from the desired state and hands it whole to the
// backend, which sends only what DiffPolicy finds changed. One value for
// both backends, so that they enforce one thing (docs/DESIGN.md §8.1).
type Policy struct {
	// Groups are every group, by name.
	Groups map[string]SecurityGroup
	// Ports are this host's ports that list groups: port name → its
	// groups. Their rules govern these ports only.
	Ports map[string]GroupList
	// Members are, per group name, the IPv4 addresses of every port that
	// lists the group — this host's and, in a cluster, the other hosts'
	// (remote_group names them all) — sorted, without repeats.
	Members map[string][]netip.Addr
}

// Equal reports whether p and q enforce the same: a backend holding one
// has nothing to send for the other.
func (p Policy) Equal(q Policy) bool { return DiffPolicy(p, q).Empty() }

func sameGroup(a, b SecurityGroup) bool { return a.ID == b.ID && a.SameSpec(b) }

// Guarded reports whether a local port lists groups: new connections to
// it pass only as its groups' ingress rules allow.
func (p Policy) Guarded(port string) bool { return p.Ports[port] != "" }

// EgressLimited reports whether a local port's new connections pass only
// as its groups' egress rules allow: some group of it has an egress rule.
// Without one its egress is open (docs/DESIGN.md §8.1). A group the
// policy lacks (listed by a port before it reached this host) counts as
// one whose rules limit egress and allow nothing: its real rules are not
// known yet, and the port fails closed until they are.
func (p Policy) EgressLimited(port string) bool {
	for _, name := range p.Ports[port].Names() {
		if g, ok := p.Groups[name]; !ok || g.Has(Egress) {
			return true
		}
	}
	return false
}

// GroupsOf lists the groups whose members include addr, sorted.
func (p Policy) GroupsOf(addr netip.Addr) []string {
	var groups []string
	for g, members := range p.Members {
		if isMember(members, addr) {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	return groups
}

func isMember(members []netip.Addr, addr netip.Addr) bool {
	_, found := slices.BinarySearchFunc(members, addr, netip.Addr.Compare)
	return found
}

// PolicyChange is what differs between two policies: each backend sends
// the datapath the state of these objects under the new policy, and
// nothing of the others.
type PolicyChange struct {
	// Groups are the groups added, removed, or with other rules or ID —
	// and those whose rules name a group with another ID (or a group
	// added or removed), which their flows hold (OVS). Sorted.
	Groups []string
	// Ports are the local ports whose group list changed, added and
	// removed ones too, or that list a group with another ID. Sorted.
	Ports []string
	// Members are the addresses whose set of groups changed, or that are
	// members of a group with another ID. Sorted.
	Members []netip.Addr
	// EgressFlip are the local ports, not in Ports, whose EgressLimited
	// changed because a group's rules did. Sorted.
	EgressFlip []string
}

// Empty reports whether nothing changed: the backend sends nothing.
func (c PolicyChange) Empty() bool {
	return len(c.Groups) == 0 && len(c.Ports) == 0 && len(c.Members) == 0 && len(c.EgressFlip) == 0
}

// DiffPolicy finds what changed from one policy to the other. A group whose ID is
// another — made, deleted, or both between two policies, as a restart or
// a cluster's coalesced events may show — changes everything that holds
// the ID: its members, its ports, and the groups naming it.
func DiffPolicy(from, to Policy) PolicyChange {
	var ch PolicyChange
	groups := union(from.Groups, to.Groups, strings.Compare)
	renumbered := map[string]bool{}
	for _, name := range groups {
		renumbered[name] = from.Groups[name].ID != to.Groups[name].ID // an absent group's is 0
	}
	for _, name := range groups {
		was, is := from.Groups[name], to.Groups[name]
		if !sameGroup(was, is) || slices.ContainsFunc(is.References(), mapHas(renumbered)) {
			ch.Groups = append(ch.Groups, name)
		}
	}

	for _, port := range union(from.Ports, to.Ports, strings.Compare) {
		l := to.Ports[port]
		switch {
		case from.Ports[port] != l || slices.ContainsFunc(l.Names(), mapHas(renumbered)):
			ch.Ports = append(ch.Ports, port)
		case from.EgressLimited(port) != to.EgressLimited(port):
			ch.EgressFlip = append(ch.EgressFlip, port)
		}
	}

	was, is := from.memberships(), to.memberships()
	for _, addr := range union(was, is, netip.Addr.Compare) {
		if !slices.Equal(was[addr], is[addr]) || slices.ContainsFunc(is[addr], mapHas(renumbered)) {
			ch.Members = append(ch.Members, addr)
		}
	}
	return ch
}

// memberships is Members inverted: address → its groups, sorted.
func (p Policy) memberships() map[netip.Addr][]string {
	m := map[netip.Addr][]string{}
	for _, g := range slices.Sorted(maps.Keys(p.Members)) {
		for _, addr := range p.Members[g] {
			m[addr] = append(m[addr], g)
		}
	}
	return m
}

// union is the keys of a and b, sorted by cmp.
func union[K comparable, V any](a, b map[K]V, cmp func(K, K) int) []K {
	ks := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, cmp)
	return ks
}

func mapHas(m map[string]bool) func(string) bool {
	return func(k string) bool { return m[k] }
}

// Packet is a packet in the original direction of a connection, as the
// rules judge it: replies and related ICMP of a connection the rules
// allowed pass on conntrack alone, and are never judged.
type Packet struct {
	// SrcPort and DstPort are this host's ports the packet leaves and
	// reaches; "" for another host's port, which its own host judges, or
	// the outside.
	SrcPort, DstPort string
	Src, Dst         netip.Addr
	Proto            uint8  // ProtoICMP, ProtoTCP or ProtoUDP
	DPort            uint16 // tcp and udp
}

// Verdict is one side's judgement of a packet.
type Verdict struct {
	Allowed bool
	// Group and Index name the rule that allowed the packet; Group is ""
	// when no rule decided: the port is unguarded, or its egress open —
	// or, when not Allowed, no rule of its groups allows the packet.
	Group string
	Index int
	Dir   Direction // the side judged
}

// Allows judges pkt as docs/DESIGN.md §8.1 says: the source port's egress
// rules, then the destination port's ingress rules; it passes when both
// allow it. It is the reference both backends are tested against, and what
// the Linux backend's trace names a rule by. Of the rules that allow a
// packet, it names the first of the port's first group by name that has
// one — the order in which the Linux backend's chains try them and whose
// counter counts the packet there.
func (p Policy) Allows(pkt Packet) (egress, ingress Verdict) {
	egress = p.judge(pkt.SrcPort, Egress, pkt, pkt.Dst)
	ingress = p.judge(pkt.DstPort, Ingress, pkt, pkt.Src)
	return egress, ingress
}

// judge is one side's verdict on pkt for the local port, whose peer is
// the packet's other end.
func (p Policy) judge(port string, d Direction, pkt Packet, peer netip.Addr) Verdict {
	v := Verdict{Dir: d}
	if !p.Guarded(port) || d == Egress && !p.EgressLimited(port) {
		v.Allowed = true
		return v
	}
	for _, name := range p.Ports[port].Names() {
		for i, r := range p.Groups[name].Rules {
			if r.Direction == d && p.matches(r, pkt, peer) {
				return Verdict{Allowed: true, Group: name, Index: i, Dir: d}
			}
		}
	}
	return v
}

// matches reports whether r allows pkt, whose other end is peer.
func (p Policy) matches(r Rule, pkt Packet, peer netip.Addr) bool {
	if r.Proto != ProtoAny && r.Proto != pkt.Proto {
		return false
	}
	if r.PortMin != 0 && (pkt.DPort < r.PortMin || pkt.DPort > r.PortMax) {
		return false
	}
	switch {
	case r.RemoteGroup != "":
		return isMember(p.Members[r.RemoteGroup], peer)
	case r.Remote.IsValid():
		return r.Remote.Contains(peer)
	}
	return true
}
