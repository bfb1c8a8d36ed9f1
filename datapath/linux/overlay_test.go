package linux

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

var (
	hostA = netip.MustParseAddr("10.98.0.1") // this host
	hostB = netip.MustParseAddr("10.98.0.2")
	hostC = netip.MustParseAddr("10.98.0.3")
)

func remotePort(name, network, ip, mac, host string, hostIP netip.Addr) model.RemotePort {
	return model.RemotePort{HostIP: hostIP, Port: model.Port{Name: name, Network: network, Type: model.PortVeth,
		IP: netip.MustParseAddr(ip), MAC: mac, Host: host}}
}

// TestDesiredOverlayGolden: what the overlay holds for a set of remote ports,
// the way `bridge fdb` and `ip neigh` show it, and which ports are refused.
func TestDesiredOverlayGolden(t *testing.T) {
	ports := []model.RemotePort{
		remotePort("web-2", "blue", "10.61.0.12", "02:AA:00:00:00:12", "b", hostB),
		remotePort("web-3", "blue", "10.61.0.13", "02:aa:00:00:00:13", "c", hostC),
		remotePort("db-1", "red", "10.62.0.5", "02:aa:00:00:00:21", "b", hostB),
		remotePort("db-2", "red", "10.62.0.6", "02:aa:00:00:00:22", "b", hostB),
		// Listed twice: no clash with itself.
		remotePort("db-2", "red", "10.62.0.6", "02:aa:00:00:00:22", "b", hostB),
		// Refused, each for its own reason.
		remotePort("dup-mac", "blue", "10.61.0.99", "02:aa:00:00:00:12", "c", hostC),
		remotePort("dup-ip", "red", "10.62.0.5", "02:aa:00:00:00:99", "c", hostC),
		remotePort("mcast", "blue", "10.61.0.98", "03:aa:00:00:00:01", "c", hostC),
		remotePort("zero", "blue", "10.61.0.97", "00:00:00:00:00:00", "c", hostC),
		remotePort("v6", "blue", "fd00::1", "02:aa:00:00:00:31", "c", hostC),
		remotePort("self", "blue", "10.61.0.96", "02:aa:00:00:00:32", "a", hostA),
		remotePort("nohost", "blue", "10.61.0.95", "02:aa:00:00:00:33", "x", netip.Addr{}),
		remotePort("v6host", "blue", "10.61.0.94", "02:aa:00:00:00:34", "x", netip.MustParseAddr("fd00::2")),
		remotePort("badnet", "Blue!", "10.61.0.93", "02:aa:00:00:00:35", "c", hostC),
	}
	want, err := desiredOverlay(hostA, ports)
	var b strings.Builder
	for _, network := range slices.Sorted(maps.Keys(want)) {
		fmt.Fprintf(&b, "# %s\n%s", network, want[network].render(VXLANName("vnbr", network), model.BridgeName("vnbr", network)))
	}
	b.WriteString("# refused\n")
	if err != nil {
		b.WriteString(err.Error() + "\n")
	}
	goldenText(t, "testdata/overlay-remote.txt", b.String())
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
	golden(t, "testdata/overlay-ensure.nft", "", ensure)
	// Deleting works after the ensure and on nothing at all.
	golden(t, "testdata/overlay-delete.nft", ensure, OverlayNetworkDelete("vnbr", blue))
	nftCheck(t, "overlay delete on nothing", OverlayNetworkDelete("vnbr", blue))
	golden(t, "testdata/overlay-prune.nft", ensure, OverlayPrune("vnbr", []model.Network{red}))
	nftCheck(t, "overlay prune to no network", ensure+OverlayPrune("vnbr", nil))
	golden(t, "testdata/overlay-remove.nft", BridgeSkeleton()+ensure, OverlayRemove())
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
		{"br-vnet", &datapath.Underlay{Kind: datapath.TunnelVXLAN}, "not a unicast address"},
		{"br-vnet", &datapath.Underlay{LocalIP: netip.MustParseAddr("239.1.1.1")}, "not a unicast address"},
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

// goldenText compares got with the file (rewritten under -update).
func goldenText(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s: got\n%s\nwant\n%s", file, got, want)
	}
}
