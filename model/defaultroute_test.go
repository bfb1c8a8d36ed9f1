package model

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPortSpecDefaultRoute(t *testing.T) {
	p, err := PortSpec{Network: "blue", Netns: "web1", DefaultRoute: true}.Port("a")
	if err != nil || !p.DefaultRoute {
		t.Fatalf("veth with default_route: %+v, %v", p, err)
	}
	if _, err := (PortSpec{Network: "blue", Type: PortTap, DefaultRoute: true}).Port("b"); !errors.Is(err, ErrInvalid) {
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
