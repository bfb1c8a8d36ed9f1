package exporter

import (
	"context"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/datapath"
)

func staticNAT(s datapath.NATStats) func(context.Context) (datapath.NATStats, error) {
	return func(context.Context) (datapath.NATStats, error) { return s, nil }
}

func sampleNAT() datapath.NATStats {
	return datapath.NATStats{
		Forwards: []datapath.ForwardStats{
			{Name: "web", Connections: 3, Packets: 30, Bytes: 2400},
			{Name: "dns", Connections: 1, Packets: 1, Bytes: 70},
			{Name: "web", Connections: 99}, // a duplicate must not break the scrape
			{Name: "", Connections: 99},
		},
		Floating: []datapath.FloatingStats{{Name: "pub", ConnectionsIn: 5, ConnectionsOut: 2}},
	}
}

// TestNAT: each forward and floating IP has its series while the source
// lists it, and none once it is gone.
func TestNAT(t *testing.T) {
	s := sampleNAT()
	src := &fakeSource{nat: func(context.Context) (datapath.NATStats, error) { return s, nil }}
	reg, _ := newRegistry(t, src, Options{})
	fams := gather(t, reg)
	for _, c := range []struct {
		family, labels string
		want           float64
	}{
		{"ovs_vnet_port_forward_connections_total", "forward=web", 3},
		{"ovs_vnet_port_forward_packets_total", "forward=web", 30},
		{"ovs_vnet_port_forward_bytes_total", "forward=dns", 70},
		{"ovs_vnet_floating_ip_connections_total", "direction=in,floating_ip=pub", 5},
		{"ovs_vnet_floating_ip_connections_total", "direction=out,floating_ip=pub", 2},
	} {
		if v, ok := value(fams, c.family, c.labels); !ok || v != c.want {
			t.Errorf("%s{%s} = %v (%v), want %v", c.family, c.labels, v, ok, c.want)
		}
	}
	s = datapath.NATStats{Forwards: []datapath.ForwardStats{{Name: "dns", Connections: 2}}}
	fams = gather(t, reg)
	if _, ok := value(fams, "ovs_vnet_port_forward_connections_total", "forward=web"); ok {
		t.Error("a deleted forward still has its series")
	}
	if _, ok := fams["ovs_vnet_floating_ip_connections_total"]; ok {
		t.Error("a deleted floating IP still has its series")
	}
}
