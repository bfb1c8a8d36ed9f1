package pipeline

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// mustGroup parses a group as the API takes it, with its ID.
func mustGroup(t testing.TB, name string, id int, rules ...v1.Rule) model.SecurityGroup {
	t.Helper()
	g, err := model.NewSecurityGroup(name, v1.SecurityGroupSpec{Rules: append([]v1.Rule{}, rules...)})
	if err != nil {
		t.Fatal(err)
	}
	g.ID = id
	return g
}

// securityGroups is the model of the security groups' golden test: front
// and back joined by a router; web's ports open to HTTP from anyone and to
// 8000-8080 from 10/8, db's to PostgreSQL from web's members (one of them
// on another host) and to ping from admin's; admin's egress limited to
// DNS, db's members and ping; plain has no groups.
func securityGroups(t testing.TB) Model {
	nw := func(name, subnet string, id int) model.Network {
		p := netip.MustParsePrefix(subnet)
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), MTU: 1500, ID: id}
	}
	port := func(name, network, ip string, ofport int, groups ...string) model.Port {
		return model.Port{Name: name, Network: network, Type: v1.PortVeth, IP: netip.MustParseAddr(ip),
			MAC: model.PortMAC(name), HostIfname: model.HostIfname(name), Ofport: ofport, SecurityGroups: groupList(t, groups...)}
	}
	ports := []model.Port{port("web1", "front", "10.71.0.2", 1, "web"), port("web2", "front", "10.71.0.3", 2, "web"),
		port("db1", "back", "10.72.0.2", 3, "db"), port("admin1", "back", "10.72.0.3", 4, "admin"),
		port("plain", "front", "10.71.0.4", 5)}
	web := mustGroup(t, "web", 1, v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoTCP, Ports: "80"},
		v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoTCP, Ports: "8000-8080", Remote: "10.0.0.0/8"})
	db := mustGroup(t, "db", 2, v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoTCP, Ports: "5432", RemoteGroup: "web"},
		v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoICMP, RemoteGroup: "admin"})
	admin := mustGroup(t, "admin", 3, v1.Rule{Direction: v1.DirEgress, Protocol: v1.ProtoUDP, Ports: "53"},
		v1.Rule{Direction: v1.DirEgress, Protocol: v1.ProtoAny, RemoteGroup: "db"},
		v1.Rule{Direction: v1.DirEgress, Protocol: v1.ProtoICMP, Remote: "0.0.0.0/0"})
	return Model{
		Networks: []model.Network{nw("front", "10.71.0.0/24", 1), nw("back", "10.72.0.0/24", 2)},
		Routers:  []model.Router{{Name: "r1", Networks: []string{"back", "front"}, ID: 1}},
		Ports:    ports,
		Policy: model.Policy{
			Groups: map[string]model.SecurityGroup{"web": web, "db": db, "admin": admin},
			Ports:  map[string]model.GroupList{"web1": "web", "web2": "web", "db1": "db", "admin1": "admin"},
			Members: map[string][]netip.Addr{
				// 10.71.0.9 is a member on another host.
				"web":   addrs("10.71.0.2", "10.71.0.3", "10.71.0.9"),
				"db":    addrs("10.72.0.2"),
				"admin": addrs("10.72.0.3"),
			},
		},
	}
}

