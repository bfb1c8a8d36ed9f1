package datapath

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestSelectRemote holds the rules of which remote ports a host programs:
// every reason a port is left out, and who wins a clash. The outcome is the
// same whatever the order of the ports.
func TestSelectRemote(t *testing.T) {
	self := netip.MustParseAddr("10.99.0.1")
	h2, h3 := netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")
	rp := func(name, ip, mac string, hostIP netip.Addr) model.RemotePort {
		var addr netip.Addr
		if ip != "" {
			addr = netip.MustParseAddr(ip)
		}
		return model.RemotePort{Port: model.Port{Name: name, Network: "blue", IP: addr, MAC: mac, Host: "h" + name}, HostIP: hostIP}
	}
	good := rp("a", "10.61.0.10", "02:aa:00:00:00:10", h2)
	with := func(r model.RemotePort, f func(*model.RemotePort)) model.RemotePort {
		f(&r)
		return r
	}
	local := []model.Port{{Name: "l1", Network: "blue", IP: netip.MustParseAddr("10.61.0.2"), MAC: "02:AA:00:00:00:01"}}
	for _, tc := range []struct {
		name   string
		remote []model.RemotePort
		kept   []string // names
		skips  []string // "network/name (host): reason"
	}{
		{"none", nil, nil, nil},
		{"good", []model.RemotePort{good}, []string{"a"}, nil},
		{"bad network name", []model.RemotePort{with(good, func(r *model.RemotePort) { r.Port.Network = "Blue!" })}, nil,
			[]string{`Blue!/a (ha): network: invalid: name "Blue!" must be 1-32 characters of a-z, 0-9 and '-', starting and ending with a letter or digit`}},
		{"bad name", []model.RemotePort{rp("B_1", "10.61.0.11", "02:aa:00:00:00:11", h2)}, nil,
			[]string{`blue/B_1 (hB_1): invalid: name "B_1" must be 1-32 characters of a-z, 0-9 and '-', starting and ending with a letter or digit`}},
		{"no address", []model.RemotePort{rp("b", "", "02:aa:00:00:00:11", h2)}, nil,
			[]string{`blue/b (hb): address "invalid IP" is not IPv4`}},
		{"IPv6 address", []model.RemotePort{rp("b", "fd00::1", "02:aa:00:00:00:11", h2)}, nil,
			[]string{`blue/b (hb): address "fd00::1" is not IPv4`}},
		{"unspecified address", []model.RemotePort{rp("b", "0.0.0.0", "02:aa:00:00:00:11", h2)}, nil,
			[]string{`blue/b (hb): address 0.0.0.0 is not a unicast address`}},
		{"multicast address", []model.RemotePort{rp("b", "224.0.0.1", "02:aa:00:00:00:11", h2)}, nil,
			[]string{`blue/b (hb): address 224.0.0.1 is not a unicast address`}},
		{"broadcast address", []model.RemotePort{rp("b", "255.255.255.255", "02:aa:00:00:00:11", h2)}, nil,
			[]string{`blue/b (hb): address 255.255.255.255 is not a unicast address`}},
		{"no MAC", []model.RemotePort{rp("b", "10.61.0.11", "", h2)}, nil,
			[]string{`blue/b (hb): MAC "" is not a unicast Ethernet address`}},
		{"multicast MAC", []model.RemotePort{rp("b", "10.61.0.11", "01:00:5e:00:00:01", h2)}, nil,
			[]string{`blue/b (hb): MAC "01:00:5e:00:00:01" is not a unicast Ethernet address`}},
		{"zero MAC", []model.RemotePort{rp("b", "10.61.0.11", "00:00:00:00:00:00", h2)}, nil,
			[]string{`blue/b (hb): MAC "00:00:00:00:00:00" is not a unicast Ethernet address`}},
		{"long MAC", []model.RemotePort{rp("b", "10.61.0.11", "02:00:00:00:00:00:00:01", h2)}, nil,
			[]string{`blue/b (hb): MAC "02:00:00:00:00:00:00:01" is not a unicast Ethernet address`}},
		{"no host address", []model.RemotePort{rp("b", "10.61.0.11", "02:aa:00:00:00:11", netip.Addr{})}, nil,
			[]string{`blue/b (hb): no host address`}},
		{"IPv6 host address", []model.RemotePort{rp("b", "10.61.0.11", "02:aa:00:00:00:11", netip.MustParseAddr("fd00::2"))}, nil,
			[]string{`blue/b (hb): host address fd00::2 is not IPv4`}},
		{"IPv4-mapped host address", []model.RemotePort{rp("b", "10.61.0.11", "02:aa:00:00:00:11", netip.MustParseAddr("::ffff:10.99.0.2"))}, nil,
			[]string{`blue/b (hb): host address ::ffff:10.99.0.2 is not IPv4`}},
		{"unspecified host address", []model.RemotePort{rp("b", "10.61.0.11", "02:aa:00:00:00:11", netip.IPv4Unspecified())}, nil,
			[]string{`blue/b (hb): host address 0.0.0.0 is not a unicast address`}},
		{"multicast host address", []model.RemotePort{rp("b", "10.61.0.11", "02:aa:00:00:00:11", netip.MustParseAddr("239.1.1.1"))}, nil,
			[]string{`blue/b (hb): host address 239.1.1.1 is not a unicast address`}},
		{"broadcast host address", []model.RemotePort{rp("b", "10.61.0.11", "02:aa:00:00:00:11", netip.MustParseAddr("255.255.255.255"))}, nil,
			[]string{`blue/b (hb): host address 255.255.255.255 is not a unicast address`}},
		{"this host's own address", []model.RemotePort{rp("b", "10.61.0.11", "02:aa:00:00:00:11", self)}, nil,
			[]string{`blue/b (hb): host address 10.99.0.1 is this host's own`}},
		{"listed twice, the same", []model.RemotePort{good, good}, []string{"a"}, nil},
		{"listed twice, differing in what is not programmed", []model.RemotePort{good, with(good, func(r *model.RemotePort) { r.Port.Ofport, r.Port.HostIfname = 7, "vn-a" })}, []string{"a"}, nil},
		{"listed twice, differently: neither", []model.RemotePort{good, with(good, func(r *model.RemotePort) { r.HostIP = h3 })}, nil,
			[]string{`blue/a (ha): listed twice, differently`}},
		{"listed twice, once invalid: neither", []model.RemotePort{good, with(good, func(r *model.RemotePort) { r.Port.MAC = "" })}, nil,
			[]string{`blue/a (ha): listed twice, differently`}},
		{"the same name in two networks", []model.RemotePort{good, with(good, func(r *model.RemotePort) { r.Port.Network = "red" })},
			[]string{"a", "a"}, nil},
		{"a local port's address", []model.RemotePort{rp("b", "10.61.0.2", "02:aa:00:00:00:11", h2)}, nil,
			[]string{`blue/b (hb): address 10.61.0.2 is taken by local port l1`}},
		{"a local port's MAC, in another case", []model.RemotePort{rp("b", "10.61.0.11", "02:aa:00:00:00:01", h2)}, nil,
			[]string{`blue/b (hb): MAC 02:aa:00:00:00:01 is taken by local port l1`}},
		{"a local port's address in another network", []model.RemotePort{with(rp("b", "10.61.0.2", "02:aa:00:00:00:01", h2),
			func(r *model.RemotePort) { r.Port.Network = "red" })}, []string{"b"}, nil},
		{"an address twice: the first by name wins", []model.RemotePort{good, rp("b", "10.61.0.10", "02:aa:00:00:00:11", h3)},
			[]string{"a"}, []string{`blue/b (hb): address 10.61.0.10 is taken by remote port a (host ha)`}},
		{"a MAC twice, written otherwise: the first by name wins", []model.RemotePort{good, rp("b", "10.61.0.11", "02:AA:00:00:00:10", h3)},
			[]string{"a"}, []string{`blue/b (hb): MAC 02:aa:00:00:00:10 is taken by remote port a (host ha)`}},
		{"a port left out claims nothing", []model.RemotePort{
			rp("a", "10.61.0.2", "02:aa:00:00:00:10", h2),   // l1's address
			rp("b", "10.61.0.12", "02:aa:00:00:00:10", h3)}, // a's MAC: a has no flows
			[]string{"b"}, []string{`blue/a (ha): address 10.61.0.2 is taken by local port l1`}},
		{"a clash in one network only", []model.RemotePort{good, with(rp("b", "10.61.0.10", "02:aa:00:00:00:10", h3),
			func(r *model.RemotePort) { r.Port.Network = "red" })}, []string{"a", "b"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := slices.Clone(tc.remote)
			for range 2 {
				kept, skips := SelectRemote(self, local, remote)
				var names []string
				for _, k := range kept {
					names = append(names, k.Port.Name)
				}
				if !slices.Equal(names, tc.kept) {
					t.Errorf("kept %v, want %v", names, tc.kept)
				}
				if !slices.IsSortedFunc(kept, model.CompareRemote) {
					t.Errorf("kept %v, not in model.CompareRemote order", names)
				}
				if got := skipLines(skips); !slices.Equal(got, tc.skips) {
					t.Errorf("left out:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.skips, "\n"))
				}
				slices.Reverse(remote)
			}
		})
	}
}

func skipLines(s Skips) []string {
	var out []string
	for _, network := range slices.Sorted(maps.Keys(s)) {
		for _, port := range slices.Sorted(maps.Keys(s[network])) {
			k := s[network][port]
			out = append(out, network+"/"+port+" ("+k.Host+"): "+k.Reason)
		}
	}
	return out
}
