package model

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func mustGroup(t *testing.T, name string, id int, rules ...v1.Rule) SecurityGroup {
	t.Helper()
	if rules == nil {
		rules = []v1.Rule{}
	}
	g, err := NewSecurityGroup(name, v1.SecurityGroupSpec{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	g.ID = id
	return g
}

func addrs(s ...string) []netip.Addr {
	var as []netip.Addr
	for _, a := range s {
		as = append(as, netip.MustParseAddr(a))
	}
	slices.SortFunc(as, netip.Addr.Compare)
	return as
}

// matrixPolicy is issue 20's policy matrix on one host, and more: web1
// and db1 in network a, admin1 in b, other1 without groups; web2 is
// another host's port in web; dns1's group limits its egress.
func matrixPolicy(t *testing.T) Policy {
	groups := []SecurityGroup{
		mustGroup(t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "80"}),
		mustGroup(t, "db", 2, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "web"}),
		mustGroup(t, "admin", 3),
		mustGroup(t, "icmp-admin", 4, v1.Rule{Direction: "ingress", Protocol: "icmp", RemoteGroup: "admin"}),
		mustGroup(t, "dns-only", 5,
			v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "8000-8080", Remote: "10.9.0.0/16"},
			v1.Rule{Direction: "egress", Protocol: "udp", Ports: "53", Remote: "10.0.0.0/8"},
			v1.Rule{Direction: "egress", Protocol: "udp", Ports: "53-54", Remote: "10.0.0.53/32"},
		),
		mustGroup(t, "any-out", 6, v1.Rule{Direction: "egress"}, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "8080"}),
	}
	p := Policy{Groups: map[string]SecurityGroup{}, Ports: map[string]GroupList{
		"web1":   "icmp-admin,web",
		"db1":    "db,icmp-admin",
		"admin1": "admin",
		"dns1":   "any-out,dns-only",
	}, Members: map[string][]netip.Addr{
		"web":        addrs("10.1.0.2", "10.3.0.2"),
		"db":         addrs("10.1.0.3"),
		"admin":      addrs("10.2.0.2"),
		"icmp-admin": addrs("10.1.0.2", "10.1.0.3"),
		"dns-only":   addrs("10.1.0.5"),
		"any-out":    addrs("10.1.0.5"),
	}}
	for _, g := range groups {
		p.Groups[g.Name] = g
	}
	return p
}

var matrixAddrs = map[string]string{"web1": "10.1.0.2", "db1": "10.1.0.3", "admin1": "10.2.0.2", "other1": "10.1.0.9", "dns1": "10.1.0.5"}

func TestAllows(t *testing.T) {
	p := matrixPolicy(t)
	allow := func(g string, i int) Verdict { return Verdict{Allowed: true, Group: g, Index: i} }
	open, deny := Verdict{Allowed: true}, Verdict{}
	for _, c := range []struct {
		name            string
		from, to        string // a local port, or an address
		proto           uint8
		dport           uint16
		egress, ingress Verdict
	}{
		{"unguarded both ends", "other1", "10.1.0.99", ProtoTCP, 1, open, open},
		{"web from anywhere", "other1", "web1", ProtoTCP, 80, open, allow("web", 0)},
		{"web from outside", "198.51.100.7", "web1", ProtoTCP, 80, open, allow("web", 0)},
		{"web other port", "other1", "web1", ProtoTCP, 81, open, deny},
		{"web udp 80", "other1", "web1", ProtoUDP, 80, open, deny},
		{"web ping from other", "other1", "web1", ProtoICMP, 0, open, deny},
		{"web ping from admin", "admin1", "web1", ProtoICMP, 0, open, allow("icmp-admin", 0)},
		{"db from web", "web1", "db1", ProtoTCP, 5432, open, allow("db", 0)},
		{"db from remote web", "10.3.0.2", "db1", ProtoTCP, 5432, open, allow("db", 0)},
		{"db from admin", "admin1", "db1", ProtoTCP, 5432, open, deny},
		{"db from other", "other1", "db1", ProtoTCP, 5432, open, deny},
		{"db from web other port", "web1", "db1", ProtoTCP, 5433, open, deny},
		{"db ping from admin", "admin1", "db1", ProtoICMP, 0, open, allow("icmp-admin", 0)},
		{"admin denies all", "web1", "admin1", ProtoTCP, 22, open, deny},
		{"admin egress open", "admin1", "other1", ProtoUDP, 9, open, open},
		{"limited egress by the first group", "dns1", "10.0.0.53", ProtoUDP, 53, allow("any-out", 0), open},
		{"limited ingress range low", "10.9.1.1", "dns1", ProtoTCP, 7999, open, deny},
		{"limited ingress range start", "10.9.1.1", "dns1", ProtoTCP, 8000, open, allow("dns-only", 0)},
		{"limited ingress range end, the first group by name", "10.9.1.1", "dns1", ProtoTCP, 8080, open, allow("any-out", 1)},
		{"limited ingress range inside", "10.9.1.1", "dns1", ProtoTCP, 8079, open, allow("dns-only", 0)},
		{"limited ingress range high", "10.9.1.1", "dns1", ProtoTCP, 8081, open, deny},
		{"limited ingress outside the cidr", "10.8.1.1", "dns1", ProtoTCP, 8000, open, deny},
	} {
		pkt := Packet{Proto: c.proto, DPort: c.dport}
		pkt.SrcPort, pkt.Src = endpoint(c.from)
		pkt.DstPort, pkt.Dst = endpoint(c.to)
		c.egress.Dir, c.ingress.Dir = Egress, Ingress
		eg, in := p.Allows(pkt)
		if eg != c.egress || in != c.ingress {
			t.Errorf("%s: egress %+v, ingress %+v\nwant   %+v, %+v", c.name, eg, in, c.egress, c.ingress)
		}
	}
}

