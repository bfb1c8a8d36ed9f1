package hostnet

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestSubnetConflict builds a host in a namespace of its own — an uplink
// with addresses and a default route, a VPN-like route, a bridge of
// ovs-vnet's and a route of its protocol — and asks about subnets around
// each. The uplink is a veth: the machine may lack the dummy module.
func TestSubnetConflict(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates a network namespace")
	ns := testbed.Netns(t, "vnt-hc-")
	for _, cmd := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "uplink", "type", "veth", "peer", "name", "uplink-p"},
		{"link", "set", "uplink-p", "up"},
		{"addr", "add", "192.168.50.2/24", "dev", "uplink"},
		{"addr", "add", "172.20.0.9/32", "dev", "uplink"},
		{"link", "set", "uplink", "up"},
		{"route", "add", "default", "via", "192.168.50.1"},
		{"route", "add", "10.40.0.0/16", "via", "192.168.50.1", "proto", "static"},
		{"link", "add", "vnbr-x", "type", "bridge"},
		{"link", "set", "vnbr-x", "alias", "ovs-vnet:network=x"},
		{"addr", "add", "10.77.0.1/24", "dev", "vnbr-x"},
		{"link", "set", "vnbr-x", "up"},
		{"link", "add", "br-vnet", "type", "bridge"},
		{"link", "set", "br-vnet", "up"},
		{"route", "add", "10.88.0.0/24", "dev", "br-vnet", "proto", "0x76"},
		{"route", "add", "local", "10.91.0.0/24", "dev", "lo"},                  // AnyIP
		{"route", "add", "10.81.0.0/16", "via", "192.168.50.1", "table", "100"}, // policy routing
	} {
		testbed.Run(t, "ip", append([]string{"-n", ns}, cmd...)...)
	}
	for _, c := range []struct {
		subnet, want string // want: what the answer names; "" = no conflict
	}{
		{"10.50.0.0/24", ""},
		{"192.168.51.0/24", ""},
		{"192.168.50.0/24", "the host's own address 192.168.50.2/24 on uplink"},
		{"192.168.50.128/25", "route 192.168.50.0/24 dev uplink (proto kernel)"},
		{"192.168.0.0/16", "the host's own address 192.168.50.2/24 on uplink"},
		{"172.20.0.8/30", "the host's own address 172.20.0.9/32 on uplink"},
		{"10.40.3.0/24", "route 10.40.0.0/16 via 192.168.50.1 dev uplink (proto static)"},
		{"10.0.0.0/8", "overlaps the host's route 10."}, // the first of three
		{"10.77.0.0/24", ""}, // ovs-vnet's own bridge
		{"10.88.0.0/24", ""}, // ovs-vnet's own route
		{"10.91.0.0/25", "route 10.91.0.0/24 dev lo table 255"},
		{"10.81.1.0/24", "route 10.81.0.0/16 via 192.168.50.1 dev uplink table 100"},
	} {
		var what string
		err := testbed.InNetns(ns, func() (err error) {
			what, err = SubnetConflict(netip.MustParsePrefix(c.subnet), "ovs-vnet:")
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", c.subnet, err)
		}
		if c.want == "" && what != "" || !strings.Contains(what, c.want) {
			t.Errorf("%s: %q, want it to name %q", c.subnet, what, c.want)
		}
	}
}
