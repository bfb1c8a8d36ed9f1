package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/flows/openflow"
	"github.com/ovs-vnet/ovs-vnet/flows/reconcile"
	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

var space = flowset.CookieSpace{Value: 0x76 << 56, Mask: 0xff << 56}

func testPipeline() Pipeline {
	return Pipeline{Space: space, HostMAC: net.HardwareAddr{0x02, 0x76, 0, 0, 0, 0xfe}}
}

// threeNetworks is the model of the acceptance test: blue masquerades, a
// router joins blue and red, green stands alone. Blue's jumbo MTU makes the
// route to red check the packets' length.
func threeNetworks() Model {
	nw := func(name, subnet string, id int, masq bool, mtu int) model.Network {
		p := netip.MustParsePrefix(subnet)
		// Green answers no DHCP.
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), MTU: mtu, Masquerade: masq, ID: id, DHCP: name != "green"}
	}
	port := func(name, network, ip string, ofport int) model.Port {
		return model.Port{Name: name, Network: network, Type: v1.PortVeth, IP: netip.MustParseAddr(ip),
			MAC: model.PortMAC(name), HostIfname: model.HostIfname(name), Ofport: ofport}
	}
	return Model{
		Networks: []model.Network{nw("blue", "10.61.0.0/24", 1, true, 9000), nw("red", "10.62.0.0/24", 2, false, 1500), nw("green", "10.63.0.0/24", 3, false, 1500)},
		Routers:  []model.Router{{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}},
		Ports: []model.Port{port("b1", "blue", "10.61.0.2", 1), port("b2", "blue", "10.61.0.3", 2),
			port("r1p", "red", "10.62.0.2", 3), port("g1", "green", "10.63.0.2", 4)},
	}
}

// render writes a desired state the way `ovs-ofctl dump-flows --no-stats`
// and `dump-groups` show it, sorted as ovs-ofctl --sort would not: by table,
// then priority from high to low, then text.
func render(d flowset.Desired) string {
	flows := slices.Clone(d.Flows)
	slices.SortStableFunc(flows, func(a, b flowset.Flow) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(b.Priority, a.Priority))
	})
	var lines []string
	for _, f := range flows {
		lines = append(lines, openflow.FormatFlowMod(&openflow.FlowMod{Cookie: f.Cookie, TableID: f.Table, Priority: f.Priority,
			Match: f.Match, Instructions: f.Instructions}))
	}
	for _, g := range d.Groups {
		lines = append(lines, renderGroup(g))
	}
	for _, m := range d.Meters {
		lines = append(lines, renderMeter(m))
	}
	return strings.Join(lines, "\n") + "\n"
}

// renderMeter writes a meter as `ovs-ofctl dump-meters` does, on one line.
func renderMeter(m flowset.Meter) string {
	return fmt.Sprintf("meter=%d pktps burst stats bands= type=drop rate=%d burst_size=%d", m.ID, m.Rate, m.Burst)
}

func renderGroup(g flowset.Group) string {
	s := fmt.Sprintf("group_id=%d,type=all", g.ID)
	for _, b := range g.Buckets {
		s += ",bucket=actions=" + openflow.FormatActions([]openflow.Instruction{openflow.ApplyActions{Actions: b.Actions}})
	}
	return s
}

func TestCompileGolden(t *testing.T) {
	d, err := testPipeline().Compile(threeNetworks())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/three-networks.golden", render(d))
	for _, f := range d.Flows {
		if err := openflow.Validate(f.Match); err != nil {
			t.Errorf("flow %s: %v", render(flowset.Desired{Flows: []flowset.Flow{f}}), err)
		}
	}
}

