package link

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestCheckNetnsDisplaced: a port asking for the default route records
// the namespace's metric-0 default route as it was, and is refused
// (conflict) where that route could not be put back; a port that does not
// ask records nothing. e2e/netns_test.go takes the routes over and back.
func TestCheckNetnsDisplaced(t *testing.T) {
	ns := testbed.Netns(t, "vnt-route-")
	for _, args := range [][]string{
		{"link", "add", "up0", "type", "veth", "peer", "name", "up1"},
		{"addr", "add", "192.0.2.2/24", "dev", "up0"},
		{"addr", "add", "198.51.100.2/24", "dev", "up1"},
		{"link", "set", "up0", "up"},
		{"link", "set", "up1", "up"},
		{"route", "add", "default", "via", "192.0.2.1", "dev", "up0", "proto", "static", "src", "192.0.2.2"},
	} {
		testbed.Run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	ctx := context.Background()
	p := model.Port{Name: "p", Type: v1.PortVeth, Netns: ns, DefaultRoute: true}
	got, err := CheckNetns(ctx, p)
	want := model.Route{Gateway: netip.MustParseAddr("192.0.2.1"), Dev: "up0", Src: netip.MustParseAddr("192.0.2.2"), Protocol: 4}
	if err != nil || got.Displaced != want {
		t.Fatalf("displaced %+v (%v), want %+v", got.Displaced, err, want)
	}
	p.DefaultRoute = false
	if got, err := CheckNetns(ctx, p); err != nil || got.Displaced != (model.Route{}) {
		t.Fatalf("without default_route: displaced %+v (%v), want none", got.Displaced, err)
	}
	p.DefaultRoute = true
	for _, route := range [][]string{
		{"default", "nexthop", "via", "192.0.2.1", "dev", "up0", "nexthop", "via", "198.51.100.1", "dev", "up1"},
		{"unreachable", "default"},
	} {
		testbed.Run(t, "ip", append([]string{"-n", ns, "route", "replace"}, route...)...)
		if _, err := CheckNetns(ctx, p); !errors.Is(err, datapath.ErrConflict) {
			t.Errorf("default route %v: %v, want a conflict", route, err)
		}
	}
}

// TestCheckNetnsPortsRoute: a default route through another port's
// namespace end — a veth whose peer, in the daemon's namespace, carries a
// port's alias — is not taken over (a conflict naming that port); the same
// link under another tool's alias is an uplink like any other. The daemon's
// namespace is one of the test's own.
func TestCheckNetnsPortsRoute(t *testing.T) {
	daemonNS, ns := testbed.Netns(t, "vnt-rd-"), testbed.Netns(t, "vnt-rc-")
	testbed.Run(t, "ip", "-n", daemonNS, "link", "add", "vnt-host", "type", "veth", "peer", "name", "eth0", "netns", ns)
	testbed.Run(t, "ip", "-n", daemonNS, "link", "set", "vnt-host", "up")
	for _, args := range [][]string{
		{"addr", "add", "10.10.0.5/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", "10.10.0.1", "dev", "eth0"},
	} {
		testbed.Run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	p := model.Port{Name: "b", Type: v1.PortVeth, Netns: ns, Ifname: "eth1", DefaultRoute: true}
	check := func() (model.Port, error) {
		var got model.Port
		err := testbed.InNetns(daemonNS, func() (err error) {
			got, err = CheckNetns(context.Background(), p)
			return err
		})
		return got, err
	}

	testbed.Run(t, "ip", "-n", daemonNS, "link", "set", "vnt-host", "alias", datapath.PortAlias("a"))
	if _, err := check(); !errors.Is(err, datapath.ErrConflict) || !strings.Contains(err.Error(), "port a's") {
		t.Fatalf("default route through port a: %v, want a conflict naming port a", err)
	}
	testbed.Run(t, "ip", "-n", daemonNS, "link", "set", "vnt-host", "alias", "other-tool")
	got, err := check()
	want := model.Route{Gateway: netip.MustParseAddr("10.10.0.1"), Dev: "eth0", Protocol: 3}
	if err != nil || got.Displaced != want {
		t.Fatalf("default route through another tool's veth: displaced %+v (%v), want %+v", got.Displaced, err, want)
	}
}

// TestSecondarySetsNoDefaultRoute: a port that must set no default route
// (default_route false: a container's secondary interface) attached first
// into an empty namespace leaves it without one, so the usual port attached
// after it takes the route whatever the order the runtime attached them
// in; re-attached (a restart), the secondary still leaves the route to the
// primary, and once the primary is gone it takes none (docs/API.md,
// "Default route"). ip is the witness.
func TestSecondarySetsNoDefaultRoute(t *testing.T) {
	daemonNS, ns := testbed.Netns(t, "vnt-2rd-"), testbed.Netns(t, "vnt-2rc-")
	blue := model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.10.0.0/24"), Gateway: netip.MustParseAddr("10.10.0.1"), MTU: 1500}
	red := model.Network{Name: "red", Subnet: netip.MustParsePrefix("10.11.0.0/24"), Gateway: netip.MustParseAddr("10.11.0.1"), MTU: 1500}
	no := false
	port := func(name, network, ifname, ip string, defaultRoute *bool) model.Port {
		p, err := model.NewPort(name, v1.PortSpec{Network: network, Netns: ns, Ifname: ifname, IP: ip, DefaultRoute: defaultRoute})
		if err != nil {
			t.Fatal(err)
		}
		p.MAC = model.PortMAC(p.Name)
		return p
	}
	primary, secondary := port("a", "blue", "eth0", "10.10.0.5", nil), port("b", "red", "eth1", "10.11.0.5", &no)
	wantDefault := func(step, want string) {
		t.Helper()
		if got := strings.TrimSpace(testbed.Run(t, "ip", "-n", ns, "-4", "route", "show", "default")); got != want {
			t.Fatalf("%s: default route %q, want %q", step, got, want)
		}
	}
	ensureFrom(t, daemonNS, red, secondary)
	wantDefault("secondary attached first", "")
	ensureFrom(t, daemonNS, blue, primary)
	wantDefault("primary attached second", "default via 10.10.0.1 dev eth0")
	ensureFrom(t, daemonNS, red, secondary)
	wantDefault("secondary re-attached", "default via 10.10.0.1 dev eth0")
	if err := testbed.InNetns(daemonNS, func() error { return Delete(primary.HostIfname, datapath.PortAlias(primary.Name)) }); err != nil {
		t.Fatal(err)
	}
	ensureFrom(t, daemonNS, red, secondary)
	wantDefault("secondary re-attached without the primary", "")
}

// ensureFrom attaches p as the daemon would from daemonNS, its namespace.
func ensureFrom(t *testing.T, daemonNS string, n model.Network, p model.Port) {
	t.Helper()
	err := testbed.InNetns(daemonNS, func() error {
		_, err := EnsurePort(context.Background(), n, p, Options{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