func groupList(t testing.TB, names ...string) model.GroupList {
	t.Helper()
	l, err := model.NewGroupList(names)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// TestCompileSecurityGroupsGolden: the security groups' model on one host
// and on a host of a cluster (securityGroupsCluster), each with the pickup
// window closed, and what opening it adds or changes (the flows of the
// open window that the closed one does not have as they are; in the
// cluster remote_sender's among them).
func TestCompileSecurityGroupsGolden(t *testing.T) {
	for _, c := range []struct {
		golden string
		p      Pipeline
		m      Model
	}{
		{"testdata/security-groups", testPipeline(), securityGroups(t)},
		{"testdata/security-groups-cluster", overlayPipeline(), securityGroupsCluster(t)},
	} {
		closed, err := c.p.Compile(c.m)
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, c.golden+".golden", render(closed))
		c.m.Pickup = true
		open, err := c.p.Compile(c.m)
		if err != nil {
			t.Fatal(err)
		}
		had := map[string]bool{}
		for _, l := range strings.Split(render(closed), "\n") {
			had[l] = true
		}
		var added []string
		for _, l := range strings.Split(strings.TrimSpace(render(open)), "\n") {
			if !had[l] {
				added = append(added, l)
			}
		}
		golden.Check(t, c.golden+"-pickup.golden", strings.Join(added, "\n")+"\n")
		for _, d := range []flowset.Desired{closed, open} {
			if _, err := flowset.Diff(space, d, flowset.Installed{}); err != nil {
				t.Fatalf("%s: flows collide: %v", c.golden, err)
			}
			for _, f := range d.Flows {
				if err := openflow.Validate(f.Match); err != nil {
					t.Errorf("flow %s: %v", render(flowset.Desired{Flows: []flowset.Flow{f}}), err)
				}
			}
		}
	}
}

// TestPortMasks: for every range of a small space and a sample of large
// ones, the cover holds exactly the range's ports, its blocks are aligned
// prefixes, and no cover with fewer blocks exists (a block can only be
// merged with its buddy, which the greedy cover would have taken).
func TestPortMasks(t *testing.T) {
	check := func(lo, hi uint16) {
		t.Helper()
		masks := PortMasks(lo, hi)
		covered := map[uint32]int{}
		for _, m := range masks {
			size := uint32(^m.Mask) + 1
			if uint32(m.Value)&(size-1) != 0 {
				t.Fatalf("PortMasks(%d, %d): %#x/%#x is no prefix", lo, hi, m.Value, m.Mask)
			}
			for v := uint32(m.Value); v < uint32(m.Value)+size; v++ {
				covered[v]++
			}
		}
		if len(covered) != int(hi)-int(lo)+1 {
			t.Fatalf("PortMasks(%d, %d) = %v covers %d ports, want %d", lo, hi, masks, len(covered), int(hi)-int(lo)+1)
		}
		for v, n := range covered {
			if v < uint32(lo) || v > uint32(hi) || n != 1 {
				t.Fatalf("PortMasks(%d, %d) = %v: port %d covered %d times", lo, hi, masks, v, n)
			}
		}
		// Minimal: two neighbouring blocks of one size that are buddies
		// would be one block.
		for i := 1; i < len(masks); i++ {
			a, b := masks[i-1], masks[i]
			if a.Mask == b.Mask && a.Value&^(a.Mask<<1) == 0 && b.Value == a.Value+^a.Mask+1 && uint32(a.Value)&(2*(uint32(^a.Mask)+1)-1) == 0 {
				t.Fatalf("PortMasks(%d, %d) = %v: %v and %v make one block", lo, hi, masks, a, b)
			}
		}
	}
	for lo := uint16(1); lo <= 70; lo++ {
		for hi := lo; hi <= 70; hi++ {
			check(lo, hi)
		}
	}
	for _, r := range [][2]uint16{{1, 65535}, {1024, 65535}, {8000, 8080}, {5432, 5432}, {32768, 65535}, {65535, 65535}, {1, 1}} {
		check(r[0], r[1])
	}
	if got := len(PortMasks(1, 65535)); got != 16 {
		t.Errorf("PortMasks(1, 65535) has %d blocks, want 16", got)
	}
	if got := PortMasks(80, 80); !slices.Equal(got, []PortMask{{80, 0xffff}}) {
		t.Errorf("PortMasks(80, 80) = %v", got)
	}
	if PortMasks(0, 0) != nil {
		t.Error("PortMasks(0, 0) is not nil (every port)")
	}
}

