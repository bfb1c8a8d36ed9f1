package pipeline

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// tunnelOfport is the tunnel port's ofport in the overlay tests.
const tunnelOfport = 9

// Underlay addresses of the other hosts in the overlay tests.
var (
	host2 = netip.MustParseAddr("10.99.0.2")
	host3 = netip.MustParseAddr("10.99.0.3")
)

func overlayPipeline() Pipeline {
	p := testPipeline()
	p.Tunnel = tunnelOfport
	return p
}

// overlayModel is threeNetworks on host h1 of a cluster: blue has ports on
// h2 and h3 too, red one on h2 (reached by routing from blue), green none
// elsewhere.
func overlayModel() Model {
	m := threeNetworks()
	remote := func(name, network, ip, host string, hostIP netip.Addr) model.RemotePort {
		return model.RemotePort{Port: model.Port{Name: name, Network: network, Type: v1.PortVeth, IP: netip.MustParseAddr(ip),
			MAC: model.PortMAC(name), Host: host}, HostIP: hostIP}
	}
	m.Remote = []model.RemotePort{
		remote("b3", "blue", "10.61.0.10", "h2", host2),
		remote("b4", "blue", "10.61.0.11", "h3", host3),
		remote("b5", "blue", "10.61.0.12", "h2", host2),
		remote("r2p", "red", "10.62.0.10", "h2", host2),
	}
	return m
}

func TestCompileOverlayGolden(t *testing.T) {
	d, err := overlayPipeline().Compile(overlayModel())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/overlay.golden", render(d))
	if _, err := flowset.Diff(space, d, flowset.Installed{}); err != nil {
		t.Fatalf("flows collide: %v", err)
	}
	// A single host compiles remote ports to nothing: no tunnel, no flows.
	single, err := testPipeline().Compile(overlayModel())
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := testPipeline().Compile(threeNetworks())
	if render(single) != render(plain) {
		t.Errorf("remote ports changed a single host's flows:\n%s", render(single))
	}
}

// TestRemoteChangeIsLocal: a remote port that comes or goes changes its own
// two flows and its network's flood group, nothing else — what the backend
// sends for it.
func TestRemoteChangeIsLocal(t *testing.T) {
	p := overlayPipeline()
	m := overlayModel()
	before, err := p.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	m.Remote = append(m.Remote, model.RemotePort{Port: model.Port{Name: "g9", Network: "green", IP: netip.MustParseAddr("10.63.0.9"),
		MAC: model.PortMAC("g9"), Host: "h3"}, HostIP: host3})
	after, err := p.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := flowset.Change(space, before, after)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Add) != 2 || len(plan.Modify)+len(plan.Delete) != 0 || len(plan.GroupModify) != 1 ||
		len(plan.GroupAdd)+len(plan.GroupDelete) != 0 {
		t.Fatalf("one remote port: %d adds, %d modifies, %d deletes, groups +%d ~%d -%d", len(plan.Add), len(plan.Modify),
			len(plan.Delete), len(plan.GroupAdd), len(plan.GroupModify), len(plan.GroupDelete))
	}
	for _, f := range plan.Add {
		if kind, obj, _ := flowset.ParseCookie(f.Cookie); kind != KindRemote || obj != 10<<24|63<<16|9 {
			t.Errorf("added flow with cookie %#x: want kind %d, object 10.63.0.9", f.Cookie, KindRemote)
		}
	}
}

func TestOwnersNameRemotePorts(t *testing.T) {
	m := overlayModel()
	o := NewOwners(m)
	c := space.Cookie(KindRemote, RemoteCookieObject(m.Remote[0].Port), 0)
	got, ok := o.Of(c)
	if !ok || got.String() != "remote port b3 on h2" {
		t.Errorf("Of(%#x) = %q, %v; want remote port b3 on h2", c, got, ok)
	}
	// One the model does not know (any more) is named by its address.
	got, ok = o.Of(space.Cookie(KindRemote, 10<<24|61<<16|77, 0))
	if !ok || got.String() != "remote port 10.61.0.77" {
		t.Errorf("unknown remote port: %q, %v", got, ok)
	}
	if r, ok := DropReason(TableClassify, prioGuard); !ok || r != v1.DropUnknownVNI {
		t.Errorf("classify priority %d drops for %q, %v; want %s", prioGuard, r, ok, v1.DropUnknownVNI)
	}
}

