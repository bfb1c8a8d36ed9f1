package model

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestNetworkSpec(t *testing.T) {
	cases := []struct {
		name string
		spec v1.NetworkSpec
		want Network // zero when invalid
	}{
		{"defaults", v1.NetworkSpec{Subnet: "10.10.0.0/24"},
			Network{Name: "defaults", Subnet: netip.MustParsePrefix("10.10.0.0/24"), Gateway: netip.MustParseAddr("10.10.0.1"), MTU: 1500, DHCP: true}},
		{"everything", v1.NetworkSpec{Subnet: "10.0.0.0/8", Gateway: "10.255.255.254", MTU: 9000, Masquerade: true},
			Network{Name: "everything", Subnet: netip.MustParsePrefix("10.0.0.0/8"), Gateway: netip.MustParseAddr("10.255.255.254"), MTU: 9000, Masquerade: true, DHCP: true}},
		{"slash30", v1.NetworkSpec{Subnet: "192.168.7.4/30"},
			Network{Name: "slash30", Subnet: netip.MustParsePrefix("192.168.7.4/30"), Gateway: netip.MustParseAddr("192.168.7.5"), MTU: 1500, DHCP: true}},
		{"no-subnet", v1.NetworkSpec{}, Network{}},
		{"v6", v1.NetworkSpec{Subnet: "fd00::/64"}, Network{}},
		{"host-bits", v1.NetworkSpec{Subnet: "10.10.0.1/24"}, Network{}},
		{"slash7", v1.NetworkSpec{Subnet: "10.0.0.0/7"}, Network{}},
		{"slash31", v1.NetworkSpec{Subnet: "10.0.0.0/31"}, Network{}},
		{"garbage", v1.NetworkSpec{Subnet: "ten"}, Network{}},
		{"gw-network", v1.NetworkSpec{Subnet: "10.10.0.0/24", Gateway: "10.10.0.0"}, Network{}},
		{"gw-broadcast", v1.NetworkSpec{Subnet: "10.10.0.0/24", Gateway: "10.10.0.255"}, Network{}},
		{"gw-outside", v1.NetworkSpec{Subnet: "10.10.0.0/24", Gateway: "10.10.1.1"}, Network{}},
		{"gw-v6", v1.NetworkSpec{Subnet: "10.10.0.0/24", Gateway: "::1"}, Network{}},
		{"mtu-low", v1.NetworkSpec{Subnet: "10.10.0.0/24", MTU: 575}, Network{}},
		{"mtu-high", v1.NetworkSpec{Subnet: "10.10.0.0/24", MTU: 9001}, Network{}},
		{"Bad_Name", v1.NetworkSpec{Subnet: "10.10.0.0/24"}, Network{}},
		{"this-network", v1.NetworkSpec{Subnet: "0.0.0.0/8"}, Network{}},
		{"in-this-network", v1.NetworkSpec{Subnet: "0.1.0.0/24"}, Network{}},
		{"loopback", v1.NetworkSpec{Subnet: "127.0.0.0/8", Masquerade: true}, Network{}},
		{"in-loopback", v1.NetworkSpec{Subnet: "127.0.0.0/16"}, Network{}},
		{"in-loopback-30", v1.NetworkSpec{Subnet: "127.255.255.252/30"}, Network{}},
		{"link-local", v1.NetworkSpec{Subnet: "169.254.0.0/16"}, Network{}},
		{"in-link-local", v1.NetworkSpec{Subnet: "169.254.169.0/24"}, Network{}},
		{"has-link-local", v1.NetworkSpec{Subnet: "169.0.0.0/8"}, Network{}},
		{"multicast", v1.NetworkSpec{Subnet: "224.0.0.0/24"}, Network{}},
		{"in-multicast", v1.NetworkSpec{Subnet: "239.255.0.0/16"}, Network{}},
		{"reserved", v1.NetworkSpec{Subnet: "240.0.0.0/8"}, Network{}},
		{"broadcast", v1.NetworkSpec{Subnet: "255.255.255.252/30"}, Network{}},
		{"below-link-local", v1.NetworkSpec{Subnet: "169.253.0.0/16"},
			Network{Name: "below-link-local", Subnet: netip.MustParsePrefix("169.253.0.0/16"), Gateway: netip.MustParseAddr("169.253.0.1"), MTU: 1500, DHCP: true}},
		{"below-multicast", v1.NetworkSpec{Subnet: "223.255.255.0/24"},
			Network{Name: "below-multicast", Subnet: netip.MustParsePrefix("223.255.255.0/24"), Gateway: netip.MustParseAddr("223.255.255.1"), MTU: 1500, DHCP: true}},
		{"above-this-network", v1.NetworkSpec{Subnet: "1.0.0.0/8"},
			Network{Name: "above-this-network", Subnet: netip.MustParsePrefix("1.0.0.0/8"), Gateway: netip.MustParseAddr("1.0.0.1"), MTU: 1500, DHCP: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := NewNetwork(c.name, c.spec)
			if c.want == (Network{}) {
				if !errors.Is(err, v1.ErrInvalid) {
					t.Fatalf("got %+v, %v; want v1.ErrInvalid", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestPortSpec(t *testing.T) {
	cases := []struct {
		name string
		spec v1.PortSpec
		ok   bool
		want func(p Port) bool
	}{
		{"veth-defaults", v1.PortSpec{Network: "blue", Netns: "web1"}, true, func(p Port) bool {
			return p.Type == v1.PortVeth && p.Ifname == "eth0" && p.HostIfname == HostIfname("veth-defaults") && !p.IP.IsValid() && p.MAC == ""
		}},
		{"veth-full", v1.PortSpec{Network: "blue", Netns: "/proc/1/ns/net", Ifname: "net0", IP: "10.0.0.5", MAC: "02:AA:bb:cc:dd:ee", Type: "veth"}, true, func(p Port) bool {
			return p.IP == netip.MustParseAddr("10.0.0.5") && p.MAC == "02:aa:bb:cc:dd:ee" && p.NetnsPath() == "/proc/1/ns/net"
		}},
		{"tap-default-name", v1.PortSpec{Network: "blue", Type: "tap"}, true, func(p Port) bool {
			return p.Netns == "" && p.Ifname == HostIfname("tap-default-name") && p.HostIfname == p.Ifname
		}},
		{"tap-named", v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm1"}, true, func(p Port) bool { return p.HostIfname == "vm1" }},
		{"no-network", v1.PortSpec{Netns: "a"}, false, nil},
		{"bad-network", v1.PortSpec{Network: "Blue", Netns: "a"}, false, nil},
		{"no-netns", v1.PortSpec{Network: "blue"}, false, nil},
		{"tap-netns", v1.PortSpec{Network: "blue", Netns: "a", Type: "tap"}, false, nil},
		{"bad-type", v1.PortSpec{Network: "blue", Netns: "a", Type: "vxlan"}, false, nil},
		{"netns-dotdot", v1.PortSpec{Network: "blue", Netns: "/var/run/netns/../x"}, false, nil},
		{"netns-relative", v1.PortSpec{Network: "blue", Netns: "a/b"}, false, nil},
		{"netns-dot", v1.PortSpec{Network: "blue", Netns: ".."}, false, nil},
		{"ifname-long", v1.PortSpec{Network: "blue", Netns: "a", Ifname: strings.Repeat("e", 16)}, false, nil},
		{"ifname-15", v1.PortSpec{Network: "blue", Netns: "a", Ifname: strings.Repeat("e", 15)}, true, func(Port) bool { return true }},
		{"ifname-space", v1.PortSpec{Network: "blue", Netns: "a", Ifname: "eth 0"}, false, nil},
		{"ifname-colon", v1.PortSpec{Network: "blue", Netns: "a", Ifname: "eth0:1"}, false, nil},
		{"ifname-dot", v1.PortSpec{Network: "blue", Netns: "a", Ifname: "."}, false, nil},
		{"ip-prefix", v1.PortSpec{Network: "blue", Netns: "a", IP: "10.0.0.5/24"}, false, nil},
		{"ip-v6", v1.PortSpec{Network: "blue", Netns: "a", IP: "fd00::5"}, false, nil},
		{"mac-multicast", v1.PortSpec{Network: "blue", Netns: "a", MAC: "03:00:00:00:00:01"}, false, nil},
		{"mac-zero", v1.PortSpec{Network: "blue", Netns: "a", MAC: "00:00:00:00:00:00"}, false, nil},
		{"mac-eui64", v1.PortSpec{Network: "blue", Netns: "a", MAC: "02:00:00:00:00:00:00:01"}, false, nil},
		{"-bad-name", v1.PortSpec{Network: "blue", Netns: "a"}, false, nil},
		{"tap-owned", v1.PortSpec{Network: "blue", Type: "tap", Owner: "libvirt-qemu", Group: "100"}, true, func(p Port) bool {
			return p.Owner == "libvirt-qemu" && p.Group == "100" && !p.MultiQueue && !p.Adopt
		}},
		{"tap-owner-max", v1.PortSpec{Network: "blue", Type: "tap", Owner: "4294967294", Group: "machine$"}, true, func(p Port) bool { return p.Owner == "4294967294" }},
		{"tap-owner-invalid-id", v1.PortSpec{Network: "blue", Type: "tap", Owner: "4294967295"}, false, nil},
		{"tap-owner-negative", v1.PortSpec{Network: "blue", Type: "tap", Owner: "-1"}, false, nil},
		{"tap-group-space", v1.PortSpec{Network: "blue", Type: "tap", Group: "a b"}, false, nil},
		{"tap-owner-long", v1.PortSpec{Network: "blue", Type: "tap", Owner: strings.Repeat("u", 33)}, false, nil},
		{"tap-multi-queue", v1.PortSpec{Network: "blue", Type: "tap", MultiQueue: true}, true, func(p Port) bool { return p.MultiQueue }},
		{"tap-queues-2", v1.PortSpec{Network: "blue", Type: "tap", Queues: 2}, true, func(p Port) bool { return p.MultiQueue }},
		{"tap-queues-256", v1.PortSpec{Network: "blue", Type: "tap", Queues: 256, MultiQueue: true}, true, func(p Port) bool { return p.MultiQueue }},
		{"tap-queues-1", v1.PortSpec{Network: "blue", Type: "tap", Queues: 1}, true, func(p Port) bool { return !p.MultiQueue }},
		{"tap-queues-1-multi", v1.PortSpec{Network: "blue", Type: "tap", Queues: 1, MultiQueue: true}, false, nil},
		{"tap-queues-257", v1.PortSpec{Network: "blue", Type: "tap", Queues: 257}, false, nil},
		{"tap-queues-negative", v1.PortSpec{Network: "blue", Type: "tap", Queues: -2}, false, nil},
		{"tap-adopt", v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vnet0", Adopt: true}, true, func(p Port) bool { return p.Adopt && p.HostIfname == "vnet0" }},
		{"tap-adopt-unnamed", v1.PortSpec{Network: "blue", Type: "tap", Adopt: true}, false, nil},
		{"veth-owner", v1.PortSpec{Network: "blue", Netns: "a", Owner: "0"}, false, nil},
		{"veth-group", v1.PortSpec{Network: "blue", Netns: "a", Group: "kvm"}, false, nil},
		{"veth-multi-queue", v1.PortSpec{Network: "blue", Netns: "a", MultiQueue: true}, false, nil},
		{"veth-queues", v1.PortSpec{Network: "blue", Netns: "a", Queues: 1}, false, nil},
		{"veth-adopt", v1.PortSpec{Network: "blue", Netns: "a", Ifname: "eth0", Adopt: true}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewPort(c.name, c.spec)
			if !c.ok {
				if !errors.Is(err, v1.ErrInvalid) {
					t.Fatalf("got %+v, %v; want v1.ErrInvalid", p, err)
				}
				return
			}
			if err != nil || !c.want(p) {
				t.Fatalf("got %+v, %v", p, err)
			}
		})
	}
}

func TestPortSameSpec(t *testing.T) {
	stored, _ := NewPort("p", v1.PortSpec{Network: "blue", Netns: "a"})
	stored.IP, stored.MAC, stored.Ofport = netip.MustParseAddr("10.0.0.2"), PortMAC("p"), 7
	for _, c := range []struct {
		spec v1.PortSpec
		same bool
	}{
		{v1.PortSpec{Network: "blue", Netns: "a"}, true},
		{v1.PortSpec{Network: "blue", Netns: "a", Ifname: "eth0", Type: "veth", IP: "10.0.0.2", MAC: PortMAC("p")}, true},
		{v1.PortSpec{Network: "blue", Netns: "a", IP: "10.0.0.3"}, false},
		{v1.PortSpec{Network: "blue", Netns: "b"}, false},
		{v1.PortSpec{Network: "red", Netns: "a"}, false},
		{v1.PortSpec{Network: "blue", Netns: "a", MAC: "02:00:00:00:00:09"}, false},
		{v1.PortSpec{Network: "blue", Netns: "a", Ifname: "eth1"}, false},
		{v1.PortSpec{Network: "blue", Type: "tap"}, false},
	} {
		q, err := NewPort("p", c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := stored.SameSpec(q); got != c.same {
			t.Errorf("%+v: same=%v, want %v", c.spec, got, c.same)
		}
		// A spare's host link (datapath/ovs/spares.go) is the daemon's
		// choice: a retry of the same spec is still the same.
		spared := stored
		spared.HostIfname = "vnp0123456789"
		if got := spared.SameSpec(q); got != c.same {
			t.Errorf("%+v on a spare: same=%v, want %v", c.spec, got, c.same)
		}
	}
	// A tap's host link is its ifname, which the spec names.
	tap, _ := NewPort("t", v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm1"})
	if q, _ := NewPort("t", v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm2"}); tap.SameSpec(q) {
		t.Error("taps of different ifnames are the same spec")
	}
	// A tap's own fields are its spec; queues and multi_queue are one.
	mq, _ := NewPort("t", v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm1", Owner: "65534", MultiQueue: true})
	for _, c := range []struct {
		spec v1.PortSpec
		same bool
	}{
		{v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm1", Owner: "65534", Queues: 4}, true},
		{v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm1", Owner: "65534"}, false},
		{v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm1", Owner: "0", MultiQueue: true}, false},
		{v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm1", Owner: "65534", Group: "0", MultiQueue: true}, false},
		{v1.PortSpec{Network: "blue", Type: "tap", Ifname: "vm1", Owner: "65534", MultiQueue: true, Adopt: true}, false},
	} {
		q, err := NewPort("t", c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := mq.SameSpec(q); got != c.same {
			t.Errorf("%+v: same=%v, want %v", c.spec, got, c.same)
		}
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("n", 32)
	for _, name := range []string{HostIfname(long), BridgeName("br-vnet", long), BridgeName("a-very-long-prefix", "x")} {
		if err := ValidateIfname(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	if HostIfname("a") == HostIfname("b") || BridgeName("br", "a") == BridgeName("br", "b") {
		t.Error("names collide")
	}
	for _, mac := range []string{PortMAC("x"), BridgeMAC("y")} {
		if _, err := v1.ParseMAC(mac); err != nil || mac[1] != '2' && mac[1] != '6' && mac[1] != 'a' && mac[1] != 'e' {
			t.Errorf("%s: not a locally administered unicast MAC (%v)", mac, err)
		}
	}
	if got := Broadcast(netip.MustParsePrefix("10.1.2.0/23")); got != netip.MustParseAddr("10.1.3.255") {
		t.Errorf("broadcast %s", got)
	}
}

// TestSpecialPurposeHint: a refused special-purpose subnet is named with the
// range it touches, what that range is, and where to go instead.
func TestSpecialPurposeHint(t *testing.T) {
	for subnet, want := range map[string]string{
		"127.0.0.0/8":    "subnet 127.0.0.0/8 is loopback (RFC 1122)",
		"127.0.0.0/16":   "subnet 127.0.0.0/16 lies in 127.0.0.0/8, which is loopback (RFC 1122)",
		"169.0.0.0/8":    "subnet 169.0.0.0/8 contains 169.254.0.0/16, which is link-local (RFC 3927)",
		"224.0.0.0/24":   "lies in 224.0.0.0/4, which is multicast",
		"0.0.0.0/8":      `"this network"`,
		"255.255.0.0/16": "255.255.255.255",
	} {
		_, err := NewNetwork("n", v1.NetworkSpec{Subnet: subnet})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pick a private range such as 10.0.0.0/8") {
			t.Errorf("%s: %v; want it to say %q and a private range", subnet, err, want)
		}
	}
}

func FuzzNetworkSpec(f *testing.F) {
	f.Add("blue", "10.10.0.0/24", "", 0)
	f.Add("x", "10.0.0.0/8", "10.0.0.1", 9000)
	f.Add("lo", "127.0.0.0/16", "", 0)
	f.Fuzz(func(t *testing.T, name, subnet, gw string, mtu int) {
		n, err := NewNetwork(name, v1.NetworkSpec{Subnet: subnet, Gateway: gw, MTU: mtu})
		if err != nil {
			if !errors.Is(err, v1.ErrInvalid) {
				t.Fatalf("error not v1.ErrInvalid: %v", err)
			}
			return
		}
		if !IsHostAddr(n.Subnet, n.Gateway) || n.MTU < MinMTU || n.MTU > MaxMTU || n.Subnet.Bits() < MinPrefixLen || n.Subnet.Bits() > MaxPrefixLen {
			t.Fatalf("accepted an invalid network %+v", n)
		}
		for _, sp := range specialPurpose {
			if n.Subnet.Overlaps(sp.prefix) {
				t.Fatalf("accepted %s, which overlaps %s", n.Subnet, sp.prefix)
			}
		}
	})
}

func FuzzPortSpec(f *testing.F) {
	f.Add("web1", "blue", "web1", "eth0", "10.0.0.2", "02:00:00:00:00:01", "veth")
	f.Add("vm", "blue", "", "tap0", "", "", "tap")
	f.Fuzz(func(t *testing.T, name, network, ns, ifname, ip, mac, typ string) {
		p, err := NewPort(name, v1.PortSpec{Network: network, Netns: ns, Ifname: ifname, IP: ip, MAC: mac, Type: typ})
		if err != nil {
			if !errors.Is(err, v1.ErrInvalid) {
				t.Fatalf("error not v1.ErrInvalid: %v", err)
			}
			return
		}
		if ValidateIfname(p.Ifname) != nil || ValidateIfname(p.HostIfname) != nil || v1.ValidateName(p.Network) != nil {
			t.Fatalf("accepted an invalid port %+v", p)
		}
		if p.Type == v1.PortVeth && (p.Netns == "" || filepath.Clean(p.NetnsPath()) != p.NetnsPath()) {
			t.Fatalf("accepted a bad netns %+v", p)
		}
		if p.MAC != "" {
			if again, err := v1.ParseMAC(p.MAC); err != nil || again != p.MAC {
				t.Fatalf("mac %q not canonical", p.MAC)
			}
		}
	})
}
