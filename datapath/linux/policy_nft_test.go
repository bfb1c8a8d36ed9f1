package linux

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// testGroup parses rules written as the API takes them.
func testGroup(t testing.TB, name string, id int, rules ...v1.Rule) model.SecurityGroup {
	t.Helper()
	g, err := model.NewSecurityGroup(name, v1.SecurityGroupSpec{Rules: append([]v1.Rule{}, rules...)})
	if err != nil {
		t.Fatal(err)
	}
	g.ID = id
	return g
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
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// testPolicy is the matrix of docs/DESIGN.md §8.1 plus egress rules: web
// takes tcp/80 from anywhere, db tcp/5432 from web only, icmp-admin icmp
// from admin, and admin may open only tcp/5432 and udp/53 to 10.0.0.0/8.
func testPolicy(t testing.TB) model.Policy {
	return model.Policy{
		Groups: map[string]model.SecurityGroup{
			"web": testGroup(t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "80"}),
			"db": testGroup(t, "db", 2, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "web"},
				v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "9100-9200", Remote: "10.99.0.0/16"}),
			"admin": testGroup(t, "admin", 3, v1.Rule{Direction: "egress", Protocol: "tcp", Ports: "5432"},
				v1.Rule{Direction: "egress", Protocol: "udp", Ports: "53", Remote: "10.0.0.0/8"}),
			"icmp-admin": testGroup(t, "icmp-admin", 4, v1.Rule{Direction: "ingress", Protocol: "icmp", RemoteGroup: "admin"},
				v1.Rule{Direction: "ingress"}),
		},
		Ports: map[string]model.GroupList{
			"web1": groupList(t, "web", "icmp-admin"), "db1": groupList(t, "db", "icmp-admin"), "admin1": groupList(t, "admin"),
		},
		Members: map[string][]netip.Addr{
			"web": addrs("10.81.0.5", "10.81.0.9"), "db": addrs("10.81.0.6"), "admin": addrs("10.82.0.5"),
			"icmp-admin": addrs("10.81.0.5", "10.81.0.6"),
		},
	}
}

var testPorts = map[string]netip.Addr{
	"web1": netip.MustParseAddr("10.81.0.5"), "db1": netip.MustParseAddr("10.81.0.6"),
	"admin1": netip.MustParseAddr("10.82.0.5"), "other": netip.MustParseAddr("10.81.0.7"),
}

func TestPolicyScriptGolden(t *testing.T) {
	p := testPolicy(t)
	created := wantPolicy(p, testPorts)
	create := policyScript(policyTable{}, created)
	nftGolden(t, "testdata/policy-create.nft", "", create)

	// db's rules change, admin goes (and with it admin1's groups), web
	// gains a member: one script, db's chain and counters rewritten,
	// web's and icmp-admin's chains and counters left as they are.
	q := testPolicy(t)
	q.Groups["db"] = testGroup(t, "db", 2, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "5432-5433", RemoteGroup: "web"})
	delete(q.Groups, "admin")
	delete(q.Ports, "admin1")
	delete(q.Members, "admin")
	q.Groups["icmp-admin"] = testGroup(t, "icmp-admin", 4, v1.Rule{Direction: "ingress"})
	q.Members["web"] = addrs("10.81.0.5", "10.81.0.9", "10.83.0.2")
	nftGolden(t, "testdata/policy-change.nft", create, policyScript(created, wantPolicy(q, testPorts)))

	nftGolden(t, "testdata/policy-delete.nft", create, policyScript(created, wantPolicy(model.Policy{}, testPorts)))
}

// TestPolicyRenderStable: the hash, which lets a restart send nothing, must
// not depend on map order.
func TestPolicyRenderStable(t *testing.T) {
	first := wantPolicy(testPolicy(t), testPorts)
	for range 20 {
		again := wantPolicy(testPolicy(t), testPorts)
		if again.hash != first.hash || again.base != first.base || policyScript(first, again) != policyScript(first, first) {
			t.Fatalf("render differs between runs: %s vs %s", first.hash, again.hash)
		}
	}
	if !strings.Contains(first.base, `comment "rules=`+first.hash+`"`) {
		t.Errorf("the ingress chain does not carry the hash:\n%s", first.base)
	}
}

// TestPolicyMembershipIsElements: a port joining a group, a remote member
// leaving, and a port's attach are set elements only — the same rules
// hash (no script), and a netlink batch of NEWSETELEM/DELSETELEM messages
// between the batch's begin and end, nothing else.
func TestPolicyMembershipIsElements(t *testing.T) {
	p := testPolicy(t)
	have := wantPolicy(p, testPorts)
	q := testPolicy(t)
	q.Ports["other"] = groupList(t, "web")
	q.Members["web"] = addrs("10.81.0.5", "10.81.0.7") // other in, 10.81.0.9 (remote) out
	ports := map[string]netip.Addr{"new": netip.MustParseAddr("10.81.0.8")}
	for k, v := range testPorts {
		ports[k] = v
	}
	q.Ports["new"] = groupList(t, "db")
	q.Members["db"] = addrs("10.81.0.6", "10.81.0.8")
	want := wantPolicy(q, ports)
	if want.hash != have.hash || !covers(have, want) {
		t.Fatalf("a membership change needs a script: hash %s -> %s", have.hash, want.hash)
	}

	var types []netlink.HeaderType
	var elems int
	dial := func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			types = append(types, m.Header.Type)
			if m.Header.Type&0xff == unix.NFT_MSG_NEWSETELEM || m.Header.Type&0xff == unix.NFT_MSG_DELSETELEM {
				elems += countElements(t, m.Data)
			}
		}
		// An ack for each message.
		acks := make([]netlink.Message, len(req))
		for i, m := range req {
			acks[i] = netlink.Message{Header: netlink.Header{Type: netlink.Error, Sequence: m.Header.Sequence}, Data: make([]byte, 4)}
		}
		return acks, nil
	}
	if err := applyElements(context.Background(), dial, have, want); err != nil {
		t.Fatal(err)
	}
	setElem := netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
	delElem := netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM)
	if len(types) < 3 || types[0] != unix.NFNL_MSG_BATCH_BEGIN || types[len(types)-1] != unix.NFNL_MSG_BATCH_END {
		t.Fatalf("not one batch: %v", types)
	}
	for _, ty := range types[1 : len(types)-1] {
		if ty != setElem && ty != delElem {
			t.Errorf("message type %#x in a membership change, want set elements only", ty)
		}
	}
	// guarded +2, p_web +1, p_db +1, m_web +1 -1, m_db +1: seven elements
	// in six messages (one per set and kind).
	if got := len(types) - 2; got != 6 || elems != 7 {
		t.Errorf("%d element messages with %d elements, want 6 with 7: %v", got, elems, types)
	}
}