// TestAgainstOVS installs the compiled pipeline on a real bridge, checks that
// OVS holds exactly the golden flows, that a resync finds nothing to change
// (the flows are sent as OVS reports them), and traces packets through it.
func TestAgainstOVS(t *testing.T) {
	box := testbed.StartSandbox(t, "../..", "")
	box.Vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13")
	for i := 1; i <= 4; i++ {
		box.Vsctl(t, "add-port", "br0", fmt.Sprintf("p%d", i), "--", "set", "interface", fmt.Sprintf("p%d", i),
			"type=internal", fmt.Sprintf("ofport_request=%d", i))
	}
	m := threeNetworks()
	d, err := testPipeline().Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	installAndCompare(t, box, "br0", d)

	mac := func(port string) string { return model.PortMAC(port) }
	gw := func(network string) string { return model.BridgeMAC(network) }
	checkTraces(t, box, "br0", []traceCase{
		{"same network", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + mac("b2") + ",ip,nw_src=10.61.0.2,nw_dst=10.61.0.3,nw_ttl=64",
			[]string{"output port is 2"}},
		// ofproto/trace restores the flow after check_pkt_larger's two ways
		// ("Final flow: unchanged") and commits no TTL for a flow without
		// a protocol: the TTL is witnessed by real packets (e2e
		// TestReachability), dec_ttl here.
		{"routed", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + gw("blue") + ",ip,nw_src=10.61.0.2,nw_dst=10.62.0.2,nw_ttl=64",
			[]string{"check_pkt_larger(1514)->NXM_NX_REG1[0]", "dec_ttl", "set_field:" + gw("red") + "->eth_src", "output port is 3",
				"le(set(eth(src=" + gw("red") + ",dst=" + mac("r1p") + "))"}},
		// The trace takes both ways of check_pkt_larger: the larger packet
		// goes to the controller, metered, as it came in, and on.
		{"routed, too big", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + gw("blue") + ",ip,nw_src=10.61.0.2,nw_dst=10.62.0.2,nw_ttl=64",
			[]string{"35. reg1=0x1/0x1, priority 200, cookie 0x7601000000000000\n                    controller(max_len=128,meter_id=1979711489)",
				"check_pkt_len(size=1514,gt(sample(sample=100.0%,actions(meter(0),userspace(pid=0,controller(reason=1",
				"max_len=128)))),set(eth(src=" + gw("red") + ",dst=" + mac("r1p") + ")),4),le("}},
		{"routed to a larger MTU, not checked", "in_port=3,dl_src=" + mac("r1p") + ",dl_dst=" + gw("red") + ",ip,nw_src=10.62.0.2,nw_dst=10.61.0.2,nw_ttl=64",
			[]string{"Datapath actions: set(eth(src=" + gw("blue") + ",dst=" + mac("b1") + ")),"}},
		{"spoofed source", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + mac("b2") + ",ip,nw_src=10.61.0.77,nw_dst=10.61.0.3",
			[]string{"10. in_port=1, priority 100, cookie 0x7604000000010000\n            drop"}},
		{"isolated", "in_port=4,dl_src=" + mac("g1") + ",dl_dst=" + gw("green") + ",ip,nw_src=10.63.0.2,nw_dst=10.61.0.2",
			[]string{"30. ip,nw_dst=10.61.0.0/24, priority 150, cookie 0x7602000000010000\n            drop"}},
		{"masquerade egress", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + gw("blue") + ",ip,nw_src=10.61.0.2,nw_dst=198.51.100.2",
			[]string{"set_field:02:76:00:00:00:fe->eth_dst set_field:0xfffe->reg3", "output port is 65534", "Datapath actions: set(eth(dst=02:76:00:00:00:fe)),1"}},
		{"no route out", "in_port=3,dl_src=" + mac("r1p") + ",dl_dst=" + gw("red") + ",ip,nw_src=10.62.0.2,nw_dst=198.51.100.2",
			[]string{"30. priority 0, cookie 0x7601000000000000\n            drop"}},
		{"gateway ARP", "in_port=4,dl_src=" + mac("g1") + ",dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.63.0.2,arp_tpa=10.63.0.1,arp_sha=" + mac("g1"),
			[]string{"IN_PORT\n", "arp_spa=10.63.0.1,arp_tpa=10.63.0.2,arp_op=2,arp_sha=" + gw("green")}},
		{"ping a peer's gateway", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + gw("blue") + ",icmp,nw_src=10.61.0.2,nw_dst=10.62.0.1,nw_ttl=64,icmp_type=8,icmp_code=0",
			[]string{"IN_PORT", "Final flow: icmp,reg0=0x1,in_port=1,vlan_tci=0x0000,dl_src=" + gw("blue") + ",dl_dst=" + mac("b1") + ",nw_src=10.62.0.1,nw_dst=10.61.0.2", "icmp_type=0"}},
		// DHCP from 0.0.0.0 and from the port's address: to the daemon
		// through the port's meter.
		{"DHCP discover", "udp,in_port=1,dl_src=" + mac("b1") + ",dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67",
			[]string{"10. udp,in_port=1,dl_src=" + mac("b1") + ",tp_src=68,tp_dst=67, priority 210, cookie 0x7604000000010000\n goto_table:12",
				"12. in_port=1, priority 100, cookie 0x7604000000010000\n controller(meter_id=1979777025)"}},
		{"DHCP renew", "udp,in_port=3,dl_src=" + mac("r1p") + ",dl_dst=" + gw("red") + ",nw_src=10.62.0.2,nw_dst=10.62.0.1,udp_src=68,udp_dst=67",
			[]string{"controller(meter_id=1979777027)"}},
		{"DHCP off", "udp,in_port=4,dl_src=" + mac("g1") + ",dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67",
			[]string{"12. reg0=0x3, priority 150, cookie 0x7602000000030000\n drop", "Datapath actions: drop"}},
		// A port's OFFER, broadcast from its own MAC and address as a
		// rogue server's: dropped before it can flood (dhcp_server).
		{"DHCP server on a port", "udp,in_port=1,dl_src=" + mac("b1") + ",dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.61.0.2,nw_dst=255.255.255.255,udp_src=67,udp_dst=68",
			[]string{"10. udp,tp_src=67,tp_dst=68, priority 220, cookie 0x7601000000000000\n drop", "Datapath actions: drop"}},
		{"DHCP from another MAC", "udp,in_port=1,dl_src=" + mac("b2") + ",dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67",
			[]string{"10. in_port=1, priority 100, cookie 0x7604000000010000\n drop"}},
		{"broadcast", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.61.0.2,arp_tpa=10.61.0.3,arp_sha=" + mac("b1"),
			[]string{fmt.Sprintf("group:%d", space.Group(1)), "output:2"}},
	})
}

