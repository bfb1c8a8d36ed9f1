package linux

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/golden"
	"github.com/ovs-vnet/ovs-vnet/model"
)

var (
	hostA = netip.MustParseAddr("10.98.0.1") // this host
	hostB = netip.MustParseAddr("10.98.0.2")
	hostC = netip.MustParseAddr("10.98.0.3")
)

func remotePort(name, network, ip, mac, host string, hostIP netip.Addr) model.RemotePort {
	return model.RemotePort{HostIP: hostIP, Port: model.Port{Name: name, Network: network, Type: v1.PortVeth,
		IP: netip.MustParseAddr(ip), MAC: mac, Host: host}}
}

// TestDesiredOverlayGolden: what the overlay holds for a set of remote ports,
// the way `bridge fdb` and `ip neigh` show it, and which ports are left out
// and why. The order of the ports does not matter.
func TestDesiredOverlayGolden(t *testing.T) {
	ports := []model.RemotePort{
		remotePort("web-2", "blue", "10.61.0.12", "02:AA:00:00:00:12", "b", hostB),
		remotePort("web-3", "blue", "10.61.0.13", "02:aa:00:00:00:13", "c", hostC),
		remotePort("db-1", "red", "10.62.0.5", "02:aa:00:00:00:21", "b", hostB),
		remotePort("db-2", "red", "10.62.0.6", "02:aa:00:00:00:22", "b", hostB),
		// Listed twice: no clash with itself.
		remotePort("db-2", "red", "10.62.0.6", "02:aa:00:00:00:22", "b", hostB),
		// Left out, each for its own reason; db-2, listed a third time
		// differently, with both of its records.
		remotePort("db-2", "red", "10.62.0.7", "02:aa:00:00:00:22", "c", hostC),
		remotePort("dup-mac", "blue", "10.61.0.99", "02:aa:00:00:00:12", "c", hostC),
		remotePort("dup-ip", "red", "10.62.0.5", "02:aa:00:00:00:99", "c", hostC),
		remotePort("local-mac", "blue", "10.61.0.90", "02:aa:00:00:00:01", "c", hostC),
		remotePort("local-ip", "red", "10.62.0.2", "02:aa:00:00:00:98", "c", hostC),
		remotePort("mcast", "blue", "10.61.0.98", "03:aa:00:00:00:01", "c", hostC),
		remotePort("zero", "blue", "10.61.0.97", "00:00:00:00:00:00", "c", hostC),
		remotePort("v6", "blue", "fd00::1", "02:aa:00:00:00:31", "c", hostC),
		remotePort("self", "blue", "10.61.0.96", "02:aa:00:00:00:32", "a", hostA),
		remotePort("nohost", "blue", "10.61.0.95", "02:aa:00:00:00:33", "x", netip.Addr{}),
		remotePort("v6host", "blue", "10.61.0.94", "02:aa:00:00:00:34", "x", netip.MustParseAddr("fd00::2")),
		remotePort("badnet", "Blue!", "10.61.0.93", "02:aa:00:00:00:35", "c", hostC),
	}
	local := map[string]map[string]model.Port{
		"blue": {"l1": {Name: "l1", Network: "blue", IP: netip.MustParseAddr("10.61.0.2"), MAC: "02:AA:00:00:00:01"}},
		"red":  {"l2": {Name: "l2", Network: "red", IP: netip.MustParseAddr("10.62.0.2"), MAC: "02:aa:00:00:00:02"}},
	}
	want, skipped := desiredOverlay(hostA, local, ports)
	var b strings.Builder
	for _, network := range slices.Sorted(maps.Keys(want)) {
		fmt.Fprintf(&b, "# %s\n%s", network, render(want[network], VXLANName("vnbr", network), model.BridgeName("vnbr", network)))
	}
	b.WriteString("# left out\n")
	for _, network := range slices.Sorted(maps.Keys(skipped)) {
		for _, port := range slices.Sorted(maps.Keys(skipped[network])) {
			fmt.Fprintf(&b, "%s/%s (host %s): %s\n", network, port, skipped[network][port].Host, skipped[network][port].Reason)
		}
	}
	golden.Check(t, "testdata/overlay-remote.txt", b.String())
	for range 5 {
		rand.Shuffle(len(ports), func(i, j int) { ports[i], ports[j] = ports[j], ports[i] })
		again, skippedAgain := desiredOverlay(hostA, local, ports)
		if !equalOverlay(want, again) || !maps.EqualFunc(skipped, skippedAgain, maps.Equal) {
			t.Fatalf("another order of the same ports gives another overlay")
		}
	}
}

