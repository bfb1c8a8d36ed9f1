package ovs

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

func remotePort(name, network, ip, hostIP string) model.RemotePort {
	return model.RemotePort{Port: model.Port{Name: name, Network: network, IP: netip.MustParseAddr(ip), MAC: model.PortMAC(name), Host: "h2"},
		HostIP: netip.MustParseAddr(hostIP)}
}

// testBackend is a backend without OVS: before the first Prune (primed
// false) changes only touch the state, which is what these tests look at.
// Its log is returned.
func testBackend() (*Backend, *bytes.Buffer) {
	var log bytes.Buffer
	return &Backend{underlay: &datapath.Underlay{LocalIP: netip.MustParseAddr("10.99.0.1"), Kind: datapath.TunnelVXLAN},
		state: newState(), log: slog.New(slog.NewTextHandler(&log, nil))}, &log
}

// TestRemoteSet: what remoteSet leaves out, and why; the rest stands.
func TestRemoteSet(t *testing.T) {
	b, _ := testBackend()
	good := remotePort("bb", "blue", "10.98.1.11", "10.99.0.2")
	noMAC := remotePort("bc", "blue", "10.98.1.12", "10.99.0.2")
	noMAC.Port.MAC = ""
	multicast := remotePort("bd", "blue", "10.98.1.13", "10.99.0.2")
	multicast.Port.MAC = "01:00:5e:00:00:01"
	zero := remotePort("bz", "blue", "10.98.1.17", "10.99.0.2")
	zero.Port.MAC = "00:00:00:00:00:00"
	twice := good
	twice.HostIP = netip.MustParseAddr("10.99.0.3")
	for _, tc := range []struct {
		name string
		bad  model.RemotePort
		want string // in the reason; "" for none: nothing left out
	}{
		{"no MAC", noMAC, "not a unicast Ethernet address"},
		{"multicast MAC", multicast, "not a unicast Ethernet address"},
		{"zero MAC", zero, "not a unicast Ethernet address"},
		{"IPv6", remotePort("be", "blue", "fd00::1", "10.99.0.2"), "not IPv4"},
		{"own host", remotePort("bf", "blue", "10.98.1.14", "10.99.0.1"), "this host's own"},
		{"v6 host", remotePort("bg", "blue", "10.98.1.15", "fd00::2"), "host address"},
		{"bad name", remotePort("B_H", "blue", "10.98.1.16", "10.99.0.3"), "B_H"},
		{"bad network", remotePort("bi", "Blue!", "10.98.1.16", "10.99.0.3"), "network"},
		{"listed twice, differently", twice, "listed twice"},
		{"listed twice, the same", good, ""},
	} {
		set, invalid := b.remoteSet([]model.RemotePort{good, tc.bad})
		if len(set) != 1 || len(set["blue"]) != 1 || set["blue"]["bb"] != good {
			t.Errorf("%s: kept %v, want only bb as given", tc.name, set)
		}
		// The other order: the same result.
		if set2, invalid2 := b.remoteSet([]model.RemotePort{tc.bad, good}); !maps.EqualFunc(set, set2, maps.Equal) ||
			!maps.EqualFunc(invalid, invalid2, maps.Equal) {
			t.Errorf("%s: the order of the ports matters: %v %v, then %v %v", tc.name, set, invalid, set2, invalid2)
		}
		var reasons []string
		for _, ports := range invalid {
			for name, s := range ports {
				reasons = append(reasons, name+": "+s.Reason)
			}
		}
		if tc.want == "" && len(reasons) > 0 || tc.want != "" && (len(reasons) != 1 || !strings.Contains(reasons[0], tc.want)) {
			t.Errorf("%s: left out %q, want one for %q", tc.name, reasons, tc.want)
		}
	}
}