// TestPolicyFlowCount proves the flows linear in ports, members and rules:
// exactly the skeleton's, four per guarded port, two per member address
// and one per port mask of each rule, at 10, 100 and 1,000 ports in one
// group of 20 rules, one of them naming the group itself; and the pickup
// window two more per guarded port, in a cluster one more per member
// address (remote_sender's), and pickupBaseFlows in the skeleton (one
// more in a cluster: remote_sender's for an unguarded sender).
func TestPolicyFlowCount(t *testing.T) {
	for _, c := range []struct {
		name             string
		p                Pipeline
		pickupAddr, base int
	}{{"one host", testPipeline(), 0, pickupBaseFlows}, {"cluster", overlayPipeline(), 1, pickupBaseFlows + 1}} {
		base, err := c.p.Compile(Model{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{10, 100, 1000} {
			m, rules := scaleModel(t, n)
			d, err := c.p.Compile(m)
			if err != nil {
				t.Fatal(err)
			}
			plain := m
			plain.Policy = model.Policy{}
			without, err := c.p.Compile(plain)
			if err != nil {
				t.Fatal(err)
			}
			want := 4*n + 2*n + rules
			if got := len(d.Flows) - len(without.Flows); got != want {
				t.Errorf("%s, %d ports: %d policy flows, want 4×%d + 2×%d + %d rule flows = %d", c.name, n, got, n, n, rules, want)
			}
			m.Pickup = true
			open, err := c.p.Compile(m)
			if err != nil {
				t.Fatal(err)
			}
			if got, more := len(open.Flows)-len(d.Flows), 2*n+c.pickupAddr*n+c.base; got != more {
				t.Errorf("%s, %d ports: the pickup window adds %d flows, want 2×%d + %d×%d + %d = %d", c.name, n, got, n, c.pickupAddr, n, c.base, more)
			}
			t.Logf("%s, %d ports, 20 rules: %d flows in all (%d with the window open), %d of them the policy's, skeleton %d",
				c.name, n, len(d.Flows), len(open.Flows), want, len(base.Flows))
		}
	}
}

// pickupBaseFlows is the flows the pickup window adds to the skeleton:
// egress_verdict's both ways and reverse, ingress_verdict's reverse, and
// output's three flipped commits.
const pickupBaseFlows = 6

// scaleModel is n ports in one network, all in group g of 20 rules, and
// the number of rule flows those compile to.
func scaleModel(t testing.TB, n int) (Model, int) {
	p := netip.MustParsePrefix("10.80.0.0/16")
	m := Model{Networks: []model.Network{{Name: "big", Subnet: p, Gateway: p.Addr().Next(), MTU: 1500, ID: 1}},
		Policy: model.Policy{Groups: map[string]model.SecurityGroup{}, Ports: map[string]model.GroupList{}, Members: map[string][]netip.Addr{}}}
	var rules []v1.Rule
	flows := 0
	for i := range 19 {
		rules = append(rules, v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoTCP, Ports: fmt.Sprint(1000 + i)})
		flows++
	}
	rules = append(rules, v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoTCP, Ports: "8000-8080", RemoteGroup: "g"})
	flows += len(PortMasks(8000, 8080))
	m.Policy.Groups["g"] = mustGroup(t, "g", 1, rules...)
	addr := p.Addr().Next()
	for i := range n {
		addr = addr.Next()
		name := fmt.Sprintf("p%d", i)
		m.Ports = append(m.Ports, model.Port{Name: name, Network: "big", Type: v1.PortVeth, IP: addr, MAC: model.PortMAC(name),
			HostIfname: model.HostIfname(name), Ofport: i + 1, SecurityGroups: "g"})
		m.Policy.Ports[name] = "g"
		m.Policy.Members["g"] = append(m.Policy.Members["g"], addr)
	}
	return m, flows
}

