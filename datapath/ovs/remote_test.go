package ovs

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
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

func TestChangedNetworks(t *testing.T) {
	set := func(ports ...model.RemotePort) map[string][]model.RemotePort { return byNetwork(ports) }
	bb, rb := remotePort("bb", "blue", "10.98.1.11", "10.99.0.2"), remotePort("rb", "red", "10.98.2.11", "10.99.0.2")
	moved := bb
	moved.HostIP = netip.MustParseAddr("10.99.0.3")
	for _, tc := range []struct {
		name string
		a, b map[string][]model.RemotePort
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
	if got := len(b.state.kept(b.self(), "blue")); got != 2 {
		t.Errorf("%d remote ports of blue get flows, want a and d", got)
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
	b.state.remote = byNetwork([]model.RemotePort{d, sameMAC, ownHost})
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
	b.prime(datapath.State{Networks: []model.Network{{Name: "blue", ID: 11}, {Name: "red", ID: 12}}}, byNetwork(set))
	slices.Reverse(set)
	if err := b.SetRemotePorts(ctx, set); err != nil {
		t.Fatal(err)
	}
}

// TestOnlyKeptRemoteHaveFlows: the remote ports datapath.SelectRemote
// leaves out get no flows and no flood bucket: a host whose only port in a
// network is left out is not flooded to, and a local port's address is
// delivered locally.
func TestOnlyKeptRemoteHaveFlows(t *testing.T) {
	b, _ := testBackend()
	b.pipeline = pipeline.Pipeline{Space: cookieSpace, Tunnel: 9}
	blue := model.Network{Name: "blue", ID: 11, MTU: 1500}
	b.state.networks["blue"] = blue
	local := model.Port{Name: "l", Network: "blue", IP: netip.MustParseAddr("10.98.1.2"), MAC: model.PortMAC("l"), Ofport: 5}
	b.state.ports["blue"] = map[string]model.Port{"l": local}
	kept := remotePort("a", "blue", "10.98.1.11", "10.99.0.2")
	shadowed := remotePort("b", "blue", local.IP.String(), "10.99.0.3") // l's address
	own := remotePort("c", "blue", "10.98.1.13", "10.99.0.1")           // this host's
	b.state.remote = byNetwork([]model.RemotePort{own, shadowed, kept})
	flows, g := b.remote(b.state, blue)
	if len(flows) != 2 {
		t.Errorf("%d remote flows, want a's 2", len(flows))
	}
	for _, f := range flows {
		if _, obj, _ := flowset.ParseCookie(f.Cookie); obj != pipeline.RemoteCookieObject(kept.Port) {
			t.Errorf("flow of cookie %#x: not a's", f.Cookie)
		}
	}
	if len(g.Buckets) != 2 {
		t.Errorf("flood group has %d buckets, want l's and host 10.99.0.2's: %+v", len(g.Buckets), g.Buckets)
	}
}