// installAndCompare syncs d onto the bridge over OpenFlow, checks that a
// resync finds nothing to change (the flows and groups are sent as OVS
// reports them) and that ovs-ofctl dump-flows shows exactly d's flows.
func installAndCompare(t *testing.T, box *testbed.Sandbox, bridge string, d flowset.Desired) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := ofconn.Dial(ctx, box.Mgmt(bridge), ofconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := reconcile.New(conn, space, reconcile.NewMetrics(prometheus.NewRegistry()))
	if _, err := b.Sync(ctx, d); err != nil {
		t.Fatal(err)
	}
	if res, err := b.Sync(ctx, d); err != nil || res.Plan.Len() != 0 {
		t.Fatalf("resync: %v, plan %+v", err, res.Plan)
	}
	var dumped []string
	for _, l := range strings.Split(strings.TrimSpace(box.Ofctl(t, "dump-flows", bridge, "--no-stats")), "\n") {
		dumped = append(dumped, strings.TrimSpace(l))
	}
	ours := strings.Split(strings.TrimSpace(render(flowset.Desired{Flows: d.Flows})), "\n")
	slices.Sort(dumped)
	slices.Sort(ours)
	if !slices.Equal(dumped, ours) {
		t.Errorf("ovs-ofctl dump-flows differs from the compiled flows:\novs:\n%s\nours:\n%s", strings.Join(dumped, "\n"), strings.Join(ours, "\n"))
	}
}

// traceCase is a packet for ofproto/trace and what its output must contain.
type traceCase struct {
	name, flow string
	want       []string
}

func checkTraces(t *testing.T, box *testbed.Sandbox, bridge string, cases []traceCase) {
	t.Helper()
	for _, tc := range cases {
		checkTrace(t, tc.name, box.Appctl(t, "ofproto/trace", bridge, tc.flow), tc.want)
	}
}

// checkTrace checks that ofproto/trace's output holds each of want,
// compared with runs of white space as one blank: the trace indents.
func checkTrace(t *testing.T, name, out string, want []string) {
	t.Helper()
	flat := strings.Join(strings.Fields(out), " ")
	for _, w := range want {
		if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
			t.Errorf("%s: trace lacks %q:\n%s", name, w, out)
		}
	}
}
