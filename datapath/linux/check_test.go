package linux

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

var _ datapath.PortChecker = (*Backend)(nil)

// TestPortRepair changes ports under the backend in a host namespace of
// the test's — a veth's host end deleted, taken out of its bridge, set
// down, its namespace end given another MAC, a tap deleted, a namespace
// deleted and made again — and checks
// that Changed fires, CheckPort names what broke, and AttachPort repairs
// it, with pings and `ip` as witnesses.
func TestPortRepair(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := &hostBed{t: t, ns: newNetns(t, "vnt-lr-"), ctx: ctx}
	testbed.Run(t, "ip", "-n", h.ns, "link", "set", "lo", "up")
	n := model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.74.0.0/24"), Gateway: netip.MustParseAddr("10.74.0.1"), MTU: 1500}
	b1, b2 := h.port("b1", "blue", "10.74.0.5"), h.port("b2", "blue", "10.74.0.6")
	tap := model.Port{Name: "t1", Network: "blue", Type: v1.PortTap, Ifname: "vmtap0", IP: netip.MustParseAddr("10.74.0.9"),
		MAC: model.PortMAC("t1"), HostIfname: "vmtap0"}

	var b *Backend
	h.do("set up", func() (err error) {
		if b, err = New(ctx, "vnbr", nil); err != nil {
			return err
		}
		return b.EnsureNetwork(ctx, n)
	})
	t.Cleanup(func() { b.Close() })
	// in runs f in the host namespace for subtest t (h.do fails the
	// whole test).
	in := func(t *testing.T, what string, f func() error) {
		t.Helper()
		if err := testbed.InNetns(h.ns, f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check := func(t *testing.T, p model.Port, want error) {
		t.Helper()
		var got error
		in(t, "check", func() error { got = b.CheckPort(ctx, n, p, datapath.CheckAll); return nil })
		if want == nil && got != nil || want != nil && !errors.Is(got, want) {
			t.Fatalf("CheckPort(%s) = %v, want %v", p.Name, got, want)
		}
	}
	// attach attaches p and checks it at once: no false alarm right after
	// an attach.
	attach := func(t *testing.T, p model.Port) {
		t.Helper()
		in(t, "attach "+p.Name, func() error { _, err := b.AttachPort(ctx, n, p); return err })
		check(t, p, nil)
	}
	// broken: running ip with args makes Changed fire.
	broken := func(t *testing.T, args ...string) {
		t.Helper()
		select {
		case <-b.Changed():
		default:
		}
		testbed.Run(t, "ip", args...)
		select {
		case <-b.Changed():
		case <-time.After(30 * time.Second):
			t.Fatalf("ip %s: Changed not signalled in 30 s", strings.Join(args, " "))
		}
	}
	inBridge := func(t *testing.T, p model.Port) {
		t.Helper()
		if out := testbed.Run(t, "ip", "-n", h.ns, "link", "show", p.HostIfname); !strings.Contains(out, "master "+b.bridgeName(n.Name)) ||
			!strings.Contains(out, ",UP") {
			t.Errorf("%s not up in bridge %s:\n%s", p.HostIfname, b.bridgeName(n.Name), out)
		}
	}
	for _, p := range []model.Port{b1, b2, tap} {
		attach(t, p)
	}
	h.expect(b1.Netns, b2.IP.String(), true, "before")

	t.Run("veth host end deleted", func(t *testing.T) {
		broken(t, "-n", h.ns, "link", "del", b1.HostIfname)
		check(t, b1, datapath.ErrLinkGone)
		attach(t, b1)
		inBridge(t, b1)
		h.expect(b1.Netns, b2.IP.String(), true, "after repair")
	})
	t.Run("out of its bridge", func(t *testing.T) {
		broken(t, "-n", h.ns, "link", "set", b1.HostIfname, "nomaster")
		check(t, b1, datapath.ErrNotBound)
		attach(t, b1)
		inBridge(t, b1)
		h.expect(b1.Netns, b2.IP.String(), true, "after repair")
	})
	t.Run("host end down", func(t *testing.T) {
		broken(t, "-n", h.ns, "link", "set", b1.HostIfname, "down")
		check(t, b1, datapath.ErrNotBound)
		attach(t, b1)
		inBridge(t, b1)
		h.expect(b1.Netns, b2.IP.String(), true, "after repair")
	})
	t.Run("namespace end's MAC changed", func(t *testing.T) {
		// In the port's namespace: no event in the host's, the
		// controller's sweep finds it.
		testbed.Run(t, "ip", "-n", b1.Netns, "link", "set", b1.Ifname, "address", "02:00:00:00:00:99")
		check(t, b1, datapath.ErrLinkGone)
		attach(t, b1)
		if out := testbed.Run(t, "ip", "-n", b1.Netns, "link", "show", b1.Ifname); !strings.Contains(out, b1.MAC) {
			t.Errorf("%s in %s after repair:\n%s", b1.Ifname, b1.Netns, out)
		}
		h.expect(b1.Netns, b2.IP.String(), true, "after repair")
	})
	t.Run("tap deleted", func(t *testing.T) {
		broken(t, "-n", h.ns, "link", "del", tap.HostIfname)
		check(t, tap, datapath.ErrLinkGone)
		attach(t, tap)
		inBridge(t, tap)
	})
	t.Run("namespace made again", func(t *testing.T) {
		broken(t, "netns", "del", b2.Netns)
		check(t, b2, datapath.ErrNoNetns)
		testbed.Run(t, "ip", "netns", "add", b2.Netns)
		check(t, b2, datapath.ErrLinkGone)
		attach(t, b2)
		inBridge(t, b2)
		h.expect(b1.Netns, b2.IP.String(), true, "after repair")
	})
	for _, p := range []model.Port{b1, b2, tap} {
		check(t, p, nil)
	}
}