// TestPolicyScale: with N ports in one group of 20 rules (one a
// remote_group rule naming the group), ten other groups naming it, the
// table holds 3N elements and 20+10 rules — linear in N, with rules not
// multiplied by ports — and one more member is three elements, however
// large N.
func TestPolicyScale(t *testing.T) {
	for _, n := range []int{100, 1000} {
		p, ports := scalePolicy(t, n)
		have := wantPolicy(p, ports)
		elems := 0
		for _, set := range have.elems {
			elems += len(set)
		}
		rules := strings.Count(strings.Join(slices.Collect(maps.Values(have.groups)), ""), "add rule ")
		if elems != 3*n || rules != 30 {
			t.Errorf("N=%d: %d elements, %d group rules; want %d and 30", n, elems, rules, 3*n)
		}
		t.Logf("N=%d: %d elements, %d group rules, %d counters", n, elems, rules, len(have.counters))

		extra := netip.AddrFrom4([4]byte{10, 200, 255, 1})
		ports["extra"] = extra
		p.Ports["extra"] = groupList(t, "big")
		p.Members["big"] = append(slices.Clone(p.Members["big"]), extra)
		slices.SortFunc(p.Members["big"], netip.Addr.Compare)
		want := wantPolicy(p, ports)
		if want.hash != have.hash {
			t.Fatalf("N=%d: a new member changes the rules", n)
		}
		changed := 0
		for set := range want.elems {
			add, del := elemDiff(have.elems[set], want.elems[set])
			changed += len(add) + len(del)
		}
		if changed != 3 {
			t.Errorf("N=%d: a new member changes %d elements, want 3 (guarded, p_big, m_big)", n, changed)
		}
	}
}

func scalePolicy(t *testing.T, n int) (model.Policy, map[string]netip.Addr) {
	rules := []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "big"}}
	for i := range 19 {
		rules = append(rules, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: strconv.Itoa(8000 + i)})
	}
	p := model.Policy{Groups: map[string]model.SecurityGroup{"big": testGroup(t, "big", 1, rules...)},
		Ports: map[string]model.GroupList{}, Members: map[string][]netip.Addr{}}
	for i := range 10 {
		name := fmt.Sprintf("ref%d", i)
		p.Groups[name] = testGroup(t, name, 2+i, v1.Rule{Direction: "ingress", RemoteGroup: "big"})
	}
	ports := map[string]netip.Addr{}
	for i := range n {
		name, addr := fmt.Sprintf("p%d", i), netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)})
		ports[name], p.Ports[name] = addr, groupList(t, "big")
		p.Members["big"] = append(p.Members["big"], addr)
	}
	slices.SortFunc(p.Members["big"], netip.Addr.Compare)
	return p, ports
}

func TestParseRuleCounter(t *testing.T) {
	for _, c := range []struct {
		name  string
		group string
		index int
		ok    bool
	}{
		{RuleCounter("db", 0), "db", 0, true},
		{RuleCounter("icmp-admin", 12), "icmp-admin", 12, true},
		{"drop_policy", "", 0, false},
		{"r_x", "", 0, false},
		{"r__3", "", 0, false},
		{"r_db_x", "", 0, false},
	} {
		g, i, ok := parseRuleCounter(c.name)
		if g != c.group || i != c.index || ok != c.ok {
			t.Errorf("parseRuleCounter(%q) = %q, %d, %v; want %q, %d, %v", c.name, g, i, ok, c.group, c.index, c.ok)
		}
	}
}

// countElements counts the elements of a NEWSETELEM/DELSETELEM message: the
// nested entries of its NFTA_SET_ELEM_LIST_ELEMENTS, after the nfgenmsg.
func countElements(t *testing.T, data []byte) int {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ad.Next() {
		if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					n++
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPolicyOfUnknownGroupOnly: a port listing only a group this host has
// not heard of yet (made on another host a moment ago), with no other group
// known, is guarded and limited, so it fails closed until the group comes.
func TestPolicyOfUnknownGroupOnly(t *testing.T) {
	p := model.Policy{
		Ports:   map[string]model.GroupList{"x1": groupList(t, "xn")},
		Members: map[string][]netip.Addr{"xn": addrs("10.81.0.2")},
	}
	got := wantPolicy(p, map[string]netip.Addr{"x1": netip.MustParseAddr("10.81.0.2")})
	if !got.exists {
		t.Fatal("no table for a port whose only group is unknown here: the port would pass everything")
	}
	for _, set := range []string{policySetGuarded, policySetLimited} {
		if !got.elems[set][netip.MustParseAddr("10.81.0.2")] {
			t.Errorf("x1's address is not in %s: %v", set, got.elems[set])
		}
	}
}
