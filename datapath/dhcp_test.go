package datapath

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

func TestDHCPBinding(t *testing.T) {
	n, err := model.NewNetwork("dh", v1.NetworkSpec{Subnet: "10.81.0.0/24", MTU: 1400, DNS: []string{"10.81.0.53", "9.9.9.9"}, Domain: "lab.example"})
	if err != nil {
		t.Fatal(err)
	}
	p := model.Port{Name: "a", Network: "dh", IP: netip.MustParseAddr("10.81.0.5"), MAC: "02:10:00:00:00:05"}
	gw := model.BridgeMAC("dh")
	b, ok := DHCPBinding(n, p, gw)
	if !ok || b.MAC.String() != p.MAC || b.IP != p.IP || b.Subnet != n.Subnet || b.Gateway != n.Gateway ||
		b.GatewayMAC.String() != gw || b.MTU != 1400 || b.Domain != "lab.example" ||
		!slices.Equal(b.DNS, []netip.Addr{netip.MustParseAddr("10.81.0.53"), netip.MustParseAddr("9.9.9.9")}) {
		t.Fatalf("binding %+v, %v", b, ok)
	}
	off := n
	off.DHCP = false
	noIP := p
	noIP.IP = netip.Addr{}
	for name, c := range map[string]struct {
		n  model.Network
		p  model.Port
		gw string
	}{"dhcp off": {off, p, gw}, "no address": {n, noIP, gw}, "no gateway MAC": {n, p, ""}} {
		if _, ok := DHCPBinding(c.n, c.p, c.gw); ok {
			t.Errorf("%s: a binding", name)
		}
	}
}
