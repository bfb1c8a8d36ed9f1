package linux

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

func TestExplainTrace(t *testing.T) {
	s := traceState()
	routes := traceRoutes{InNetns: "10.62.0.2 via 10.61.0.1 dev eth0 src 10.61.0.2", OnHost: "10.62.0.2 dev vnbr-x src 10.62.0.1"}
	for _, tc := range []struct {
		name    string
		q       v1.Query
		verdict string
		reason  string
		ports   string
		stages  []string
		summary string
	}{
		{"same network", v1.Query{From: "web1", To: addr("10.61.0.3"), Proto: "tcp", DPort: 80}, v1.Delivered, "", "web2",
			[]string{"nft bridge ovs_vnet port_web1", "route in netns ns-web1", "bridge "}, "delivered to port web2 (network blue)"},
		{"routed", v1.Query{From: "web1", To: addr("10.62.0.2")}, v1.Delivered, "", "db1",
			[]string{"nft bridge ovs_vnet port_web1", "route in netns ns-web1", "route on the host", "nft inet ovs_vnet forward", "bridge "},
			"delivered to port db1 (network red), routed from blue by router r1"},
		{"isolated", v1.Query{From: "g1", To: addr("10.61.0.2")}, v1.Dropped, v1.DropIsolated, "",
			[]string{"nft bridge ovs_vnet port_g1", "route in netns ns-g1", "route on the host", "nft inet ovs_vnet forward"}, "no router joins"},
		{"spoofed", v1.Query{From: "web1", To: addr("10.61.0.3"), SrcMAC: "02:00:00:00:00:99"}, v1.Dropped, v1.DropSpoofed, "",
			[]string{"nft bridge ovs_vnet port_web1"}, "anti-spoofing"},
		{"masquerade", v1.Query{From: "db1", To: addr("198.51.100.2")}, v1.ToHost, "", "", nil, "masqueraded"},
		{"no route", v1.Query{From: "web1", To: addr("198.51.100.2")}, v1.Dropped, v1.DropNoRoute, "", nil, "does not masquerade"},
		{"gateway", v1.Query{From: "web1", To: addr("10.61.0.1")}, v1.Answered, "", "", nil, "answered by the host as the gateway"},
		{"peer gateway", v1.Query{From: "web1", To: addr("10.62.0.1")}, v1.Answered, "", "", nil, "gateway 10.62.0.1 of network red"},
		{"nobody", v1.Query{From: "web1", To: addr("10.61.0.77")}, v1.Dropped, v1.DropNoNeighbor, "", nil, "no port has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			res, err := explainTrace(q, s, "vnbr", routes)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.verdict || res.Reason != tc.reason || strings.Join(res.Ports, ",") != tc.ports || !res.BestEffort {
				t.Errorf("got %s %q %v best-effort %v, want %s %q %s", res.Verdict, res.Reason, res.Ports, res.BestEffort, tc.verdict, tc.reason, tc.ports)
			}
			for i, want := range tc.stages {
				if i >= len(res.Steps) || !strings.HasPrefix(res.Steps[i].Stage, want) {
					t.Errorf("steps %+v, want stages %v", res.Steps, tc.stages)
					break
				}
			}
			if !strings.Contains(res.Summary, tc.summary) {
				t.Errorf("summary %q lacks %q", res.Summary, tc.summary)
			}
		})
	}
}

