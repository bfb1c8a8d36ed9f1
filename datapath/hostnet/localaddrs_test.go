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

// TestBroadcasts: each address's subnet broadcast (below /31) and an
// explicit one, as the kernel's broadcast routes have them.
func TestBroadcasts(t *testing.T) {
	ns := testbed.Netns(t, "vnt-bc-")
	testbed.Run(t, "ip", "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "192.0.2.7/24", "dev", "d0")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "198.51.100.9/32", "dev", "d0")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "203.0.113.1/31", "dev", "d0")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "10.9.0.1/16", "broadcast", "10.9.0.255", "dev", "d0")
	var got []netip.Addr
	if err := testbed.InNetns(ns, func() (err error) { got, err = Broadcasts(); return err }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	got = slices.Compact(got)
	want := []netip.Addr{netip.MustParseAddr("10.9.0.255"), netip.MustParseAddr("10.9.255.255"), netip.MustParseAddr("192.0.2.255")}
	if !slices.Equal(got, want) {
		t.Fatalf("broadcasts %v, want %v", got, want)
	}
}
