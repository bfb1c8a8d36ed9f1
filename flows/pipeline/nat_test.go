package pipeline

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// natModel is threeNetworks with translations: a floating IP of red's
// port (red does not masquerade), forwards of two host ports to one of
// blue's ports (one answer's flow), and a UDP forward on one host address
// to red's port.
func natModel() Model {
	m := threeNetworks()
	target := func(port string) model.Target {
		for _, p := range m.Ports {
			if p.Name == port {
				return model.Target{Port: p.Name, Network: p.Network, IP: p.IP}
			}
		}
		panic("no port " + port)
	}
	m.NAT = model.NAT{
		Floating: []model.FloatingRule{{Name: "pub", Address: netip.MustParseAddr("203.0.113.50"), Target: target("r1p")}},
		Forwards: []model.ForwardRule{
			{Name: "dns", Proto: model.ProtoUDP, HostIP: netip.MustParseAddr("192.0.2.9"), HostPort: 53, TargetPort: 5353, Target: target("r1p")},
			{Name: "web", Proto: model.ProtoTCP, HostPort: 8080, TargetPort: 80, Target: target("b1")},
			{Name: "web2", Proto: model.ProtoTCP, HostPort: 8081, TargetPort: 80, Target: target("b1")},
		},
	}
	return m
}

func TestNATGolden(t *testing.T) {
	d, err := testPipeline().Compile(natModel())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/nat.golden", render(d))
	if _, err := flowset.Diff(space, d, flowset.Installed{}); err != nil {
		t.Errorf("the flows collide: %v", err)
	}
}

// TestNATOwners: every NAT flow is named by what it serves.
func TestNATOwners(t *testing.T) {
	m := natModel()
	o := NewOwners(m)
	for _, f := range testPipeline().NAT(m.NAT, map[string]model.Network{"blue": m.Networks[0], "red": m.Networks[1]}) {
		owner, ok := o.Of(f.Cookie)
		text := openflow.FormatFlowMod(&openflow.FlowMod{Cookie: f.Cookie, TableID: f.Table, Priority: f.Priority, Match: f.Match})
		if !ok || owner.Kind != "nat" || owner.Name == "" {
			t.Errorf("flow %s: owner %+v (%v)", text, owner, ok)
		}
	}
	for _, c := range []struct {
		kind   uint8
		object uint32
		want   string
	}{
		{KindNAT, addrObject(netip.MustParseAddr("10.61.0.2")), "b1"},
		{KindNAT, addrObject(netip.MustParseAddr("10.61.0.9")), "10.61.0.9"},
		{KindHostBound, uint32(model.ProtoTCP)<<16 | 8080, "tcp/8080"},
		{KindHostBound, uint32(model.ProtoUDP)<<16 | 53, "udp/53"},
		{KindHostBound, addrObject(netip.MustParseAddr("203.0.113.50")), "203.0.113.50"},
	} {
		if owner, _ := o.Of(space.Cookie(c.kind, c.object, 0)); owner.Name != c.want {
			t.Errorf("kind %d object %#x: %q, want %q", c.kind, c.object, owner.Name, c.want)
		}
	}
}

