package ovs

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// devModel is the state the traces in testdata/trace were taken on (a daemon on a
// sandboxed OVS 3.1, captured with ovs-appctl ofproto/trace).
func devModel() datapath.State {
	net := func(name, subnet string, id int, masq bool) model.Network {
		p := netip.MustParsePrefix(subnet)
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), MTU: 1500, Masquerade: masq, ID: id}
	}
	port := func(name, network, ip, mac string, ofport int) model.Port {
		return model.Port{Name: name, Network: network, Type: v1.PortVeth, IP: netip.MustParseAddr(ip), MAC: mac, Ofport: ofport}
	}
	return datapath.State{
		Networks: []model.Network{net("blue", "10.61.0.0/24", 1, false), net("red", "10.62.0.0/24", 2, true), net("green", "10.63.0.0/24", 3, false)},
		Routers:  []model.Router{{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}},
		Ports: []model.Port{
			port("web1", "blue", "10.61.0.2", "72:72:17:b1:8e:99", 1),
			port("web2", "blue", "10.61.0.3", "6a:b9:b7:ed:08:19", 2),
			port("db1", "red", "10.62.0.2", "ce:e4:5f:b6:e9:ce", 3),
			port("g1", "green", "10.63.0.2", "02:8a:fc:aa:a7:12", 4),
		},
	}
}

