package model

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestPortSpecDefaultRoute(t *testing.T) {
	yes, no := true, false
	p, err := NewPort("a", v1.PortSpec{Network: "blue", Netns: "web1", DefaultRoute: &yes})
	if err != nil || !p.DefaultRoute || p.NoDefaultRoute {
		t.Fatalf("veth with default_route: %+v, %v", p, err)
	}
	if _, err := NewPort("b", v1.PortSpec{Network: "blue", Type: v1.PortTap, DefaultRoute: &yes}); !errors.Is(err, v1.ErrInvalid) {
		t.Fatalf("tap with default_route: %v, want invalid", err)
	}
	// Absent, true and false are three specs, and the answer shows which.
	never, err := NewPort("c", v1.PortSpec{Network: "blue", Netns: "web1", DefaultRoute: &no})
	if err != nil || never.DefaultRoute || !never.NoDefaultRoute {
		t.Fatalf("veth with default_route false: %+v, %v", never, err)
	}
	usual, _ := NewPort("c", v1.PortSpec{Network: "blue", Netns: "web1"})
	if never.SameSpec(usual) || usual.SameSpec(never) {
		t.Fatal("default_route false and absent are the same spec")
	}
	n := Network{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}
	for _, c := range []struct {
		port Port
		want *bool
	}{{p, &yes}, {never, &no}, {usual, nil}} {
		if got := c.port.View(n).DefaultRoute; (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("port %+v shows default_route %v, want %v", c.port, got, c.want)
		}
	}
	tap, err := NewPort("d", v1.PortSpec{Network: "blue", Type: v1.PortTap, DefaultRoute: &no})
	if err != nil || tap.NoDefaultRoute {
		t.Fatalf("tap with default_route false: %+v, %v", tap, err)
	}
	// What the port displaced is the daemon's record, not the spec.
	stored := p
	stored.Displaced = Route{Gateway: netip.MustParseAddr("192.0.2.1"), Dev: "up0"}
	if !stored.SameSpec(p) {
		t.Fatal("a port that displaced a route is not the same spec as asked")
	}
	q := p
	q.DefaultRoute = false
	if stored.SameSpec(q) {
		t.Fatal("default_route does not count in the spec")
	}
}