// overlayBridge is a sandbox with bridge br0 as a cluster host has it:
// ports p1..pN at ofports 1..N and a flow-based VXLAN port at tunnelOfport.
func overlayBridge(t *testing.T, ports int) *testbed.Sandbox {
	box := testbed.StartSandbox(t, "../..", "")
	box.Vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13")
	for i := 1; i <= ports; i++ {
		box.Vsctl(t, "add-port", "br0", fmt.Sprintf("p%d", i), "--", "set", "interface", fmt.Sprintf("p%d", i),
			"type=internal", fmt.Sprintf("ofport_request=%d", i))
	}
	box.Vsctl(t, "add-port", "br0", "tun0", "--", "set", "interface", "tun0", "type=vxlan",
		"options:remote_ip=flow", "options:key=flow", "options:local_ip=10.99.0.1", fmt.Sprintf("ofport_request=%d", tunnelOfport))
	return box
}

// TestOverlayAgainstOVS installs the overlay pipeline on a real bridge with
// a flow-based VXLAN port, checks that OVS holds exactly the compiled flows
// and groups (set_field of tun_id and of the NXM tun_dst round-trip), and
// traces packets to and from the tunnel — among them the split horizon: a
// broadcast from the tunnel goes out of no tunnel bucket.
func TestOverlayAgainstOVS(t *testing.T) {
	box := overlayBridge(t, 4)
	d, err := overlayPipeline().Compile(overlayModel())
	if err != nil {
		t.Fatal(err)
	}
	installAndCompare(t, box, "br0", d)
	var groups []string
	for _, g := range d.Groups {
		groups = append(groups, renderGroup(g))
	}
	var dumped []string
	for _, l := range strings.Split(box.Ofctl(t, "dump-groups", "br0"), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "group_id=") {
			dumped = append(dumped, l)
		}
	}
	slices.Sort(groups)
	slices.Sort(dumped)
	if !slices.Equal(groups, dumped) {
		t.Errorf("ovs-ofctl dump-groups differs:\novs:\n%s\nours:\n%s", strings.Join(dumped, "\n"), strings.Join(groups, "\n"))
	}

	mac := func(port string) string { return model.PortMAC(port) }
	gw := func(network string) string { return model.BridgeMAC(network) }
	fromTunnel := func(vni int, rest string) string {
		return fmt.Sprintf("in_port=%d,tun_id=%d,tun_src=10.99.0.2,tun_dst=10.99.0.1,%s", tunnelOfport, vni, rest)
	}
	checkTraces(t, box, "br0", []traceCase{
		{"to a remote port", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + mac("b3") + ",ip,nw_src=10.61.0.2,nw_dst=10.61.0.10,nw_ttl=64",
			[]string{"50. reg0=0x1,dl_dst=" + mac("b3") + ", priority 100, cookie 0x7605" + "0a3d000a" + "0000",
				"set_field:0x1->tun_id set_field:10.99.0.2->tun_dst set_field:0x9->reg3", "output port is 9"}},
		{"routed to a remote port", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=" + gw("blue") + ",ip,nw_src=10.61.0.2,nw_dst=10.62.0.10,nw_ttl=64",
			[]string{"dec_ttl", "set_field:" + mac("r2p") + "->eth_dst", "set_field:0x2->tun_id set_field:10.99.0.2->tun_dst set_field:0x9->reg3", "output port is 9",
				"set_field:" + gw("red") + "->eth_src", "check_pkt_larger(1514)->NXM_NX_REG1[0]"}},
		{"from the tunnel to a local port", fromTunnel(1, "dl_src="+mac("b3")+",dl_dst="+mac("b1")+",ip,nw_src=10.61.0.10,nw_dst=10.61.0.2,nw_ttl=64"),
			[]string{" 0. tun_id=0x1,in_port=9, priority 200", "goto_table:50", "output port is 1"}},
		{"routed from the tunnel", fromTunnel(2, "dl_src="+gw("red")+",dl_dst="+mac("r1p")+",ip,nw_src=10.61.0.10,nw_dst=10.62.0.2,nw_ttl=63"),
			[]string{"output port is 3"}},
		{"unknown VNI", fromTunnel(77, "dl_src="+mac("b3")+",dl_dst="+mac("b1")+",ip,nw_src=10.61.0.10,nw_dst=10.61.0.2"),
			[]string{" 0. in_port=9, priority 150, cookie 0x7601000000000000\n drop"}},
		{"broadcast to the hosts of the network", "in_port=1,dl_src=" + mac("b1") + ",dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.61.0.2,arp_tpa=10.61.0.10,arp_sha=" + mac("b1"),
			[]string{"output:2", "set_field:10.99.0.2->tun_dst output:9", "set_field:10.99.0.3->tun_dst output:9"}},
		{"split horizon", fromTunnel(1, "dl_src="+mac("b3")+",dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.61.0.10,arp_tpa=10.61.0.2,arp_sha="+mac("b3")),
			[]string{"output:1", "output:2", "set_field:10.99.0.2->tun_dst output:9 >> skipping output to input port",
				"set_field:10.99.0.3->tun_dst output:9 >> skipping output to input port"}},
	})
}