func TestChangedNetworks(t *testing.T) {
	b, _ := testBackend()
	set := func(ports ...model.RemotePort) map[string]map[string]model.RemotePort {
		s, invalid := b.remoteSet(ports)
		if len(invalid) > 0 {
			t.Fatal(invalid)
		}
		return s
	}
	bb, rb := remotePort("bb", "blue", "10.98.1.11", "10.99.0.2"), remotePort("rb", "red", "10.98.2.11", "10.99.0.2")
	moved := bb
	moved.HostIP = netip.MustParseAddr("10.99.0.3")
	for _, tc := range []struct {
		name string
		a, b map[string]map[string]model.RemotePort
		want []string
	}{
		{"same", set(bb, rb), set(rb, bb), nil},
		{"added", set(bb), set(bb, rb), []string{"red"}},
		{"removed", set(bb, rb), set(rb), []string{"blue"}},
		{"all removed", set(bb, rb), set(), []string{"blue", "red"}},
		{"moved host", set(bb, rb), set(moved, rb), []string{"blue"}},
	} {
		got := changedNetworks(tc.a, tc.b)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// logLines returns the log's lines since the last call, and empties it.
func logLines(log *bytes.Buffer) []string {
	lines := slices.Collect(strings.Lines(log.String()))
	log.Reset()
	return lines
}

// TestSetRemotePortsSkips: bad and clashing remote ports are left out, not
// an error; the first by name (or the local port) wins; each is logged once
// per change, not at every call.
func TestSetRemotePortsSkips(t *testing.T) {
	ctx := context.Background()
	b, log := testBackend()
	blue := model.Network{Name: "blue", ID: 11, MTU: 1500}
	b.state.networks["blue"] = blue
	a := remotePort("a", "blue", "10.98.1.11", "10.99.0.2")
	sameMAC := remotePort("b", "blue", "10.98.1.12", "10.99.0.3")
	sameMAC.Port.MAC = a.Port.MAC
	ownHost := remotePort("c", "blue", "10.98.1.13", "10.99.0.1")
	d := remotePort("d", "blue", "10.98.1.14", "10.99.0.2")
	set := []model.RemotePort{d, sameMAC, ownHost, a} // not in name order
	if err := b.SetRemotePorts(ctx, set); err != nil {
		t.Fatalf("SetRemotePorts with bad ports: %v, want them left out", err)
	}
	if got := len(b.state.remote["blue"]); got != 3 {
		t.Errorf("state holds %d remote ports of blue, want a, b and d (the pipeline settles the MAC)", got)
	}
	lines := logLines(log)
	if len(lines) != 2 || !strings.Contains(lines[0], "port=b ") || !strings.Contains(lines[0], "remote port a (host h2)") ||
		!strings.Contains(lines[1], "port=c ") || !strings.Contains(lines[1], "this host's own") {
		t.Errorf("log after the first set:\n%s\nwant b (a has its MAC, first by name) and c (own host), once each", strings.Join(lines, ""))
	}
	for range 3 {
		slices.Reverse(set) // the same set, though not the same list
		if err := b.SetRemotePorts(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	if lines := logLines(log); len(lines) != 0 {
		t.Errorf("the same set again logged:\n%s", strings.Join(lines, ""))
	}
	// a leaves: b takes its MAC, and says so once.
	if err := b.SetRemotePorts(ctx, []model.RemotePort{d, sameMAC, ownHost}); err != nil {
		t.Fatal(err)
	}
	if lines := logLines(log); len(lines) != 1 || !strings.Contains(lines[0], "no longer left out") || !strings.Contains(lines[0], "port=b ") {
		t.Errorf("log after a left:\n%s\nwant b no longer left out", strings.Join(lines, ""))
	}
	// A local port with d's address shadows d; its detach brings d back.
	local := model.Port{Name: "l", Network: "blue", IP: d.Port.IP, MAC: model.PortMAC("l"), Ofport: 5}
	if err := b.putPort(ctx, local); err != nil {
		t.Fatal(err)
	}
	if lines := logLines(log); len(lines) != 1 || !strings.Contains(lines[0], "port=d ") || !strings.Contains(lines[0], "local port l") {
		t.Errorf("log after local port l:\n%s\nwant d left out for l", strings.Join(lines, ""))
	}
	if err := b.removePort(ctx, "l"); err != nil {
		t.Fatal(err)
	}
	if lines := logLines(log); len(lines) != 1 || !strings.Contains(lines[0], "no longer left out") || !strings.Contains(lines[0], "port=d ") {
		t.Errorf("log after local port l left:\n%s\nwant d back", strings.Join(lines, ""))
	}
	// Prune of the same set: nothing new to say.
	b.prime(datapath.State{Networks: []model.Network{blue}}, nil)
	b.primed = false
	remote, invalid := b.remoteSet([]model.RemotePort{d, sameMAC, ownHost})
	b.state.remote, b.invalid = remote, invalid
	b.reportSkips("blue")
	if lines := logLines(log); len(lines) != 0 {
		t.Errorf("the same skips again logged:\n%s", strings.Join(lines, ""))
	}
}

// TestSetRemotePortsUnchanged: the same set again is a pass over the list,
// nothing sent. The backend is primed but has no OpenFlow side: a change
// sent to the switch would panic.
func TestSetRemotePortsUnchanged(t *testing.T) {
	ctx := context.Background()
	b, _ := testBackend()
	set := []model.RemotePort{remotePort("a", "blue", "10.98.1.11", "10.99.0.2"), remotePort("b", "red", "10.98.2.11", "10.99.0.3")}
	remote, _ := b.remoteSet(set)
	b.prime(datapath.State{Networks: []model.Network{{Name: "blue", ID: 11}, {Name: "red", ID: 12}}}, remote)
	slices.Reverse(set)
	if err := b.SetRemotePorts(ctx, set); err != nil {
		t.Fatal(err)
	}
}