// render writes the entries the way `bridge fdb` and `ip neigh` would show
// them, sorted.
func render(e *overlayEntries, vx, br string) string {
	var lines []string
	for k := range e.fdb {
		lines = append(lines, fmt.Sprintf("fdb %s dev %s dst %s self permanent", k.mac, vx, k.dst))
	}
	for mac := range e.static {
		lines = append(lines, fmt.Sprintf("fdb %s dev %s master %s static", mac, vx, br))
	}
	for ip, mac := range e.neigh {
		lines = append(lines, fmt.Sprintf("neigh %s dev %s lladdr %s PERMANENT", ip, br, mac))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// testBackend is a cluster backend that has touched nothing; its log is
// returned.
func testBackend() (*Backend, *bytes.Buffer) {
	var log bytes.Buffer
	return &Backend{prefix: "vnbr", underlay: &datapath.Underlay{LocalIP: hostA, Kind: datapath.TunnelVXLAN},
		log: slog.New(slog.NewTextHandler(&log, nil)), networks: map[string]model.Network{}, routers: map[string]model.Router{},
		local: map[string]map[string]model.Port{}}, &log
}

// logLines returns the log's lines since the last call, and empties it.
func logLines(log *bytes.Buffer) []string {
	lines := slices.Collect(strings.Lines(log.String()))
	log.Reset()
	return lines
}

// TestSetRemoteCheap: SetRemotePorts with the entries the kernel was last
// given touches no netlink (a canceled context shows it: any netlink
// socket would fail), whatever the order of the ports; bad ports are
// logged once, not returned; a local port makes a clashing remote port give
// way, and its detach brings it back.
func TestSetRemoteCheap(t *testing.T) {
	b, log := testBackend()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	a := remotePort("a", "blue", "10.61.0.11", "02:aa:00:00:00:11", "b", hostB)
	sameMAC := remotePort("b", "blue", "10.61.0.12", "02:aa:00:00:00:11", "c", hostC)
	c := remotePort("c", "blue", "10.61.0.13", "02:aa:00:00:00:13", "c", hostC)
	set := []model.RemotePort{sameMAC, c, a}
	if err := b.SetRemotePorts(canceled, set); err == nil {
		t.Fatal("first SetRemotePorts did not reach netlink")
	}
	if lines := logLines(log); len(lines) != 1 || !strings.Contains(lines[0], "port=b ") || !strings.Contains(lines[0], "taken by remote port a (host b)") {
		t.Errorf("log of the first set:\n%s\nwant b left out for a, once", strings.Join(lines, ""))
	}
	// As if that had landed.
	b.remoteApplied = true
	for range 3 {
		slices.Reverse(set)
		if err := b.SetRemotePorts(canceled, set); err != nil {
			t.Fatalf("the same set again reached netlink: %v", err)
		}
	}
	if lines := logLines(log); len(lines) != 0 {
		t.Errorf("the same set again logged:\n%s", strings.Join(lines, ""))
	}
	// Without a, which has no entries, b takes its MAC: that is a change.
	if err := b.SetRemotePorts(canceled, []model.RemotePort{sameMAC, c}); err == nil {
		t.Error("a changed set did not reach netlink")
	}
	b.remoteApplied = true
	if err := b.SetRemotePorts(canceled, set); err == nil {
		t.Error("a changed set did not reach netlink")
	}
	b.remoteApplied = true
	logLines(log)

	// A local port without a clash costs nothing; one with c's address
	// makes c give way (its entries are synced), and its detach brings c
	// back.
	if err := b.claimLocal(canceled, model.Port{Name: "l0", Network: "blue", IP: netip.MustParseAddr("10.61.0.2"), MAC: "02:aa:00:00:00:02"}); err != nil {
		t.Errorf("a local port without a clash reached netlink: %v", err)
	}
	l := model.Port{Name: "l", Network: "blue", IP: c.Port.IP, MAC: "02:aa:00:00:00:99"}
	if err := b.claimLocal(canceled, l); err == nil {
		t.Error("a local port with a remote port's address did not sync the overlay")
	}
	if b.remote["blue"].neigh[c.Port.IP] != "" {
		t.Errorf("c's neighbour entry stays beside local port l: %v", b.remote["blue"].neigh)
	}
	if lines := logLines(log); len(lines) != 1 || !strings.Contains(lines[0], "port=c ") || !strings.Contains(lines[0], "taken by local port l") {
		t.Errorf("log of l's claim:\n%s\nwant c left out for l", strings.Join(lines, ""))
	}
	if err := b.releaseLocal(canceled, l); err == nil {
		t.Error("l's release did not sync the overlay")
	}
	if b.remote["blue"].neigh[c.Port.IP] == "" {
		t.Errorf("c did not come back after l left: %v", b.remote["blue"].neigh)
	}
	if lines := logLines(log); len(lines) != 1 || !strings.Contains(lines[0], "no longer left out") || !strings.Contains(lines[0], "port=c ") {
		t.Errorf("log of l's release:\n%s\nwant c back", strings.Join(lines, ""))
	}
}

func entries(fdb []fdbKey, static []string, neigh map[string]string) *overlayEntries {
	e := newOverlayEntries()
	for _, k := range fdb {
		e.fdb[k] = true
	}
	for _, m := range static {
		e.static[m] = true
	}
	for ip, mac := range neigh {
		e.neigh[netip.MustParseAddr(ip)] = mac
	}
	return e
}

func TestDiffOverlay(t *testing.T) {
	const m1, m2 = "02:aa:00:00:00:01", "02:aa:00:00:00:02"
	two := entries([]fdbKey{{m1, hostB}, {m2, hostC}, {floodMAC, hostB}, {floodMAC, hostC}},
		[]string{m1, m2}, map[string]string{"10.61.0.1": m1, "10.61.0.2": m2})
	// m2 moved from host C to host B: C has no port left.
	moved := entries([]fdbKey{{m1, hostB}, {m2, hostB}, {floodMAC, hostB}},
		[]string{m1, m2}, map[string]string{"10.61.0.1": m1, "10.61.0.2": m2})
	for _, c := range []struct {
		name       string
		have, want *overlayEntries
		ops        []string
	}{
		{"same", two, two, nil},
		{"from nothing", nil, two, []string{
			"add flood dst 10.98.0.2", "add flood dst 10.98.0.3",
			"add fdb 02:aa:00:00:00:01 dst 10.98.0.2", "add fdb 02:aa:00:00:00:02 dst 10.98.0.3",
			"add static 02:aa:00:00:00:01", "add static 02:aa:00:00:00:02",
			"add neigh 10.61.0.1 lladdr 02:aa:00:00:00:01", "add neigh 10.61.0.2 lladdr 02:aa:00:00:00:02"}},
		{"to nothing", two, nil, []string{
			"del neigh 10.61.0.1 lladdr 02:aa:00:00:00:01", "del neigh 10.61.0.2 lladdr 02:aa:00:00:00:02",
			"del static 02:aa:00:00:00:01", "del static 02:aa:00:00:00:02",
			"del flood dst 10.98.0.2", "del flood dst 10.98.0.3",
			"del fdb 02:aa:00:00:00:01 dst 10.98.0.2", "del fdb 02:aa:00:00:00:02 dst 10.98.0.3"}},
		{"port moved host", two, moved, []string{
			"add fdb 02:aa:00:00:00:02 dst 10.98.0.2",
			"del flood dst 10.98.0.3", "del fdb 02:aa:00:00:00:02 dst 10.98.0.3"}},
		{"neighbour with a new MAC", entries(nil, nil, map[string]string{"10.61.0.1": m2}), entries(nil, nil, map[string]string{"10.61.0.1": m1}),
			[]string{"add neigh 10.61.0.1 lladdr 02:aa:00:00:00:01"}},
	} {
		var got []string
		for _, op := range diffOverlay(c.have, c.want) {
			got = append(got, op.String())
		}
		if !slices.Equal(got, c.ops) {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.ops)
		}
	}
}

func TestOverlayRulesGolden(t *testing.T) {
	ensure := OverlayNetwork("vnbr", blue) + OverlayNetwork("vnbr", red)
	nftGolden(t, "testdata/overlay-ensure.nft", "", ensure)
	// Deleting works after the ensure and on nothing at all.
	nftGolden(t, "testdata/overlay-delete.nft", ensure, OverlayNetworkDelete("vnbr", blue))
	nftCheck(t, "overlay delete on nothing", OverlayNetworkDelete("vnbr", blue))
	nftGolden(t, "testdata/overlay-prune.nft", ensure, OverlayPrune("vnbr", []model.Network{red}))
	nftCheck(t, "overlay prune to no network", ensure+OverlayPrune("vnbr", nil))
	nftGolden(t, "testdata/overlay-remove.nft", BridgeSkeleton()+ensure, OverlayRemove())
}

func TestParseBridgeTableOverlay(t *testing.T) {
	data := `{"nftables": [{"table": {"family": "bridge", "name": "ovs_vnet"}},
	{"set": {"family": "bridge", "name": "overlay_gateways", "table": "ovs_vnet", "type": ["ifname", "ipv4_addr"]}},
	{"chain": {"family": "bridge", "table": "ovs_vnet", "name": "overlay_in", "hook": "prerouting"}}]}`
	got, err := parseBridgeTable([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if !got.overlay || len(got.chains) != 0 {
		t.Errorf("parsed %+v, want the overlay seen and no port chain", got)
	}
	if got, _ := parseBridgeTable([]byte(`{"nftables": []}`)); got.overlay {
		t.Errorf("overlay seen in an empty table")
	}
}

func TestCheckUnderlay(t *testing.T) {
	ok := &datapath.Underlay{LocalIP: hostA, Kind: datapath.TunnelVXLAN}
	for _, c := range []struct {
		prefix string
		u      *datapath.Underlay
		err    string // a part of the message; "" for none
	}{
		{"br-vnet", nil, ""},
		{"br-vnet", ok, ""},
		{"br-vnet", &datapath.Underlay{LocalIP: hostA}, ""},
		{"br-vnet", &datapath.Underlay{LocalIP: hostA, Kind: datapath.TunnelGeneve}, "use the OVS backend"},
		{"br-vnet", &datapath.Underlay{LocalIP: hostA, Kind: "gre"}, "unknown tunnel kind"},
		{"br-vnet", &datapath.Underlay{Kind: datapath.TunnelVXLAN}, "not a unicast IPv4 address"},
		{"br-vnet", &datapath.Underlay{LocalIP: netip.MustParseAddr("239.1.1.1")}, "not a unicast IPv4 address"},
		{"br-vnet", &datapath.Underlay{LocalIP: netip.MustParseAddr("fd00::1")}, "not a unicast IPv4 address"},
		{"a-long-prefix", ok, "longer than"},
	} {
		err := checkUnderlay(c.prefix, c.u)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("checkUnderlay(%q, %+v) = %v, want %q", c.prefix, c.u, err, c.err)
		}
	}
	// New refuses before it touches anything (no root needed here).
	_, err := New(context.Background(), "vnbr", &datapath.Underlay{LocalIP: hostA, Kind: datapath.TunnelGeneve})
	if err == nil || !strings.Contains(err.Error(), "Geneve") {
		t.Errorf("New with Geneve: %v", err)
	}
}

func TestVXLANName(t *testing.T) {
	for _, prefix := range []string{"vnbr", "br-vnet", "abcdefghij"} {
		seen := map[string]bool{}
		for _, network := range []string{"blue", "red", "a-very-long-network-name-of-32ch"} {
			vx, br := VXLANName(prefix, network), model.BridgeName(prefix, network)
			if len(vx) > 15 || vx == br || seen[vx] {
				t.Errorf("VXLANName(%q, %q) = %q (bridge %q): too long, the bridge's or taken", prefix, network, vx, br)
			}
			seen[vx] = true
			// The same hash as the bridge, the pattern of bridges not matched.
			if vx[len(prefix)+1:] != br[len(prefix)+1:] || strings.HasPrefix(vx, prefix+"-") {
				t.Errorf("VXLANName(%q, %q) = %q does not pair with bridge %q", prefix, network, vx, br)
			}
		}
	}
}

func TestBridgeMAC(t *testing.T) {
	if got := bridgeMAC("blue", nil); got != model.BridgeMAC("blue") {
		t.Errorf("single host: %s, want model.BridgeMAC's %s", got, model.BridgeMAC("blue"))
	}
	a := bridgeMAC("blue", &datapath.Underlay{LocalIP: hostA})
	b := bridgeMAC("blue", &datapath.Underlay{LocalIP: hostB})
	if a == b || a == bridgeMAC("red", &datapath.Underlay{LocalIP: hostA}) || a == model.BridgeMAC("blue") {
		t.Errorf("cluster bridge MACs not distinct per host and network: %s %s", a, b)
	}
	if a != bridgeMAC("blue", &datapath.Underlay{LocalIP: hostA, Kind: datapath.TunnelVXLAN}) {
		t.Errorf("cluster bridge MAC not stable")
	}
	hw, err := net.ParseMAC(a)
	if err != nil || hw[0]&1 != 0 || hw[0]&2 == 0 {
		t.Errorf("cluster bridge MAC %s: want unicast, locally administered", a)
	}
}

func TestCheckVNI(t *testing.T) {
	for id, ok := range map[int]bool{0: false, 1: true, 1<<24 - 1: true, 1 << 24: false, -1: false} {
		if err := checkVNI(model.Network{Name: "n", ID: id}); (err == nil) != ok {
			t.Errorf("checkVNI(%d) = %v", id, err)
		}
	}
}