func endpoint(s string) (port string, addr netip.Addr) {
	if a, ok := matrixAddrs[s]; ok {
		return s, netip.MustParseAddr(a)
	}
	return "", netip.MustParseAddr(s)
}

// TestAllowsFirstRule: the rule named is the first by index of the first
// group by name that allows the packet.
func TestAllowsFirstRule(t *testing.T) {
	p := Policy{Groups: map[string]SecurityGroup{
		"a": mustGroup(t, "a", 1, v1.Rule{Direction: "egress", Protocol: "icmp"}, v1.Rule{Direction: "egress", Protocol: "udp"}, v1.Rule{Direction: "egress"}),
		"b": mustGroup(t, "b", 2, v1.Rule{Direction: "egress"}),
		"c": mustGroup(t, "c", 3, v1.Rule{Direction: "egress", Protocol: "tcp", Ports: "22"}),
	}, Ports: map[string]GroupList{"p": "a,b,c"}}
	for _, c := range []struct {
		proto uint8
		dport uint16
		group string
		index int
	}{
		{ProtoICMP, 0, "a", 0},
		{ProtoUDP, 53, "a", 1},
		{ProtoTCP, 22, "a", 2},
	} {
		eg, _ := p.Allows(Packet{SrcPort: "p", Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: c.proto, DPort: c.dport})
		if !eg.Allowed || eg.Group != c.group || eg.Index != c.index || eg.Dir != Egress {
			t.Errorf("proto %d port %d: %+v; want rule %d of %s", c.proto, c.dport, eg, c.index, c.group)
		}
	}
}

// TestAllowsUnknownGroup: a port listing a group the policy lacks (made
// on another host, not yet here) fails closed on both sides, whatever
// its other groups allow: the missing group's rules are unknown.
func TestAllowsUnknownGroup(t *testing.T) {
	p := Policy{Groups: map[string]SecurityGroup{
		"web": mustGroup(t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "80"}),
	}, Ports: map[string]GroupList{"w1": "web,xn", "x1": "xn"}}
	if !p.Guarded("x1") || !p.EgressLimited("x1") || !p.EgressLimited("w1") {
		t.Fatalf("x1 guarded %v, limited %v; w1 limited %v: want all true", p.Guarded("x1"), p.EgressLimited("x1"), p.EgressLimited("w1"))
	}
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, pkt := range []Packet{
		{SrcPort: "x1", Src: a, Dst: b, Proto: ProtoTCP, DPort: 80},
		{DstPort: "x1", Src: b, Dst: a, Proto: ProtoTCP, DPort: 80},
		{SrcPort: "w1", Src: a, Dst: b, Proto: ProtoUDP, DPort: 53},
	} {
		eg, in := p.Allows(pkt)
		if eg.Allowed && in.Allowed {
			t.Errorf("%+v allowed: egress %+v, ingress %+v", pkt, eg, in)
		}
	}
	// Its known group still allows what it allows.
	if _, in := p.Allows(Packet{DstPort: "w1", Src: b, Dst: a, Proto: ProtoTCP, DPort: 80}); !in.Allowed || in.Group != "web" {
		t.Errorf("web's rule into w1: %+v", in)
	}
}

