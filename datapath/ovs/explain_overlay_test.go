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

// clusterModel is host h1 of the state the overlay traces in testdata/trace were
// taken on (datapath/ovs TestOverlayTwoHosts: OVS 3.1, userspace datapath,
// VXLAN through br-phy): ba is local, the others are on h2.
func clusterModel() datapath.State {
	nw := func(name, subnet string, id int) model.Network {
		p := netip.MustParsePrefix(subnet)
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), MTU: 1500, ID: id}
	}
	port := func(name, network, ip string) model.Port {
		return model.Port{Name: name, Network: network, Type: v1.PortVeth, IP: netip.MustParseAddr(ip), MAC: model.PortMAC(name)}
	}
	remote := func(name, network, ip string) model.RemotePort {
		p := port(name, network, ip)
		p.Host = "h2"
		return model.RemotePort{Port: p, HostIP: netip.MustParseAddr("10.99.0.2")}
	}
	ba := port("ba", "blue", "10.98.1.10")
	ba.Ofport, ba.Host = 2, "h1"
	return datapath.State{
		Networks: []model.Network{nw("blue", "10.98.1.0/24", 11), nw("red", "10.98.2.0/24", 12), nw("green", "10.98.3.0/24", 13)},
		Routers:  []model.Router{{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}},
		Ports:    []model.Port{ba},
		Remote:   []model.RemotePort{remote("bb", "blue", "10.98.1.11"), remote("rb", "red", "10.98.2.11"), remote("gb", "green", "10.98.3.11")},
	}
}

// TestExplainTraceOverlay: a packet for another host's port is built with that
// port's MAC, the output into the tunnel names the port and its host, the
// trace's second bridge (br-phy, where the encapsulated packet goes) is not
// taken for a step of ours, and a broadcast names the hosts it reaches.
func TestExplainTraceOverlay(t *testing.T) {
	m := clusterModel()
	for _, tc := range []struct {
		file    string
		q       v1.Query
		verdict string
		ports   []string
		owners  []string
		summary string
	}{
		{"overlay-remote", v1.Query{From: "ba", To: addr("10.98.1.11"), Proto: "tcp", DPort: 80}, v1.Delivered, []string{"bb on h2"},
			[]string{"port ba", "port ba", "pipeline", "remote port bb on h2"}, "delivered to port bb on h2 (network blue)"},
		{"overlay-routed", v1.Query{From: "ba", To: addr("10.98.2.11")}, v1.Delivered, []string{"rb on h2"},
			[]string{"port ba", "port ba", "network blue", "routes of network blue", "network red", "remote port rb on h2", "remote port rb on h2"},
			"delivered to port rb on h2 (network red), routed from blue by router r1"},
		{"overlay-arp-flood", v1.Query{From: "ba", To: addr("10.98.1.99")}, v1.Flooded, []string{"host h2"}, nil,
			"port ba's ARP request for it is broadcast to hosts h2, and nobody answers"},
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
			raw, err := os.ReadFile(filepath.Join("testdata", "trace", tc.file+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			// The trace was taken with the packet tracePacket builds.
			if first, _, _ := strings.Cut(string(raw), "\n"); !strings.Contains(first, strings.SplitN(pkt, ",", 2)[0]+",in_port=2") {
				t.Errorf("trace of another packet than %s: %s", pkt, first)
			}
			res, err := explainTrace(q, m, pkt, string(raw))
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.verdict || !slices.Equal(res.Ports, tc.ports) {
				t.Errorf("verdict %s ports %q, want %s %q", res.Verdict, res.Ports, tc.verdict, tc.ports)
			}
			var owners []string
			for _, s := range res.Steps {
				owners = append(owners, s.Owner)
			}
			if tc.owners != nil && !slices.Equal(owners, tc.owners) {
				t.Errorf("owners %q, want %q", owners, tc.owners)
			}
			if !strings.Contains(res.Summary, tc.summary) {
				t.Errorf("summary %q lacks %q", res.Summary, tc.summary)
			}
		})
	}
}