func TestExplainTrace(t *testing.T) {
	m := devModel()
	for _, tc := range []struct {
		file    string
		q       v1.Query
		packet  string // what tracePacket must build: the packet the trace was taken with
		verdict string
		ports   []string
		reason  string
		stages  []string // the tables passed, by name
		owners  []string
		summary string
	}{
		{"same-network", v1.Query{From: "web1", To: addr("10.61.0.3"), Proto: "tcp", DPort: 80},
			"tcp,in_port=1,dl_src=72:72:17:b1:8e:99,dl_dst=6a:b9:b7:ed:08:19,nw_src=10.61.0.2,nw_dst=10.61.0.3,nw_ttl=64,tcp_src=40000,tcp_dst=80,tcp_flags=syn",
			v1.Delivered, []string{"web2"}, "", []string{"classify", "spoof_guard", "gateway", "l2_forward"},
			[]string{"port web1", "port web1", "pipeline", "port web2"}, "delivered to port web2 (network blue)"},
		{"routed", v1.Query{From: "web1", To: addr("10.62.0.2")},
			"icmp,in_port=1,dl_src=72:72:17:b1:8e:99,dl_dst=16:af:9c:a5:54:24,nw_src=10.61.0.2,nw_dst=10.62.0.2,nw_ttl=64,icmp_type=8,icmp_code=0",
			v1.Delivered, []string{"db1"}, "", []string{"classify", "spoof_guard", "gateway", "route", "path_mtu", "neighbor", "l2_forward"},
			[]string{"port web1", "port web1", "network blue", "routes of network blue", "network red", "port db1", "port db1"},
			"delivered to port db1 (network red), routed from blue by router r1"},
		{"isolated", v1.Query{From: "g1", To: addr("10.61.0.2")}, "",
			v1.Dropped, nil, v1.DropIsolated, []string{"classify", "spoof_guard", "gateway", "route"},
			[]string{"port g1", "port g1", "network green", "network blue"}, "dropped in table 30 (route) by a flow of network blue: no router joins"},
		{"spoofed", v1.Query{From: "web1", To: addr("10.61.0.3"), Proto: "tcp", DPort: 80, Src: addr("10.61.0.99")},
			"tcp,in_port=1,dl_src=72:72:17:b1:8e:99,dl_dst=6a:b9:b7:ed:08:19,nw_src=10.61.0.99,nw_dst=10.61.0.3,nw_ttl=64,tcp_src=40000,tcp_dst=80,tcp_flags=syn",
			v1.Dropped, nil, v1.DropSpoofed, []string{"classify", "spoof_guard"}, []string{"port web1", "port web1"},
			"dropped in table 10 (spoof_guard) by a flow of port web1: its source MAC or IP is not the port's own"},
		{"masquerade", v1.Query{From: "db1", To: addr("198.51.100.2"), Proto: "udp", DPort: 53},
			"udp,in_port=3,dl_src=ce:e4:5f:b6:e9:ce,dl_dst=82:02:dc:01:69:48,nw_src=10.62.0.2,nw_dst=198.51.100.2,nw_ttl=64,udp_src=40000,udp_dst=53",
			v1.ToHost, nil, "", []string{"classify", "spoof_guard", "gateway", "route"}, nil, "masquerades"},
		{"no-route", v1.Query{From: "web1", To: addr("198.51.100.2")}, "",
			v1.Dropped, nil, v1.DropNoRoute, nil, nil, "dropped in table 30 (route) by a flow of pipeline"},
		{"no-neighbor", v1.Query{From: "web1", To: addr("10.62.0.77")}, "",
			v1.Dropped, nil, v1.DropNoNeighbor, nil, nil, "no port has the destination address"},
		{"gateway-ping", v1.Query{From: "web1", To: addr("10.61.0.1")},
			"icmp,in_port=1,dl_src=72:72:17:b1:8e:99,dl_dst=16:af:9c:a5:54:24,nw_src=10.61.0.2,nw_dst=10.61.0.1,nw_ttl=64,icmp_type=8,icmp_code=0",
			v1.Answered, nil, "", nil, nil, "answered in place by the gateway of network blue"},
		{"arp-flood", v1.Query{From: "web1", To: addr("10.61.0.77")},
			"arp,in_port=1,dl_src=72:72:17:b1:8e:99,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.61.0.2,arp_tpa=10.61.0.77,arp_sha=72:72:17:b1:8e:99",
			v1.Flooded, []string{"web2"}, "", nil, nil, "no port of network blue has 10.61.0.77"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			q := tc.q
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			pkt, err := tracePacket(q, m)
			if err != nil {
				t.Fatal(err)
			}
			if tc.packet != "" && pkt != tc.packet {
				t.Errorf("packet\n got %s\nwant %s", pkt, tc.packet)
			}
			raw, err := os.ReadFile(filepath.Join("testdata", "trace", tc.file+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := explainTrace(q, m, pkt, string(raw))
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.verdict || !slices.Equal(res.Ports, tc.ports) || res.Reason != tc.reason {
				t.Errorf("verdict %s ports %v reason %q, want %s %v %q", res.Verdict, res.Ports, res.Reason, tc.verdict, tc.ports, tc.reason)
			}
			var stages, owners []string
			for _, s := range res.Steps {
				stages, owners = append(stages, s.Stage), append(owners, s.Owner)
			}
			if tc.stages != nil && !slices.Equal(stages, tc.stages) {
				t.Errorf("stages %v, want %v", stages, tc.stages)
			}
			if tc.owners != nil && !slices.Equal(owners, tc.owners) {
				t.Errorf("owners %v, want %v", owners, tc.owners)
			}
			if !strings.Contains(res.Summary, tc.summary) {
				t.Errorf("summary %q lacks %q", res.Summary, tc.summary)
			}
		})
	}
}

func TestExplainTraceUnknownOutput(t *testing.T) {
	if _, err := explainTrace(v1.Query{From: "web1", To: addr("10.61.0.3")}, devModel(), "", "Bad openflow flow syntax: x"); err == nil {
		t.Fatal("no error for a trace without tables")
	}
	if _, err := tracePacket(v1.Query{From: "nope", To: addr("10.61.0.3")}, devModel()); err == nil {
		t.Fatal("no error for an unknown port")
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestHostPacket: a query without a port is the packet the host sends
// into a network, translated: in at LOCAL, to the port's MAC, or the
// host's ARP request when no port has the address.
func TestHostPacket(t *testing.T) {
	const host = "02:76:00:00:00:fe"
	for _, c := range []struct {
		q    v1.Query
		want string
	}{
		{v1.Query{FromAddress: addr("198.51.100.2"), To: addr("10.61.0.2"), Proto: v1.ProtoTCP, DPort: 80},
			"tcp,in_port=LOCAL,dl_src=" + host + ",dl_dst=72:72:17:b1:8e:99,nw_src=198.51.100.2,nw_dst=10.61.0.2,nw_ttl=64,tcp_src=40000,tcp_dst=80,tcp_flags=syn"},
		{v1.Query{FromAddress: addr("198.51.100.2"), To: addr("10.62.0.2"), Proto: v1.ProtoICMP},
			"icmp,in_port=LOCAL,dl_src=" + host + ",dl_dst=ce:e4:5f:b6:e9:ce,nw_src=198.51.100.2,nw_dst=10.62.0.2,nw_ttl=64,icmp_type=8,icmp_code=0"},
		{v1.Query{FromAddress: addr("198.51.100.2"), To: addr("10.62.0.77"), Proto: v1.ProtoUDP, DPort: 53},
			"arp,in_port=LOCAL,dl_src=" + host + ",dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=198.51.100.2,arp_tpa=10.62.0.77,arp_sha=" + host},
	} {
		if got, err := hostPacket(c.q, devModel(), host); err != nil || got != c.want {
			t.Errorf("%+v: %s (%v)\nwant %s", c.q, got, err, c.want)
		}
	}
	if _, err := hostPacket(v1.Query{FromAddress: addr("198.51.100.2"), To: addr("192.0.2.7"), Proto: v1.ProtoICMP}, devModel(), host); err == nil {
		t.Error("no error for an address in no network")
	}
}

// TestNoMatch: a rules pass that found no flow is told from the actions
// around it.
func TestNoMatch(t *testing.T) {
	for act, want := range map[string]bool{
		"24. No match.": true, "63. No match": true, "24.   No match.": true,
		"No match.": false, ". No match.": false, "24. resubmit(,24)": false, "24. No match at all": false,
	} {
		if got := noMatch(act); got != want {
			t.Errorf("noMatch(%q) = %v, want %v", act, got, want)
		}
	}
}
