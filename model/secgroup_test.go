package model

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestSecurityGroupSpec(t *testing.T) {
	ingress := func(r v1.Rule) v1.Rule { r.Direction = v1.DirIngress; return r }
	many := func(n int) []v1.Rule {
		rules := make([]v1.Rule, n)
		for i := range rules {
			rules[i] = v1.Rule{Direction: v1.DirEgress}
		}
		return rules
	}
	for _, c := range []struct {
		name  string
		rules []v1.Rule
		want  []Rule // nil: refused with an error that says wantErr
		err   string
	}{
		{"empty", []v1.Rule{}, []Rule{}, ""},
		{"defaults", []v1.Rule{{Direction: "ingress"}}, []Rule{{Direction: Ingress}}, ""},
		{"every-field", []v1.Rule{
			{Direction: "ingress", Protocol: "tcp", Ports: "22", Remote: "10.0.0.0/8"},
			{Direction: "ingress", Protocol: "tcp", Ports: "8000-8080", RemoteGroup: "web"},
			{Direction: "ingress", Protocol: "icmp"},
			{Direction: "egress", Protocol: "udp", Ports: "53"},
			{Direction: "egress", Protocol: "any", Remote: "192.168.7.9/32"},
		}, []Rule{
			{Direction: Ingress, Proto: ProtoTCP, PortMin: 22, PortMax: 22, Remote: netip.MustParsePrefix("10.0.0.0/8")},
			{Direction: Ingress, Proto: ProtoTCP, PortMin: 8000, PortMax: 8080, RemoteGroup: "web"},
			{Direction: Ingress, Proto: ProtoICMP},
			{Direction: Egress, Proto: ProtoUDP, PortMin: 53, PortMax: 53},
			{Direction: Egress, Remote: netip.MustParsePrefix("192.168.7.9/32")},
		}, ""},
		{"host-bits-masked", []v1.Rule{{Direction: "ingress", Remote: "10.1.2.3/8"}},
			[]Rule{{Direction: Ingress, Remote: netip.MustParsePrefix("10.0.0.0/8")}}, ""},
		{"self-reference", []v1.Rule{{Direction: "ingress", RemoteGroup: "self-reference"}},
			[]Rule{{Direction: Ingress, RemoteGroup: "self-reference"}}, ""},
		{"duplicates-kept", []v1.Rule{{Direction: "egress"}, {Direction: "egress"}},
			[]Rule{{Direction: Egress}, {Direction: Egress}}, ""},
		{"port-range-edges", []v1.Rule{{Direction: "ingress", Protocol: "udp", Ports: "1-65535"}},
			[]Rule{{Direction: Ingress, Proto: ProtoUDP, PortMin: 1, PortMax: 65535}}, ""},
		{"most-rules", many(v1.MaxRules), nil, ""},

		{"Bad_Name", []v1.Rule{}, nil, `name "Bad_Name"`},
		{"rules-missing", nil, nil, "rules is required"},
		{"too-many-rules", many(v1.MaxRules + 1), nil, "rules: 1001 rules, at most 1000"},
		{"no-direction", []v1.Rule{{Direction: "egress"}, {}}, nil, "rules[1].direction must be ingress or egress"},
		{"other-direction", []v1.Rule{{Direction: "in"}}, nil, "rules[0].direction must be ingress or egress"},
		{"other-protocol", []v1.Rule{{Direction: "ingress", Protocol: "sctp"}}, nil, "rules[0].protocol must be tcp, udp, icmp or any"},
		{"protocol-case", []v1.Rule{{Direction: "ingress", Protocol: "TCP"}}, nil, "rules[0].protocol"},
		{"ports-icmp", []v1.Rule{{Direction: "ingress", Protocol: "icmp", Ports: "1"}}, nil, "rules[0].ports applies to tcp and udp only"},
		{"ports-any", []v1.Rule{{Direction: "ingress", Ports: "80"}}, nil, "rules[0].ports applies to tcp and udp only"},
		{"ports-reversed", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "90-80"}}, nil, `rules[0].ports: "90-80" is not a port range`},
		{"ports-zero", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "0"}}, nil, `rules[0].ports: "0" is not a port range`},
		{"ports-zero-start", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "0-80"}}, nil, "is not a port range"},
		{"ports-too-high", []v1.Rule{{Direction: "ingress", Protocol: "udp", Ports: "65536"}}, nil, "is not a port range"},
		{"ports-open-end", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "80-"}}, nil, "is not a port range"},
		{"ports-open-start", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "-80"}}, nil, "is not a port range"},
		{"ports-three", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "1-2-3"}}, nil, "is not a port range"},
		{"ports-signed", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "+80"}}, nil, "is not a port range"},
		{"ports-space", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "80 - 90"}}, nil, "is not a port range"},
		{"ports-list", []v1.Rule{{Direction: "ingress", Protocol: "tcp", Ports: "80,443"}}, nil, "is not a port range"},
		{"remote-address", []v1.Rule{{Direction: "ingress", Remote: "10.0.0.1"}}, nil, `rules[0].remote: "10.0.0.1" is not an IPv4 CIDR`},
		{"remote-v6", []v1.Rule{{Direction: "ingress", Remote: "fd00::/64"}}, nil, "rules[0].remote"},
		{"remote-v4-in-v6", []v1.Rule{{Direction: "ingress", Remote: "::ffff:10.0.0.0/104"}}, nil, "rules[0].remote"},
		{"remote-garbage", []v1.Rule{{Direction: "ingress", Remote: "ten/8"}}, nil, "rules[0].remote"},
		{"remote-and-group", []v1.Rule{{Direction: "ingress", Remote: "10.0.0.0/8", RemoteGroup: "web"}}, nil,
			"rules[0]: remote and remote_group exclude each other"},
		{"remote-group-bad", []v1.Rule{ingress(v1.Rule{RemoteGroup: "Web"})}, nil, `rules[0].remote_group: invalid: name "Web"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewSecurityGroup(c.name, v1.SecurityGroupSpec{Rules: c.rules})
			if c.err != "" {
				if !errors.Is(err, v1.ErrInvalid) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %+v, %v; want v1.ErrInvalid saying %q", g, err, c.err)
				}
				return
			}
			if err != nil || g.Name != c.name || g.ID != 0 {
				t.Fatalf("got %+v, %v", g, err)
			}
			if c.want != nil && !reflect.DeepEqual(g.Rules, c.want) {
				t.Fatalf("rules %+v, want %+v", g.Rules, c.want)
			}
			if len(g.Rules) != len(c.rules) {
				t.Fatalf("%d rules of %d", len(g.Rules), len(c.rules))
			}
		})
	}
}

// TestRuleView: a group's view is its canonical spec, which gives the
// group again.
func TestRuleView(t *testing.T) {
	g, err := NewSecurityGroup("db", v1.SecurityGroupSpec{Rules: []v1.Rule{
		{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "web"},
		{Direction: "ingress", Protocol: "tcp", Ports: "0080-0090", Remote: "10.1.2.3/16"},
		{Direction: "egress"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	g.ID = 4
	v := g.View(nil, []string{"admin"})
	want := v1.SecurityGroup{Name: "db", ID: 4, Rules: []v1.Rule{
		{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "web"},
		{Direction: "ingress", Protocol: "tcp", Ports: "80-90", Remote: "10.1.0.0/16"},
		{Direction: "egress", Protocol: "any"},
	}, Ports: []string{}, ReferencedBy: []string{"admin"}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("view %+v\nwant %+v", v, want)
	}
	again, err := NewSecurityGroup("db", v1.SecurityGroupSpec{Rules: v.Rules})
	if err != nil || !again.SameSpec(g) {
		t.Fatalf("the view's rules give %+v, %v; want %+v", again, err, g)
	}
	b, _ := json.Marshal(g.View(nil, nil))
	if !strings.Contains(string(b), `"ports":[],"referenced_by":[]`) {
		t.Errorf("view %s: empty lists must be [], not null", b)
	}
}

func TestSecurityGroupQueries(t *testing.T) {
	g, err := NewSecurityGroup("web", v1.SecurityGroupSpec{Rules: []v1.Rule{
		{Direction: "ingress", RemoteGroup: "web"},
		{Direction: "ingress", RemoteGroup: "lb"},
		{Direction: "ingress", Protocol: "tcp", Ports: "80", RemoteGroup: "admin"},
		{Direction: "ingress", Protocol: "tcp", Ports: "443", RemoteGroup: "lb"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.References(); !reflect.DeepEqual(got, []string{"admin", "lb"}) {
		t.Errorf("references %v, want [admin lb]: sorted, once each, not itself", got)
	}
	if !g.Has(Ingress) || g.Has(Egress) {
		t.Errorf("has ingress %v, egress %v; want true, false", g.Has(Ingress), g.Has(Egress))
	}
	other := g
	other.ID = 9
	if !g.SameSpec(other) {
		t.Error("another ID is another spec")
	}
	other.Rules = append([]Rule(nil), g.Rules...)
	other.Rules[3].PortMax = 444
	if g.SameSpec(other) {
		t.Error("other rules are the same spec")
	}
}

// TestSecurityGroupJSON: a stored group reads as the request did, and
// gives itself back.
func TestSecurityGroupJSON(t *testing.T) {
	g, err := NewSecurityGroup("db", v1.SecurityGroupSpec{Rules: []v1.Rule{
		{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "web"},
		{Direction: "egress", Remote: "10.0.0.0/8"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	g.ID = 3
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"db","id":3,"rules":[` +
		`{"direction":"ingress","proto":6,"port_min":5432,"port_max":5432,"remote_group":"web"},` +
		`{"direction":"egress","proto":0,"remote":"10.0.0.0/8"}]}`
	if string(b) != want {
		t.Fatalf("stored %s\nwant   %s", b, want)
	}
	var back SecurityGroup
	if err := json.Unmarshal(b, &back); err != nil || back.ID != g.ID || !back.SameSpec(g) {
		t.Fatalf("read back %+v, %v; want %+v", back, err, g)
	}
	if err := json.Unmarshal([]byte(`{"rules":[{"direction":"sideways"}]}`), &back); !errors.Is(err, v1.ErrInvalid) {
		t.Errorf("a record with direction sideways: %v", err)
	}
	if _, err := json.Marshal(Rule{}); err == nil {
		t.Error("a rule without a direction marshals")
	}
}