// traceState has networks blue and red, which router r1 joins, and green,
// which no router joins; red masquerades.
func traceState() datapath.State {
	var s datapath.State
	for i, n := range []struct {
		name string
		masq bool
	}{{"blue", false}, {"red", true}, {"green", false}} {
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(61 + i), 0, 0}), 24)
		s.Networks = append(s.Networks, model.Network{Name: n.name, Subnet: subnet, Gateway: subnet.Addr().Next(), MTU: 1500, Masquerade: n.masq, ID: i + 1})
	}
	s.Routers = []model.Router{{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}}
	for _, p := range []struct{ name, network, ip string }{
		{"web1", "blue", "10.61.0.2"}, {"web2", "blue", "10.61.0.3"}, {"db1", "red", "10.62.0.2"}, {"g1", "green", "10.63.0.2"},
	} {
		s.Ports = append(s.Ports, model.Port{Name: p.name, Network: p.network, Type: v1.PortVeth, Netns: "ns-" + p.name,
			IP: netip.MustParseAddr(p.ip), MAC: model.PortMAC(p.name), HostIfname: model.HostIfname(p.name)})
	}
	return s
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestExplainTracePolicy: a packet the datapath forwards meets the
// security groups' chains last; the step names the rule that allows it, as
// model.Policy.Allows does, or the drop.
func TestExplainTracePolicy(t *testing.T) {
	s := traceState()
	s.Policy = model.Policy{
		Groups: map[string]model.SecurityGroup{
			"web": testGroup(t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "80"}),
			"db":  testGroup(t, "db", 2, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "web"}),
			"out": testGroup(t, "out", 3, v1.Rule{Direction: "egress", Protocol: "udp", Ports: "53"}),
		},
		Ports:   map[string]model.GroupList{"web1": groupList(t, "web"), "web2": groupList(t, "web"), "db1": groupList(t, "db", "out")},
		Members: map[string][]netip.Addr{"web": addrs("10.61.0.2", "10.61.0.3"), "db": addrs("10.62.0.2"), "out": addrs("10.62.0.2")},
	}
	for _, tc := range []struct {
		name    string
		q       v1.Query
		verdict string
		last    v1.Step
	}{
		{"allowed", v1.Query{From: "web1", To: addr("10.61.0.3"), Proto: "tcp", DPort: 80}, v1.Delivered,
			v1.Step{Stage: "nft inet ovs_vnet_sg ingress", Owner: "rule 0 of security group web", Actions: []string{`tcp dport 80 counter name "r_web_0" accept`}}},
		{"denied port", v1.Query{From: "web1", To: addr("10.61.0.3"), Proto: "tcp", DPort: 81}, v1.Dropped,
			v1.Step{Stage: "nft inet ovs_vnet_sg ingress", Owner: "port web2", Actions: []string{`ip daddr @guarded counter name "drop_policy" drop`}, Drop: v1.DropPolicy}},
		{"routed remote group", v1.Query{From: "web1", To: addr("10.62.0.2"), Proto: "tcp", DPort: 5432}, v1.Delivered,
			v1.Step{Stage: "nft inet ovs_vnet_sg ingress", Owner: "rule 0 of security group db", Actions: []string{`ip saddr @m_web tcp dport 5432 counter name "r_db_0" accept`}}},
		{"egress limited", v1.Query{From: "db1", To: addr("10.61.0.2"), Proto: "tcp", DPort: 80}, v1.Dropped,
			v1.Step{Stage: "nft inet ovs_vnet_sg egress", Owner: "port db1", Actions: []string{`ip saddr @limited counter name "drop_policy" drop`}, Drop: v1.DropPolicy}},
		{"egress to the outside", v1.Query{From: "db1", To: addr("198.51.100.2"), Proto: "udp", DPort: 53}, v1.ToHost,
			v1.Step{Stage: "nft inet ovs_vnet_sg egress", Owner: "rule 0 of security group out", Actions: []string{`meta l4proto udp ct original proto-dst 53 counter name "r_out_0" accept`}}},
		// The gateway is the host's: the input hook, where groups do not judge.
		{"limited source, gateway", v1.Query{From: "db1", To: addr("10.62.0.1")}, v1.Answered,
			v1.Step{Stage: "nft inet ovs_vnet input", Owner: "network red"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			res, err := explainTrace(q, s, "vnbr", traceRoutes{})
			if err != nil {
				t.Fatal(err)
			}
			last := res.Steps[len(res.Steps)-1]
			last.Table = 0
			if tc.last.Actions == nil {
				last.Actions = nil
			}
			if res.Verdict != tc.verdict || last.Stage != tc.last.Stage || last.Owner != tc.last.Owner ||
				strings.Join(last.Actions, "|") != strings.Join(tc.last.Actions, "|") || last.Drop != tc.last.Drop {
				t.Errorf("got %s, last step %+v; want %s, %+v", res.Verdict, last, tc.verdict, tc.last)
			}
			if tc.verdict == v1.Dropped && (res.Reason != v1.DropPolicy || len(res.Ports) != 0 || !strings.Contains(res.Summary, "security groups")) {
				t.Errorf("a policy drop: reason %q ports %v summary %q", res.Reason, res.Ports, res.Summary)
			}
		})
	}
}