func TestPolicyQueries(t *testing.T) {
	p := matrixPolicy(t)
	for port, want := range map[string][2]bool{
		"web1": {true, false}, "admin1": {true, false}, "dns1": {true, true}, "other1": {false, false}, "": {false, false},
	} {
		if g, l := p.Guarded(port), p.EgressLimited(port); g != want[0] || l != want[1] {
			t.Errorf("%q: guarded %v, egress limited %v; want %v", port, g, l, want)
		}
	}
	if got := p.GroupsOf(netip.MustParseAddr("10.1.0.2")); !reflect.DeepEqual(got, []string{"icmp-admin", "web"}) {
		t.Errorf("groups of 10.1.0.2: %v", got)
	}
	if got := p.GroupsOf(netip.MustParseAddr("10.1.0.9")); got != nil {
		t.Errorf("groups of 10.1.0.9: %v", got)
	}
	if !p.Equal(matrixPolicy(t)) || !(Policy{}).Equal(Policy{Groups: map[string]SecurityGroup{}, Members: map[string][]netip.Addr{}}) {
		t.Error("equal policies differ")
	}
}

func TestDiffPolicy(t *testing.T) {
	base := matrixPolicy(t)
	for _, c := range []struct {
		name   string
		change func(p *Policy)
		want   PolicyChange
	}{
		{"nothing", func(*Policy) {}, PolicyChange{}},
		{"port attached with groups", func(p *Policy) {
			p.Ports["web3"] = "web"
			p.Members["web"] = addrs("10.1.0.2", "10.3.0.2", "10.1.0.7")
		}, PolicyChange{Ports: []string{"web3"}, Members: addrs("10.1.0.7")}},
		{"port's groups changed", func(p *Policy) {
			p.Ports["admin1"] = "admin,web"
			p.Members["web"] = addrs("10.1.0.2", "10.3.0.2", "10.2.0.2")
		}, PolicyChange{Ports: []string{"admin1"}, Members: addrs("10.2.0.2")}},
		{"port detached", func(p *Policy) {
			delete(p.Ports, "db1")
			p.Members["db"] = nil
			p.Members["icmp-admin"] = addrs("10.1.0.2")
		}, PolicyChange{Ports: []string{"db1"}, Members: addrs("10.1.0.3")}},
		{"remote member joined", func(p *Policy) {
			p.Members["admin"] = addrs("10.2.0.2", "10.4.0.2")
		}, PolicyChange{Members: addrs("10.4.0.2")}},
		{"ingress rule added", func(p *Policy) {
			g := p.Groups["db"]
			g.Rules = append(slices.Clone(g.Rules), Rule{Direction: Ingress, Proto: ProtoICMP})
			p.Groups["db"] = g
		}, PolicyChange{Groups: []string{"db"}}},
		{"egress rule added", func(p *Policy) {
			g := p.Groups["icmp-admin"]
			g.Rules = append(slices.Clone(g.Rules), Rule{Direction: Egress})
			p.Groups["icmp-admin"] = g
		}, PolicyChange{Groups: []string{"icmp-admin"}, EgressFlip: []string{"db1", "web1"}}},
		{"egress rule added, port's groups changed too", func(p *Policy) {
			g := p.Groups["icmp-admin"]
			g.Rules = append(slices.Clone(g.Rules), Rule{Direction: Egress})
			p.Groups["icmp-admin"] = g
			p.Ports["web1"] = "icmp-admin"
			p.Members["web"] = addrs("10.3.0.2")
		}, PolicyChange{Groups: []string{"icmp-admin"}, Ports: []string{"web1"}, Members: addrs("10.1.0.2"), EgressFlip: []string{"db1"}}},
		{"unused group added", func(p *Policy) {
			p.Groups["new"] = mustGroup(t, "new", 9)
		}, PolicyChange{Groups: []string{"new"}}},
		{"group renumbered", func(p *Policy) {
			g := p.Groups["admin"]
			g.ID = 11
			p.Groups["admin"] = g
		}, PolicyChange{Groups: []string{"admin", "icmp-admin"}, Ports: []string{"admin1"}, Members: addrs("10.2.0.2")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := clonePolicy(base)
			c.change(&now)
			got := DiffPolicy(base, now)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("change %+v\nwant   %+v", got, c.want)
			}
			if got.Empty() != base.Equal(now) {
				t.Fatalf("empty change %v, equal policies %v", got.Empty(), base.Equal(now))
			}
			if back := DiffPolicy(now, base); !reflect.DeepEqual(back, c.want) {
				t.Fatalf("the way back changes %+v\nwant               %+v", back, c.want)
			}
		})
	}
}