// TestPolicyAgainstOVS installs the security groups' golden model on a
// real bridge — OVS holds exactly the compiled flows, a resync changes
// nothing — and traces packets through both sides, conntrack's answers
// given with --ct-next: the rule that allows a packet is the step that
// sets the allow bit, a packet none allows is dropped by the verdict's
// miss flow (reason policy), replies pass on conntrack alone.
func TestPolicyAgainstOVS(t *testing.T) {
	box := testbed.StartSandbox(t, "../..", "")
	box.Vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13")
	for i := 1; i <= 5; i++ {
		box.Vsctl(t, "add-port", "br0", fmt.Sprintf("p%d", i), "--", "set", "interface", fmt.Sprintf("p%d", i),
			"type=internal", fmt.Sprintf("ofport_request=%d", i))
	}
	m := securityGroups(t)
	d, err := testPipeline().Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	installAndCompare(t, box, "br0", d)

	mac := model.PortMAC
	gw := model.BridgeMAC
	tcp := func(from string, of int, src, dstMAC, dst string, port int) string {
		return fmt.Sprintf("tcp,in_port=%d,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64,tp_src=40000,tp_dst=%d,tcp_flags=syn", of, mac(from), dstMAC, src, dst, port)
	}
	ack := func(from string, of int, src, dstMAC, dst string, sport, dport int) string {
		return fmt.Sprintf("tcp,in_port=%d,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64,tp_src=%d,tp_dst=%d,tcp_flags=ack", of, mac(from), dstMAC, src, dst, sport, dport)
	}
	newNew := []string{"--ct-next", "trk,new", "--ct-next", "trk,new"}
	// Datapath port numbers are the ofports + 1: br0's own is 1.
	cases := []struct {
		name, flow string
		ct         []string
		want       []string
	}{
		{"web1 → db1 5432: rule 0 of db, committed in both zones", tcp("web1", 1, "10.71.0.2", gw("front"), "10.72.0.2", 5432), newNew,
			[]string{"63. tcp,reg5=0x2,reg6=0x1,tp_dst=5432, priority 2000, cookie 0x7606000008000000",
				"Datapath actions: ct(commit,zone=1),ct(commit,zone=2),"}},
		{"plain → db1 5432: no rule", tcp("plain", 5, "10.71.0.4", gw("front"), "10.72.0.2", 5432), newNew,
			[]string{"64. priority 0, cookie 0x7601000000000000\n drop"}},
		{"plain → web1 80: rule 0 of web, committed in web1's zone only", tcp("plain", 5, "10.71.0.4", mac("web1"), "10.71.0.2", 80), newNew,
			[]string{"63. tcp,reg5=0x1,reg6=0,tp_dst=80, priority 2000, cookie 0x7606000004000000", "Datapath actions: ct(commit,zone=1),2"}},
		{"plain → web1 8080 from 10/8: rule 1 of web", tcp("plain", 5, "10.71.0.4", mac("web1"), "10.71.0.2", 8080), newNew,
			[]string{"cookie 0x7606000004010000", "Datapath actions: ct(commit,zone=1),2"}},
		{"admin1 → web1 80: admin's egress allows no tcp to web", tcp("admin1", 4, "10.72.0.3", gw("back"), "10.71.0.2", 80), newNew,
			[]string{"25. priority 0, cookie 0x7601000000000000\n drop"}},
		{"admin1 → db1 5432: egress rule 1 of admin, db's ingress has none", tcp("admin1", 4, "10.72.0.3", mac("db1"), "10.72.0.2", 5432), newNew,
			[]string{"24. ip,reg5=0x3,reg6=0x2, priority 1999, cookie 0x760600000c010000", "64. priority 0"}},
		{"db1 → web1, a reply", tcp("db1", 3, "10.72.0.2", gw("back"), "10.71.0.2", 40000), []string{"--ct-next", "trk,est,rpl", "--ct-next", "trk,est,rpl"},
			[]string{"22. ct_state=+est+rpl+trk,ct_mark=0/0x1, priority 200", "61. ct_state=+est+rpl+trk,ct_mark=0/0x1, priority 200", "output port is 1"}},
		{"web1 → db1 5432, established: judged again, not committed", tcp("web1", 1, "10.71.0.2", gw("front"), "10.72.0.2", 5432),
			[]string{"--ct-next", "trk,est", "--ct-next", "trk,est"},
			[]string{"cookie 0x7606000008000000", "64. ct_state=-new+trk,reg1=0x2/0x2, priority 150", "Datapath actions: 4"}},
		// Outside the pickup window a +new packet without SYN is judged
		// as it is: plain's bare ACK to web1's port 22 (web allows only
		// 80 and 8000-8080) is a scan, and dropped for policy.
		{"plain 40000 → web1 22, new without SYN, window closed: dropped", ack("plain", 5, "10.71.0.4", mac("web1"), "10.71.0.2", 40000, 22), newNew,
			[]string{"64. priority 0, cookie 0x7601000000000000\n drop", "Datapath actions: drop"}},
		{"db1 5432 → web1, new without SYN, window closed: dropped", ack("db1", 3, "10.72.0.2", gw("back"), "10.71.0.2", 5432, 40000), newNew,
			[]string{"64. priority 0, cookie 0x7601000000000000\n drop", "Datapath actions: drop"}},
	}
	for _, c := range cases {
		out := box.Appctl(t, append([]string{"ofproto/trace", "br0", c.flow}, c.ct...)...)
		checkTrace(t, c.name, out, c.want)
	}

	// The pickup window open, after an ovs-vswitchd restart: conntrack
	// lost, a download's next packet comes from the side that did not
	// open it.
	m.Pickup = true
	d, err = testPipeline().Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	installAndCompare(t, box, "br0", d)
	for _, c := range []struct {
		name, flow string
		want       []string
	}{
		{"db1 5432 → web1, new without SYN: web1 may have opened it, committed flipped", ack("db1", 3, "10.72.0.2", gw("back"), "10.71.0.2", 5432, 40000),
			[]string{"Datapath actions: ct(commit,zone=2,mark=0x1/0x1),ct(commit,zone=1,mark=0x1/0x1),2"}},
		{"db1 40000 → web1 22, new without SYN: no rule allows either way", ack("db1", 3, "10.72.0.2", gw("back"), "10.71.0.2", 40000, 22),
			[]string{"64. priority 0, cookie 0x7601000000000000\n drop"}},
		// What the window accepts (docs/PIPELINE.md): web1's egress
		// allows the reverse, and plain has no groups.
		{"plain 40000 → web1 22, new without SYN: its reverse allowed both sides, committed flipped", ack("plain", 5, "10.71.0.4", mac("web1"), "10.71.0.2", 40000, 22),
			[]string{"Datapath actions: ct(commit,zone=1,mark=0x1/0x1),2"}},
	} {
		checkTrace(t, c.name, box.Appctl(t, append([]string{"ofproto/trace", "br0", c.flow}, newNew...)...), c.want)
	}
}