// TestExplainTraceNAT: a packet a port sends to an address the host
// translates is traced through the DNAT, the admission and the hairpin SNAT
// to the target port, whose ingress rules judge the dialled address as its
// source, while the sender's egress rules judge what it dialled.
func TestExplainTraceNAT(t *testing.T) {
	s := traceState()
	web2 := model.Target{Port: "web2", Network: "blue", IP: addr("10.61.0.3")}
	s.NAT = model.NAT{
		Floating: []model.FloatingRule{{Name: "pub", Address: addr("203.0.113.50"), Target: model.Target{Port: "db1", Network: "red", IP: addr("10.62.0.2")}}},
		Forwards: []model.ForwardRule{{Name: "web", Proto: model.ProtoTCP, HostPort: 8080, TargetPort: 80, Target: web2}},
	}
	routes := traceRoutes{Local: addrs("127.0.0.1", "198.51.100.1", "10.61.0.1", "10.62.0.1", "10.63.0.1")}
	guarded := s
	guarded.Policy = model.Policy{
		Groups: map[string]model.SecurityGroup{
			"web":    testGroup(t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "80", Remote: "198.51.100.0/24"}),
			"client": testGroup(t, "client", 2, v1.Rule{Direction: "egress", Protocol: "tcp", Ports: "8080", Remote: "198.51.100.1/32"}),
		},
		Ports: map[string]model.GroupList{"web2": groupList(t, "web"), "g1": groupList(t, "client")},
	}
	nat := []string{"nft bridge ovs_vnet port_g1", "route in netns ns-g1", "nft ip ovs_vnet_nat prerouting", "nft inet ovs_vnet forward", "nft inet ovs_vnet postrouting", "bridge "}
	for _, tc := range []struct {
		name    string
		s       datapath.State
		q       v1.Query
		verdict string
		stages  []string
		last    string // the last step's action
		summary string
	}{
		{"forward from another network", s, v1.Query{From: "g1", To: addr("198.51.100.1"), Proto: "tcp", DPort: 8080}, v1.Delivered, nat,
			"to " + model.PortMAC("web2") + " on " + model.HostIfname("web2"), "delivered to port web2 (network blue) through port-forward web, from 198.51.100.1"},
		{"floating IP", s, v1.Query{From: "g1", To: addr("203.0.113.50")}, v1.Delivered, nat[:4], "", "through floating-ip pub"},
		{"the gateway is not forwarded", s, v1.Query{From: "web1", To: addr("10.61.0.1"), Proto: "tcp", DPort: 8080}, v1.Answered, nil, "", "gateway"},
		{"another port", s, v1.Query{From: "g1", To: addr("198.51.100.1"), Proto: "tcp", DPort: 8081}, v1.Dropped, nil, "", ""},
		{"guarded", guarded, v1.Query{From: "g1", To: addr("198.51.100.1"), Proto: "tcp", DPort: 8080}, v1.Delivered, nil,
			`ip saddr 198.51.100.0/24 tcp dport 80 counter name "r_web_0" accept`, ""},
		{"egress limited", guarded, v1.Query{From: "g1", To: addr("203.0.113.50"), Proto: "tcp", DPort: 80}, v1.Dropped, nil,
			`ip saddr @limited counter name "drop_policy" drop`, "security groups"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			res, err := explainTrace(q, tc.s, "vnbr", routes)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.verdict || !strings.Contains(res.Summary, tc.summary) {
				t.Errorf("got %s %q, want %s %q", res.Verdict, res.Summary, tc.verdict, tc.summary)
			}
			for i, want := range tc.stages {
				if i >= len(res.Steps) || !strings.HasPrefix(res.Steps[i].Stage, want) {
					t.Errorf("steps %+v, want stages %v", res.Steps, tc.stages)
					break
				}
			}
			if last := res.Steps[len(res.Steps)-1]; tc.last != "" && strings.Join(last.Actions, "|") != tc.last {
				t.Errorf("last step %+v, want the action %q", last, tc.last)
			}
		})
	}
}

// TestExplainTraceFromOutside: the controller hands the tracer a packet
// from outside as the host translated it; it enters the target's network
// from the host, and the target's ingress rules judge the outside's
// address.
func TestExplainTraceFromOutside(t *testing.T) {
	s := traceState()
	guarded := s
	guarded.Policy = model.Policy{
		Groups: map[string]model.SecurityGroup{"web": testGroup(t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "80", Remote: "198.51.100.0/24"})},
		Ports:  map[string]model.GroupList{"web2": groupList(t, "web")},
	}
	for _, tc := range []struct {
		name    string
		s       datapath.State
		q       v1.Query
		verdict string
		last    string
	}{
		{"delivered", s, v1.Query{FromAddress: addr("192.0.2.7"), To: addr("10.61.0.3"), Proto: "tcp", DPort: 80}, v1.Delivered,
			"to " + model.PortMAC("web2") + " on " + model.HostIfname("web2")},
		{"allowed", guarded, v1.Query{FromAddress: addr("198.51.100.2"), To: addr("10.61.0.3"), Proto: "tcp", DPort: 80}, v1.Delivered,
			`ip saddr 198.51.100.0/24 tcp dport 80 counter name "r_web_0" accept`},
		{"denied", guarded, v1.Query{FromAddress: addr("192.0.2.7"), To: addr("10.61.0.3"), Proto: "tcp", DPort: 80}, v1.Dropped,
			`ip daddr @guarded counter name "drop_policy" drop`},
		{"no port", s, v1.Query{FromAddress: addr("192.0.2.7"), To: addr("10.61.0.99")}, v1.Dropped, "ARP for 10.61.0.99: no port answers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			res, err := explainTrace(q, tc.s, "vnbr", traceRoutes{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Steps[0].Stage != "nft inet ovs_vnet forward" || !strings.Contains(res.Packet, "from "+q.FromAddress.String()) {
				t.Errorf("first step %+v, packet %q", res.Steps[0], res.Packet)
			}
			last := res.Steps[len(res.Steps)-1]
			if res.Verdict != tc.verdict || strings.Join(last.Actions, "|") != tc.last {
				t.Errorf("got %s, last step %+v; want %s, %q", res.Verdict, last, tc.verdict, tc.last)
			}
		})
	}
}