// TestNATAgainstOVS installs the NAT model on a real bridge, port 65534
// being the host, and traces the packets of translated connections: to
// the host and from it, both ways, and isolation still deciding for the
// networks' subnets.
func TestNATAgainstOVS(t *testing.T) {
	box := testbed.StartSandbox(t, "../..", "")
	box.Vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13",
		"other_config:hwaddr=02:76:00:00:00:fe")
	for i := 1; i <= 4; i++ {
		box.Vsctl(t, "add-port", "br0", fmt.Sprintf("p%d", i), "--", "set", "interface", fmt.Sprintf("p%d", i),
			"type=internal", fmt.Sprintf("ofport_request=%d", i))
	}
	d, err := testPipeline().Compile(natModel())
	if err != nil {
		t.Fatal(err)
	}
	installAndCompare(t, box, "br0", d)

	mac := func(port string) string { return model.PortMAC(port) }
	gw := func(network string) string { return model.BridgeMAC(network) }
	host := "02:76:00:00:00:fe"
	checkTraces(t, box, "br0", []traceCase{
		// The host's DNAT'd packet into red, which does not masquerade.
		{"host → floating port", "in_port=LOCAL,dl_src=" + host + ",dl_dst=" + gw("red") + ",tcp,nw_src=198.51.100.2,nw_dst=10.62.0.2,tp_src=40000,tp_dst=22",
			[]string{"set_field:" + mac("r1p") + "->eth_dst", "output port is 3"}},
		{"host's ARP for red's port", "in_port=LOCAL,dl_src=" + host + ",dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.62.0.9,arp_tpa=10.62.0.2,arp_sha=" + host,
			[]string{"IN_PORT", "arp_op=2,arp_sha=" + mac("r1p")}},
		{"floating port's own connection out", "in_port=3,dl_src=" + mac("r1p") + ",dl_dst=" + gw("red") + ",tcp,nw_src=10.62.0.2,nw_dst=198.51.100.2,tp_src=40000,tp_dst=80",
			[]string{"output port is 65534", "Datapath actions: set(eth(dst=" + host + ")),"}},
		{"forward's answer from blue", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + gw("blue") + ",tcp,nw_src=10.61.0.2,nw_dst=198.51.100.2,tp_src=80,tp_dst=40000",
			[]string{"30. tcp,reg0=0x1,nw_src=10.61.0.2,tp_src=80, priority 110", "output port is 65534"}},
		{"UDP forward's answer from red", "in_port=3,dl_src=" + mac("r1p") + ",dl_dst=" + gw("red") + ",udp,nw_src=10.62.0.2,nw_dst=198.51.100.2,udp_src=5353,udp_dst=40000",
			[]string{"output port is 65534"}},
		// green neither masquerades nor is a target: its port reaches the
		// forward through the host's address, and only that.
		{"another network → host port", "in_port=4,dl_src=" + mac("g1") + ",dl_dst=" + gw("green") + ",tcp,nw_src=10.63.0.2,nw_dst=192.0.2.1,tp_src=40000,tp_dst=8080",
			[]string{"output port is 65534"}},
		{"another network → floating address", "in_port=4,dl_src=" + mac("g1") + ",dl_dst=" + gw("green") + ",icmp,nw_src=10.63.0.2,nw_dst=203.0.113.50,icmp_type=8,icmp_code=0",
			[]string{"output port is 65534"}},
		{"another network → host_ip's port", "in_port=4,dl_src=" + mac("g1") + ",dl_dst=" + gw("green") + ",udp,nw_src=10.63.0.2,nw_dst=192.0.2.9,udp_src=40000,udp_dst=53",
			[]string{"output port is 65534"}},
		{"another network → host port on another address", "in_port=4,dl_src=" + mac("g1") + ",dl_dst=" + gw("green") + ",udp,nw_src=10.63.0.2,nw_dst=192.0.2.1,udp_src=40000,udp_dst=53",
			[]string{"30. priority 0, cookie 0x7601000000000000\n            drop"}},
		{"green's other traffic out", "in_port=4,dl_src=" + mac("g1") + ",dl_dst=" + gw("green") + ",tcp,nw_src=10.63.0.2,nw_dst=192.0.2.1,tp_src=40000,tp_dst=8082",
			[]string{"30. priority 0, cookie 0x7601000000000000\n            drop"}},
		{"isolation wins on a forwarded port", "in_port=4,dl_src=" + mac("g1") + ",dl_dst=" + gw("green") + ",tcp,nw_src=10.63.0.2,nw_dst=10.61.0.2,tp_src=40000,tp_dst=8080",
			[]string{"30. ip,nw_dst=10.61.0.0/24, priority 150, cookie 0x7602000000010000\n            drop"}},
		{"isolation wins for a target's answer", "in_port=3,dl_src=" + mac("r1p") + ",dl_dst=" + gw("red") + ",udp,nw_src=10.62.0.2,nw_dst=10.63.0.2,udp_src=5353,udp_dst=40000",
			[]string{"30. ip,nw_dst=10.63.0.0/24, priority 150, cookie 0x7602000000030000\n            drop"}},
	})
}