func TestGroupList(t *testing.T) {
	seventeen := make([]string, v1.MaxPortGroups+1)
	for i := range seventeen {
		seventeen[i] = "g" + strconv.Itoa(i)
	}
	for _, c := range []struct {
		names []string
		want  GroupList
		err   string
	}{
		{nil, "", ""},
		{[]string{}, "", ""},
		{[]string{"web"}, "web", ""},
		{[]string{"web", "ssh", "db"}, "db,ssh,web", ""},
		{seventeen[:v1.MaxPortGroups], GroupList(strings.Join(sorted(seventeen[:v1.MaxPortGroups]), ",")), ""},
		{seventeen, "", "security_groups: 17 groups, at most 16"},
		{[]string{"web", "ssh", "web"}, "", `security_groups: group "web" is listed twice`},
		{[]string{"web", "Ssh"}, "", `security_groups[1]: invalid: name "Ssh"`},
		{[]string{""}, "", "security_groups[0]"},
		{[]string{"a,b"}, "", "security_groups[0]"},
	} {
		l, err := NewGroupList(c.names)
		if c.err != "" {
			if !errors.Is(err, v1.ErrInvalid) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %q, %v; want v1.ErrInvalid saying %q", c.names, l, err, c.err)
			}
			continue
		}
		if err != nil || l != c.want {
			t.Errorf("%q: %q, %v; want %q", c.names, l, err, c.want)
		}
		if got := l.Names(); len(c.names) != len(got) || len(got) > 0 && strings.Join(got, ",") != string(l) {
			t.Errorf("%q: names %q", c.names, got)
		}
		for _, n := range c.names {
			if !l.Has(n) {
				t.Errorf("%q does not have %q", l, n)
			}
		}
		if l.Has("nope") || l.Has("") {
			t.Errorf("%q has what it does not list", l)
		}
	}
}