// TestOwnersNameRulesAndMembers: a rule's flows are its group's and
// index's, a member's the port with the address (another host's with its
// host), and what the model does not know is named by the cookie.
func TestOwnersNameRulesAndMembers(t *testing.T) {
	m := securityGroups(t)
	m.Remote = []model.RemotePort{{Port: model.Port{Name: "web9", Network: "front", IP: netip.MustParseAddr("10.71.0.9"), Host: "h2"}}}
	o := NewOwners(m)
	for _, c := range []struct {
		cookie uint64
		want   string
	}{
		{space.Cookie(KindRule, ruleObject(2, 1), 0), "rule 1 of security group db"},
		{space.Cookie(KindRule, ruleObject(7, 3), 0), "rule 3 of security group #7"},
		{space.Cookie(KindMember, addrObject(netip.MustParseAddr("10.72.0.2")), 0), "member port db1"},
		{space.Cookie(KindMember, addrObject(netip.MustParseAddr("10.71.0.9")), 0), "member port web9 on h2"},
		{space.Cookie(KindMember, addrObject(netip.MustParseAddr("10.71.0.77")), 0), "member port 10.71.0.77"},
	} {
		if got, ok := o.Of(c.cookie); !ok || got.String() != c.want {
			t.Errorf("Of(%#x) = %q, %v; want %q", c.cookie, got, ok, c.want)
		}
	}
}
