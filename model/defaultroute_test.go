package model

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

func TestPortSpecDefaultRoute(t *testing.T) {
	p, err := NewPort("a", v1.PortSpec{Network: "blue", Netns: "web1", DefaultRoute: true})
	if err != nil || !p.DefaultRoute {
		t.Fatalf("veth with default_route: %+v, %v", p, err)
	}
	if _, err := NewPort("b", v1.PortSpec{Network: "blue", Type: v1.PortTap, DefaultRoute: true}); !errors.Is(err, v1.ErrInvalid) {
		t.Fatalf("tap with default_route: %v, want invalid", err)
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
