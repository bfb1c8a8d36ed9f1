package link

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestEnsurePortDropsStaleAddress: a veth left by an attach whose address
// was given up (a rollback that could not remove it) is taken over by the
// next attach of its port with another address; the earlier address of the
// network goes, since the kernel would send from it, and an address of
// another subnet that someone added stays. ip is the witness.
func TestEnsurePortDropsStaleAddress(t *testing.T) {
	daemonNS, ns := testbed.Netns(t, "vnt-sad-"), testbed.Netns(t, "vnt-sac-")
	n := model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.10.0.0/24"), Gateway: netip.MustParseAddr("10.10.0.1"), MTU: 1500}
	p, err := model.NewPort("a", v1.PortSpec{Network: "blue", Netns: ns, IP: "10.10.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	p.MAC = model.PortMAC(p.Name)
	ensureFrom(t, daemonNS, n, p)
	testbed.Run(t, "ip", "-n", ns, "addr", "add", "192.0.2.9/24", "dev", "eth0")
	p.IP = netip.MustParseAddr("10.10.0.6")
	ensureFrom(t, daemonNS, n, p)
	got := testbed.Run(t, "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0")
	for want, present := range map[string]bool{"10.10.0.6/24": true, "10.10.0.5/24": false, "192.0.2.9/24": true} {
		if strings.Contains(got, " "+want+" ") != present {
			t.Errorf("address %s present=%v, want %v:\n%s", want, !present, present, got)
		}
	}
}
