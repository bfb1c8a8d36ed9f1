package model

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestDatapathMACs(t *testing.T) {
	hostA := netip.MustParseAddr("192.0.2.1")
	d := DatapathMACs{Networks: []string{"blue", "red"}, Bridge: "br-vnet", Hosts: []netip.Addr{hostA}}
	for _, c := range []struct {
		mac, want string // want: a part of the error, "" for none
	}{
		{BridgeMAC("blue"), `the gateway MAC of network "blue"`},
		{BridgeMAC("red"), `the gateway MAC of network "red"`},
		{BridgeMACOn("red", hostA), `the gateway MAC of network "red" on the host at 192.0.2.1`},
		{HostMAC("br-vnet"), "the integration bridge br-vnet's own interface"},
		{BridgeMAC("green"), ""}, // no such network (yet)
		{HostMAC("br-other"), ""},
		{PortMAC("blue"), ""},
		{"02:00:00:00:00:01", ""},
	} {
		err := d.Check(c.mac)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.mac, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "invalid: ")):
			t.Errorf("%s: got %v, want an invalid error naming %s", c.mac, err, c.want)
		}
	}
	if err := (DatapathMACs{}).Check(HostMAC("")); err != nil {
		t.Errorf("no bridge named: %v", err)
	}
}

// The port's own network's gateway MAC needs no other object: the spec
// alone is refused, in any spelling.
func TestPortGatewayMAC(t *testing.T) {
	gw := BridgeMAC("blue")
	for _, mac := range []string{gw, strings.ToUpper(gw), strings.ReplaceAll(gw, ":", "-")} {
		if _, err := NewPort("p", v1.PortSpec{Network: "blue", Netns: "a", MAC: mac}); err == nil || !strings.Contains(err.Error(), `gateway MAC of network "blue"`) {
			t.Errorf("mac %s: %v", mac, err)
		}
	}
	if _, err := NewPort("p", v1.PortSpec{Network: "red", Netns: "a", MAC: gw}); err != nil {
		t.Errorf("another network's gateway MAC is the controller's to refuse, with the networks it knows: %v", err)
	}
}
