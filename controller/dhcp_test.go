package controller_test

import (
	"errors"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
)

// noDHCPFake is the fake as a backend that answers no DHCP.
type noDHCPFake struct{ *controllertest.Fake }

func (f noDHCPFake) Capabilities() datapath.Capabilities {
	c := f.Fake.Capabilities()
	c.DHCP = nil
	return c
}

// TestDHCPStats: the controller hands the exporter the backend's DHCP
// counters, every name there from the start; a backend that answers no
// DHCP is ErrUnsupported, which fails the exporter's collector.
func TestDHCPStats(t *testing.T) {
	f := newFixture(t)
	s, err := f.C.DHCPStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, discover := s.Requests[dhcp.TypeDiscover]
	_, ack := s.Answers[dhcp.AnswerAck]
	_, limited := s.Refused[dhcp.ReasonRateLimited]
	if !discover || !ack || !limited || len(s.Requests)+len(s.Answers)+len(s.Refused) != 21 {
		t.Fatalf("counters %v", s)
	}

	fake := controllertest.NewFake()
	g := startFixtureOn(t, openStore(t), fake, noDHCPFake{fake})
	if _, err := g.C.DHCPStats(t.Context()); !errors.Is(err, controller.ErrUnsupported) {
		t.Fatalf("without DHCP: %v", err)
	}
}