// TestPortSecurityGroups: a port's groups come from its spec, are stored
// and shown as a list, and are all SameImmutable leaves out.
func TestPortSecurityGroups(t *testing.T) {
	p, err := NewPort("db1", v1.PortSpec{Network: "blue", Netns: "a", IP: "10.0.0.2", SecurityGroups: []string{"web", "db"}})
	if err != nil || p.SecurityGroups != "db,web" {
		t.Fatalf("%+v, %v; want groups db,web", p, err)
	}
	if _, err := NewPort("db1", v1.PortSpec{Network: "blue", Netns: "a", SecurityGroups: []string{"db", "db"}}); !errors.Is(err, v1.ErrInvalid) {
		t.Errorf("a group listed twice: %v", err)
	}
	b, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(b), `"security_groups":["db","web"]`) {
		t.Fatalf("stored %s, %v", b, err)
	}
	var back Port
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Fatalf("read back %+v, %v; want %+v", back, err, p)
	}
	n := Network{Name: "blue", Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}
	if v := p.View(n); !reflect.DeepEqual(v.SecurityGroups, []string{"db", "web"}) {
		t.Errorf("view lists %q", v.SecurityGroups)
	}
	// A port without groups is stored as before them.
	none, _ := NewPort("db1", v1.PortSpec{Network: "blue", Netns: "a", IP: "10.0.0.2"})
	if b, _ := json.Marshal(none); strings.Contains(string(b), "security_groups") {
		t.Errorf("a port without groups is stored %s", b)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","security_groups":["b","a"]}`), &back); err != nil || back.SecurityGroups != "a,b" {
		t.Errorf("a record listing b, a reads %q, %v", back.SecurityGroups, err)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","security_groups":"a"}`), &back); err == nil {
		t.Error("a record with a string for security_groups reads")
	}

	for _, c := range []struct {
		name           string
		spec           v1.PortSpec
		same, sameImmu bool
	}{
		{"same", v1.PortSpec{Network: "blue", Netns: "a", SecurityGroups: []string{"db", "web"}}, true, true},
		{"same-reordered", v1.PortSpec{Network: "blue", Netns: "a", SecurityGroups: []string{"web", "db"}}, true, true},
		{"other-groups", v1.PortSpec{Network: "blue", Netns: "a", SecurityGroups: []string{"web"}}, false, true},
		{"no-groups", v1.PortSpec{Network: "blue", Netns: "a"}, false, true},
		{"other-ip", v1.PortSpec{Network: "blue", Netns: "a", IP: "10.0.0.3", SecurityGroups: []string{"db", "web"}}, false, false},
		{"other-ip-and-groups", v1.PortSpec{Network: "blue", Netns: "a", IP: "10.0.0.3"}, false, false},
		{"other-netns", v1.PortSpec{Network: "blue", Netns: "b", SecurityGroups: []string{"db", "web"}}, false, false},
	} {
		q, err := NewPort("db1", c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.SameSpec(q); got != c.same {
			t.Errorf("%s: SameSpec %v, want %v", c.name, got, c.same)
		}
		if got := p.SameImmutable(q); got != c.sameImmu {
			t.Errorf("%s: SameImmutable %v, want %v", c.name, got, c.sameImmu)
		}
	}
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	slices.Sort(c)
	return c
}

