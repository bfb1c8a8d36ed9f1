package pipeline

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// securityGroupsCluster is securityGroups on host h1 of a cluster: h2 has
// web9 (a member of web, as securityGroups says), db9 (a member of db)
// and plain9 (no groups).
func securityGroupsCluster(t testing.TB) Model {
	m := securityGroups(t)
	remote := func(name, network, ip string) model.RemotePort {
		return model.RemotePort{Port: model.Port{Name: name, Network: network, Type: v1.PortVeth, IP: netip.MustParseAddr(ip),
			MAC: model.PortMAC(name), Host: "h2"}, HostIP: host2}
	}
	m.Remote = []model.RemotePort{remote("web9", "front", "10.71.0.9"), remote("db9", "back", "10.72.0.9"), remote("plain9", "front", "10.71.0.20")}
	m.Policy.Members["db"] = addrs("10.72.0.2", "10.72.0.9")
	return m
}

// withPickup is m with the pickup window open.
func withPickup(m Model) Model {
	m.Pickup = true
	return m
}

// TestPolicyFromTunnelAgainstOVS traces, on a real bridge with a tunnel
// port, +new TCP packets without SYN from the tunnel — what an ovs-vswitchd
// restart makes of a connection's packets — and from a local port for
// comparison: the receiving host judges the remote sender's side of the
// reverse by the sender's groups (remote_sender), trusting nothing of the
// other host's — while the pickup window is open; with it closed such a
// packet from the tunnel is judged as it is, as a local one.
func TestPolicyFromTunnelAgainstOVS(t *testing.T) {
	box := overlayBridge(t, 5)
	m := securityGroupsCluster(t)
	d, err := overlayPipeline().Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	installAndCompare(t, box, "br0", d)

	mac, gw := model.PortMAC, model.BridgeMAC
	// ack is a TCP ACK from the tunnel, routed by the other host into
	// network vni: from src's port sport to dst's port dport.
	ack := func(vni int, dstMAC, src, dst string, sport, dport int) string {
		return fmt.Sprintf("tcp,in_port=%d,tun_id=%d,tun_src=10.99.0.2,tun_dst=10.99.0.1,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=63,tp_src=%d,tp_dst=%d,tcp_flags=ack",
			tunnelOfport, vni, gw(map[int]string{1: "front", 2: "back"}[vni]), dstMAC, src, dst, sport, dport)
	}
	tunnelNew := []string{"--ct-next", "trk,new"}
	// The window closed: no remote_sender, a download's data packet from
	// a remote db is judged forward only, and dropped for policy.
	checkTrace(t, "db9 5432 → web1 40000 from the tunnel, window closed: dropped",
		box.Appctl(t, append([]string{"ofproto/trace", "br0", ack(1, mac("web1"), "10.72.0.9", "10.71.0.2", 5432, 40000)}, tunnelNew...)...),
		[]string{"64. priority 0, cookie 0x7601000000000000\n drop", "Datapath actions: drop"})

	d, err = overlayPipeline().Compile(withPickup(m))
	if err != nil {
		t.Fatal(err)
	}
	installAndCompare(t, box, "br0", d)
	for _, c := range []struct {
		name, flow string
		ct, want   []string
	}{
		// The same packet from a local port, for comparison: remote_sender
		// has nothing for it, egress_verdict said the reverse is not allowed.
		{"web1 40000 → db1 22, local: neither way allowed", fmt.Sprintf("tcp,in_port=1,dl_src=%s,dl_dst=%s,nw_src=10.71.0.2,nw_dst=10.72.0.2,nw_ttl=64,tp_src=40000,tp_dst=22,tcp_flags=ack", mac("web1"), gw("front")),
			[]string{"--ct-next", "trk,new", "--ct-next", "trk,new"},
			[]string{"65. No match.", "64. priority 0, cookie 0x7601000000000000\n drop"}},
		// db1's egress (open) allows the reverse, web9's ingress does
		// not: trusting the other host would flip it.
		{"web9 40000 → db1 22 from the tunnel: neither way allowed", ack(2, mac("db1"), "10.71.0.9", "10.72.0.2", 40000, 22), tunnelNew,
			[]string{"65. tcp,in_port=9,nw_src=10.71.0.9, priority 200, cookie 0x76070a4700090000",
				"64. priority 0, cookie 0x7601000000000000\n drop"}},
		// db's rule 0 allows web1 → db9 5432 on db9's side, web1's open
		// egress on web1's: taken as the reverse, committed flipped.
		{"db9 5432 → web1 40000 from the tunnel: a download web1 opened", ack(1, mac("web1"), "10.72.0.9", "10.71.0.2", 5432, 40000), tunnelNew,
			[]string{"65. tcp,in_port=9,nw_src=10.72.0.9, priority 200, cookie 0x76070a4800090000",
				"63. tcp,reg5=0x2,reg6=0x1,tp_dst=5432, priority 2000, cookie 0x7606000008000000",
				"move:NXM_NX_REG1[1]->NXM_NX_REG1[6]", "64. reg1=0x60/0x60, priority 160",
				"Datapath actions: ct(commit,zone=1,mark=0x1/0x1),2"}},
		{"plain9 5432 → web1 40000 from the tunnel: an unguarded sender", ack(1, mac("web1"), "10.71.0.20", "10.71.0.2", 5432, 40000), tunnelNew,
			[]string{"65. in_port=9, priority 100, cookie 0x7601000000000000", "64. reg1=0x60/0x60, priority 160",
				"Datapath actions: ct(commit,zone=1,mark=0x1/0x1),2"}},
	} {
		out := box.Appctl(t, append([]string{"ofproto/trace", "br0", c.flow}, c.ct...)...)
		checkTrace(t, c.name, out, c.want)
	}
}
