package ovs

import (
	"log/slog"
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

// TestRemoteSet: what SetRemotePorts refuses, and what Prune leaves out
// instead of failing.
func TestRemoteSet(t *testing.T) {
	b := &Backend{underlay: &datapath.Underlay{LocalIP: netip.MustParseAddr("10.99.0.1"), Kind: datapath.TunnelVXLAN},
		log: slog.New(slog.DiscardHandler)}
	good := remotePort("bb", "blue", "10.98.1.11", "10.99.0.2")
	noMAC := remotePort("bc", "blue", "10.98.1.12", "10.99.0.2")
	noMAC.Port.MAC = ""
	multicast := remotePort("bd", "blue", "10.98.1.13", "10.99.0.2")
	multicast.Port.MAC = "01:00:5e:00:00:01"
	for _, tc := range []struct {
		name string
		bad  model.RemotePort
		want string
	}{
		{"no MAC", noMAC, "not a unicast Ethernet address"},
		{"multicast MAC", multicast, "not a unicast Ethernet address"},
		{"IPv6", remotePort("be", "blue", "fd00::1", "10.99.0.2"), "not IPv4"},
		{"own host", remotePort("bf", "blue", "10.98.1.14", "10.99.0.1"), "this host's own"},
		{"v6 host", remotePort("bg", "blue", "10.98.1.15", "fd00::2"), "host address"},
		{"same address", remotePort("bh", "blue", "10.98.1.11", "10.99.0.3"), "port bb has address 10.98.1.11 too"},
		{"bad name", remotePort("B_H", "blue", "10.98.1.16", "10.99.0.3"), "B_H"},
		{"listed twice", good, "listed twice"},
	} {
		if _, err := b.remoteSet([]model.RemotePort{good, tc.bad}, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		set, err := b.remoteSet([]model.RemotePort{good, tc.bad}, true)
		if err != nil || len(set) != 1 || len(set["blue"]) != 1 || set["blue"]["bb"].Port.Name != "bb" {
			t.Errorf("%s, skipping: %v, %v; want only bb", tc.name, set, err)
		}
	}
}

func TestChangedNetworks(t *testing.T) {
	b := &Backend{underlay: &datapath.Underlay{LocalIP: netip.MustParseAddr("10.99.0.1")}, log: slog.New(slog.DiscardHandler)}
	set := func(ports ...model.RemotePort) map[string]map[string]model.RemotePort {
		s, err := b.remoteSet(ports, false)
		if err != nil {
			t.Fatal(err)
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