// FuzzSecurityGroupSpec: any rule is refused with v1.ErrInvalid or
// accepted in a canonical form whose view gives it again.
func FuzzSecurityGroupSpec(f *testing.F) {
	f.Add("web", "ingress", "tcp", "8000-8080", "10.1.2.3/8", "")
	f.Add("db", "egress", "udp", "53", "", "web")
	f.Add("x", "ingress", "", "", "", "x")
	f.Add("x", "ingress", "icmp", "1", "0.0.0.0/0", "")
	f.Add("x", "egress", "tcp", "65535-65535", "::/0", "")
	f.Fuzz(func(t *testing.T, name, dir, proto, ports, remote, group string) {
		spec := v1.SecurityGroupSpec{Rules: []v1.Rule{{Direction: dir, Protocol: proto, Ports: ports, Remote: remote, RemoteGroup: group}}}
		g, err := NewSecurityGroup(name, spec)
		if err != nil {
			if !errors.Is(err, v1.ErrInvalid) {
				t.Fatalf("error not v1.ErrInvalid: %v", err)
			}
			return
		}
		r := g.Rules[0]
		switch {
		case r.Direction != Ingress && r.Direction != Egress:
			t.Fatalf("accepted direction %v", r.Direction)
		case r.PortMin > r.PortMax || (r.PortMin == 0) != (r.PortMax == 0):
			t.Fatalf("accepted ports %d-%d", r.PortMin, r.PortMax)
		case r.PortMin != 0 && r.Proto != ProtoTCP && r.Proto != ProtoUDP:
			t.Fatalf("accepted ports for protocol %d", r.Proto)
		case r.Remote.IsValid() && (!r.Remote.Addr().Is4() || r.Remote != r.Remote.Masked()):
			t.Fatalf("accepted remote %s", r.Remote)
		case r.Remote.IsValid() && r.RemoteGroup != "":
			t.Fatal("accepted remote and remote_group")
		}
		again, err := NewSecurityGroup(name, v1.SecurityGroupSpec{Rules: g.View(nil, nil).Rules})
		if err != nil || !again.SameSpec(g) {
			t.Fatalf("view %+v gives %+v, %v; want %+v", g.View(nil, nil).Rules, again, err, g)
		}
	})
}

// FuzzGroupList: a port's groups are refused with v1.ErrInvalid or
// canonical: sorted, distinct names, which JSON gives back.
func FuzzGroupList(f *testing.F) {
	f.Add("web,db")
	f.Add("a,a")
	f.Add("")
	f.Fuzz(func(t *testing.T, joined string) {
		l, err := NewGroupList(strings.Split(joined, ","))
		if err != nil {
			if !errors.Is(err, v1.ErrInvalid) {
				t.Fatalf("error not v1.ErrInvalid: %v", err)
			}
			return
		}
		names := l.Names()
		for i, n := range names {
			if v1.ValidateName(n) != nil || i > 0 && names[i-1] >= n {
				t.Fatalf("accepted %q", l)
			}
		}
		b, err := json.Marshal(l)
		var back GroupList
		if err != nil || json.Unmarshal(b, &back) != nil || back != l {
			t.Fatalf("%q: JSON %s gives %q", l, b, back)
		}
	})
}
