package trace

import (
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
)

func TestExplainLinux(t *testing.T) {
	m := devModel()
	for i := range m.Ports {
		m.Ports[i].Netns = "ns-" + m.Ports[i].Name
	}
	routes := Routes{InNetns: "10.62.0.2 via 10.61.0.1 dev eth0 src 10.61.0.2", OnHost: "10.62.0.2 dev vnbr-x src 10.62.0.1"}
	for _, tc := range []struct {
		name    string
		q       Query
		verdict string
		reason  string
		ports   string
		stages  []string
		summary string
	}{
		{"same network", Query{From: "web1", To: addr("10.61.0.3"), Proto: "tcp", DPort: 80}, Delivered, "", "web2",
			[]string{"nft bridge ovs_vnet port_web1", "route in netns ns-web1", "bridge "}, "delivered to port web2 (network blue)"},
		{"routed", Query{From: "web1", To: addr("10.62.0.2")}, Delivered, "", "db1",
			[]string{"nft bridge ovs_vnet port_web1", "route in netns ns-web1", "route on the host", "nft inet ovs_vnet forward", "bridge "},
			"delivered to port db1 (network red), routed from blue by router r1"},
		{"isolated", Query{From: "g1", To: addr("10.61.0.2")}, Dropped, pipeline.DropIsolated, "",
			[]string{"nft bridge ovs_vnet port_g1", "route in netns ns-g1", "route on the host", "nft inet ovs_vnet forward"}, "no router joins"},
		{"spoofed", Query{From: "web1", To: addr("10.61.0.3"), SrcMAC: "02:00:00:00:00:99"}, Dropped, pipeline.DropSpoofed, "",
			[]string{"nft bridge ovs_vnet port_web1"}, "anti-spoofing"},
		{"masquerade", Query{From: "db1", To: addr("198.51.100.2")}, ToHost, "", "", nil, "masqueraded"},
		{"no route", Query{From: "web1", To: addr("198.51.100.2")}, Dropped, pipeline.DropNoRoute, "", nil, "does not masquerade"},
		{"gateway", Query{From: "web1", To: addr("10.61.0.1")}, Answered, "", "", nil, "answered by the host as the gateway"},
		{"peer gateway", Query{From: "web1", To: addr("10.62.0.1")}, Answered, "", "", nil, "gateway 10.62.0.1 of network red"},
		{"nobody", Query{From: "web1", To: addr("10.61.0.77")}, Dropped, pipeline.DropNoNeighbor, "", nil, "no port has"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			res, err := ExplainLinux(q, m, "vnbr", routes)
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