// TestExplainTraceDHCP: UDP to port 67 from a port is a DHCP client's, as
// on OVS (datapath/ovs's explanation): the daemon's socket reads it
// whatever its destination and answers it on a network with DHCP on; with
// DHCP off, or without the daemon's packet sockets, it is dropped as
// dhcp_off. A forged MAC is spoofing still.
func TestExplainTraceDHCP(t *testing.T) {
	s := traceState()
	s.Networks[0].DHCP = true // blue; green's is off
	dhcpStages := []string{"dhcp socket on " + model.HostIfname("web1"), "nft bridge ovs_vnet port_web1"}
	for _, tc := range []struct {
		name    string
		q       v1.Query
		noDHCP  string
		verdict string
		reason  string
		stages  []string
		summary string
	}{
		{"renewal", v1.Query{From: "web1", To: addr("10.61.0.1"), Proto: "udp", DPort: 67}, "", v1.Answered, "", dhcpStages,
			"answered by the daemon (DHCP of network blue)"},
		{"to a port", v1.Query{From: "web1", To: addr("10.61.0.3"), Proto: "udp", DPort: 67}, "", v1.Answered, "", dhcpStages,
			"answered by the daemon (DHCP of network blue)"},
		{"dhcp off", v1.Query{From: "g1", To: addr("10.63.0.1"), Proto: "udp", DPort: 67}, "", v1.Dropped, v1.DropDHCPOff,
			[]string{"dhcp socket on " + model.HostIfname("g1"), "nft bridge ovs_vnet port_g1"}, "DHCP is off"},
		{"no sockets", v1.Query{From: "web1", To: addr("10.61.0.1"), Proto: "udp", DPort: 67}, "no CAP_NET_RAW", v1.Dropped, v1.DropDHCPOff,
			[]string{"nft bridge ovs_vnet port_web1"}, "unanswered: no CAP_NET_RAW"},
		{"forged MAC", v1.Query{From: "web1", To: addr("10.61.0.1"), Proto: "udp", DPort: 67, SrcMAC: "02:00:00:00:00:99"}, "", v1.Dropped, v1.DropSpoofed,
			[]string{"nft bridge ovs_vnet port_web1"}, "anti-spoofing"},
		{"not 67", v1.Query{From: "web1", To: addr("10.61.0.1"), Proto: "udp", DPort: 53}, "", v1.Answered, "",
			[]string{"nft bridge ovs_vnet port_web1", "route in netns", "nft inet ovs_vnet input"}, "answered by the host as the gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			res, err := explainTrace(q, s, "vnbr", traceRoutes{NoDHCP: tc.noDHCP})
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.verdict || res.Reason != tc.reason || len(res.Ports) != 0 {
				t.Errorf("got %s %q %v, want %s %q", res.Verdict, res.Reason, res.Ports, tc.verdict, tc.reason)
			}
			var stages []string
			for _, st := range res.Steps {
				stages = append(stages, st.Stage)
			}
			if len(stages) != len(tc.stages) {
				t.Errorf("stages %q, want %q", stages, tc.stages)
			}
			for i, want := range tc.stages {
				if i >= len(stages) || !strings.HasPrefix(stages[i], want) {
					t.Errorf("stages %q, want %q", stages, tc.stages)
					break
				}
			}
			if !strings.Contains(res.Summary, tc.summary) {
				t.Errorf("summary %q lacks %q", res.Summary, tc.summary)
			}
			if tc.q.DPort == 67 && tc.reason != v1.DropSpoofed && !strings.Contains(res.Packet, "udp sport 68 dport 67") {
				t.Errorf("packet %q: not a DHCP client's", res.Packet)
			}
		})
	}
}