func clonePolicy(p Policy) Policy {
	c := Policy{Groups: maps.Clone(p.Groups), Ports: maps.Clone(p.Ports), Members: map[string][]netip.Addr{}}
	for g, m := range p.Members {
		c.Members[g] = slices.Clone(m)
	}
	return c
}

// TestDiffPolicySound: whatever two policies are, what DiffPolicy leaves
// out is the same under both — a backend that sends only the change holds
// the new policy. Groups: the same rules and ID, and the same IDs of the
// groups they name; ports: the same groups with the same IDs, and the same
// egress; addresses: the same groups with the same IDs.
func TestDiffPolicySound(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 1))
	names := []string{"a", "b", "c", "d"}
	random := func() Policy {
		p := Policy{Groups: map[string]SecurityGroup{}, Ports: map[string]GroupList{}, Members: map[string][]netip.Addr{}}
		for _, n := range names {
			if rng.IntN(4) == 0 {
				continue
			}
			g := SecurityGroup{Name: n, ID: 1 + rng.IntN(2), Rules: []Rule{}}
			for range rng.IntN(3) {
				r := Rule{Direction: Direction(1 + rng.IntN(2)), Proto: ProtoTCP, PortMin: 80, PortMax: uint16(80 + rng.IntN(2))}
				if rng.IntN(2) == 0 {
					r.RemoteGroup = names[rng.IntN(len(names))]
				}
				g.Rules = append(g.Rules, r)
			}
			p.Groups[n] = g
		}
		present := slices.Sorted(maps.Keys(p.Groups))
		for i := range 4 {
			var list []string
			for _, n := range present {
				if rng.IntN(2) == 0 {
					list = append(list, n)
				}
			}
			addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
			for _, n := range list {
				p.Members[n] = append(p.Members[n], addr)
			}
			if l, _ := NewGroupList(list); l != "" && rng.IntN(3) > 0 {
				p.Ports["p"+strconv.Itoa(i)] = l
			}
		}
		return p
	}
	ids := func(p Policy, groups []string) []int {
		var out []int
		for _, g := range groups {
			out = append(out, p.Groups[g].ID)
		}
		return out
	}
	for i := range 2000 {
		old, now := random(), random()
		ch := DiffPolicy(old, now)
		for _, g := range names {
			if slices.Contains(ch.Groups, g) {
				continue
			}
			o, inOld := old.Groups[g]
			n, inNow := now.Groups[g]
			if inOld != inNow || !sameGroup(o, n) || !slices.Equal(ids(old, n.References()), ids(now, n.References())) {
				t.Fatalf("%d: group %s changed unreported: %+v → %+v (%+v)", i, g, o, n, ch)
			}
		}
		for _, port := range []string{"p0", "p1", "p2", "p3"} {
			if slices.Contains(ch.Ports, port) {
				continue
			}
			l := now.Ports[port]
			if old.Ports[port] != l || !slices.Equal(ids(old, l.Names()), ids(now, l.Names())) {
				t.Fatalf("%d: port %s changed unreported: %q → %q (%+v)", i, port, old.Ports[port], l, ch)
			}
			if !slices.Contains(ch.EgressFlip, port) && old.EgressLimited(port) != now.EgressLimited(port) {
				t.Fatalf("%d: port %s's egress flipped unreported (%+v)", i, port, ch)
			}
		}
		for a := range 4 {
			addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(a + 1)})
			if slices.Contains(ch.Members, addr) {
				continue
			}
			was, is := old.GroupsOf(addr), now.GroupsOf(addr)
			if !slices.Equal(was, is) || !slices.Equal(ids(old, was), ids(now, is)) {
				t.Fatalf("%d: address %s's groups changed unreported: %v → %v (%+v)", i, addr, was, is, ch)
			}
		}
		if ch.Empty() != old.Equal(now) || !DiffPolicy(old, old).Empty() {
			t.Fatalf("%d: empty %v, equal %v", i, ch.Empty(), old.Equal(now))
		}
	}
}
