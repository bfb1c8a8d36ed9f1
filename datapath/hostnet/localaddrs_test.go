package hostnet

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestLocalAddrs: the addresses of every interface of the namespace, IPv4
// only, loopback's too (what `fib daddr type local` takes).
func TestLocalAddrs(t *testing.T) {
	ns := testbed.Netns(t, "vnt-la-")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	testbed.Run(t, "ip", "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "192.0.2.7/24", "dev", "d0")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "198.51.100.9/32", "dev", "d0")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "fd00::7/64", "dev", "d0")
	var got []netip.Addr
	if err := testbed.InNetns(ns, func() (err error) { got, err = LocalAddrs(); return err }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	want := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.9")}
	if !slices.Equal(got, want) {
		t.Fatalf("local addresses %v, want %v", got, want)
	}
}
