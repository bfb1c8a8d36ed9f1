package link

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// nsEnd is what ip shows of a namespace's eth0 and its routes.
type nsEnd struct {
	link, addrs, routes string
}

func showEnd(t *testing.T, ns string) nsEnd {
	t.Helper()
	return nsEnd{
		link:   testbed.Run(t, "ip", "-n", ns, "-o", "link", "show", "dev", "eth0"),
		addrs:  testbed.Run(t, "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"),
		routes: testbed.Run(t, "ip", "-n", ns, "-4", "route", "show"),
	}
}

// ifindex is the "N:" that starts ip -o link's line.
func (e nsEnd) ifindex() string { return strings.SplitN(e.link, ":", 2)[0] }

// TestEnsurePortUnconfigured: a configure:false port's namespace end is
// named, given its MAC and MTU and brought up, with no address and no
// route; turning configure on in place adds both on the same link, and
// turning it off again removes nothing. ip is the witness.
func TestEnsurePortUnconfigured(t *testing.T) {
	daemonNS, ns := testbed.Netns(t, "vnt-ucd-"), testbed.Netns(t, "vnt-ucc-")
	n := model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.10.0.0/24"), Gateway: netip.MustParseAddr("10.10.0.1"), MTU: 1400}
	off := false
	p, err := model.NewPort("a", v1.PortSpec{Network: "blue", Netns: ns, IP: "10.10.0.5", Configure: &off})
	if err != nil {
		t.Fatal(err)
	}
	p.MAC = model.PortMAC(p.Name)
	if !p.NoConfigure {
		t.Fatal("configure:false did not make an unconfigured port")
	}
	ensureFrom(t, daemonNS, n, p)
	unconfigured := showEnd(t, ns)
	checkUnconfigured(t, unconfigured, p)

	p.NoConfigure = false
	ensureFrom(t, daemonNS, n, p)
	configured := showEnd(t, ns)
	if configured.ifindex() != unconfigured.ifindex() {
		t.Errorf("configure on made a new link: %s, was %s", configured.link, unconfigured.link)
	}
	if !strings.Contains(configured.addrs, " 10.10.0.5/24 ") || !strings.Contains(configured.routes, "default via 10.10.0.1 dev eth0") {
		t.Errorf("configure on: want the address and the default route:\n%s%s", configured.addrs, configured.routes)
	}

	p.NoConfigure = true
	ensureFrom(t, daemonNS, n, p)
	if again := showEnd(t, ns); again != configured {
		t.Errorf("configure off changed the namespace end:\n%+v\nwas\n%+v", again, configured)
	}
}

// TestClaimSpareUnconfigured: a spare claimed by a configure:false port
// is configured as EnsurePort configures one.
func TestClaimSpareUnconfigured(t *testing.T) {
	daemonNS, ns := testbed.Netns(t, "vnt-usd-"), testbed.Netns(t, "vnt-usc-")
	n := model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.10.0.0/24"), Gateway: netip.MustParseAddr("10.10.0.1"), MTU: 1400}
	p := model.Port{Name: "s", Network: "blue", Type: v1.PortVeth, Netns: ns, Ifname: "eth0",
		IP: netip.MustParseAddr("10.10.0.6"), MAC: model.PortMAC("s"), NoConfigure: true}
	err := testbed.InNetns(daemonNS, func() (err error) {
		if p.HostIfname, err = NewSpare(1500); err != nil {
			return err
		}
		return ClaimSpare(context.Background(), n, p, Options{})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkUnconfigured(t, showEnd(t, ns), p)
}

func checkUnconfigured(t *testing.T, e nsEnd, p model.Port) {
	t.Helper()
	if !strings.Contains(e.link, "mtu 1400") || !strings.Contains(e.link, "state UP") && !strings.Contains(e.link, ",UP") ||
		!strings.Contains(e.link, "link/ether "+p.MAC) {
		t.Errorf("unconfigured end: want up, mtu 1400, mac %s:\n%s", p.MAC, e.link)
	}
	if strings.TrimSpace(e.addrs) != "" || strings.TrimSpace(e.routes) != "" {
		t.Errorf("unconfigured end has an address or a route:\n%s%s", e.addrs, e.routes)
	}
}
