package link

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

var tapNet = model.Network{Name: "blue", MTU: 1400}

// TestTapOwnedMultiQueue: a tap port with an owner, a group and
// multi_queue is made so, and one with an owner only has no group (the
// kernel's own account, `ip -d link show`, is the witness); the tap is
// persistent with no queue left open by the daemon, found healthy, and
// kept — the same device — by the next attach.
func TestTapOwnedMultiQueue(t *testing.T) {
	ns := testbed.Netns(t, "vnt-tapmq-")
	p := model.Port{Name: "vm", Type: v1.PortTap, Ifname: "vnt-mq", HostIfname: "vnt-mq", Owner: "65534", Group: "100", MultiQueue: true}
	err := testbed.InNetns(ns, func() error {
		first, err := EnsurePort(context.Background(), tapNet, p, Options{})
		if err != nil {
			return err
		}
		again, err := EnsurePort(context.Background(), tapNet, p, Options{})
		if err != nil {
			return err
		}
		if again.Attrs().Index != first.Attrs().Index {
			t.Errorf("the second attach made the tap again: index %d, then %d", first.Attrs().Index, again.Attrs().Index)
		}
		if err := CheckPort(context.Background(), again, p, datapath.CheckAll); err != nil {
			return err
		}
		got, err := netlink.LinkByName("vnt-mq")
		if err != nil {
			return err
		}
		if tap, ok := got.(*netlink.Tuntap); !ok || tap.Owner != 65534 || tap.Group != 100 || tap.NonPersist {
			t.Errorf("tap %+v, want owner 65534, group 100, persistent", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// numqueues 0: the daemon holds no queue of it open.
	out := testbed.Run(t, "ip", "-n", ns, "-d", "link", "show", "vnt-mq")
	for _, want := range []string{"tun type tap", "pi off", "multi_queue", "numqueues 0", "persist on", "mtu 1400", "alias " + datapath.PortAlias("vm")} {
		if !strings.Contains(out, want) {
			t.Errorf("tap lacks %q: %s", want, out)
		}
	}
	// An owner alone sets no group: the kernel would let the owner in only
	// if it were in that group too.
	owned := model.Port{Name: "vm2", Type: v1.PortTap, Ifname: "vnt-own", HostIfname: "vnt-own", Owner: "65534"}
	if err := testbed.InNetns(ns, func() error { _, err := EnsurePort(context.Background(), tapNet, owned, Options{}); return err }); err != nil {
		t.Fatal(err)
	}
	out = testbed.Run(t, "ip", "-n", ns, "-d", "link", "show", "vnt-own")
	if _, tun, _ := strings.Cut(out, "tun type tap"); !strings.Contains(tun, "user ") || strings.Contains(strings.SplitN(tun, "\n", 2)[0], " group ") || strings.Contains(tun, "multi_queue") {
		t.Errorf("owner-only single-queue tap: %s", out)
	}
}

// TestTapAdopt: a runtime's tap (`ip tuntap add … user nobody`) is refused
// without adopt and with an adopt that asks for what it is not; adopted,
// it is the same device with the adopted alias, healthy, and a port that
// does not adopt cannot take it; the port's delete hands it back without
// its alias and leaves it. adopt of a device that is not a tap, or of
// none, is a conflict, and so is adopt of a tap in another's bridge,
// which is left as it was.
func TestTapAdopt(t *testing.T) {
	ns := testbed.Netns(t, "vnt-tapad-")
	testbed.Run(t, "ip", "-n", ns, "tuntap", "add", "dev", "vnt-rt", "mode", "tap", "user", "65534")
	testbed.Run(t, "ip", "-n", ns, "link", "add", "vnt-veth", "type", "veth", "peer", "name", "vnt-vpeer")
	testbed.Run(t, "ip", "-n", ns, "link", "add", "vnt-fbr", "type", "bridge")
	testbed.Run(t, "ip", "-n", ns, "tuntap", "add", "dev", "vnt-inbr", "mode", "tap")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "vnt-inbr", "master", "vnt-fbr", "mtu", "1234")
	inBridge := deviceState(t, ns, "vnt-inbr")
	p := model.Port{Name: "vm", Type: v1.PortTap, Ifname: "vnt-rt", HostIfname: "vnt-rt"}
	ctx := context.Background()
	err := testbed.InNetns(ns, func() error {
		before, err := netlink.LinkByName("vnt-rt")
		if err != nil {
			return err
		}
		adopt := p
		adopt.Adopt = true
		for _, c := range []struct {
			what string
			p    model.Port
		}{
			{"no adopt", p},
			{"other owner", func() model.Port { q := adopt; q.Owner = "1000"; return q }()},
			{"multi_queue", func() model.Port { q := adopt; q.MultiQueue = true; return q }()},
			{"a veth", func() model.Port { q := adopt; q.Ifname, q.HostIfname = "vnt-veth", "vnt-veth"; return q }()},
			{"in a bridge", func() model.Port { q := adopt; q.Ifname, q.HostIfname = "vnt-inbr", "vnt-inbr"; return q }()},
		} {
			if _, err := EnsurePort(ctx, tapNet, c.p, Options{}); !errors.Is(err, datapath.ErrConflict) {
				t.Errorf("%s: %v, want a conflict", c.what, err)
			}
		}
		missing := adopt
		missing.Ifname, missing.HostIfname = "vnt-none", "vnt-none"
		if _, err := EnsurePort(ctx, tapNet, missing, Options{}); !errors.Is(err, datapath.ErrConflict) || !errors.Is(err, datapath.ErrLinkGone) {
			t.Errorf("adopt of no tap: %v, want a conflict and link gone", err)
		}
		if _, err := netlink.LinkByName("vnt-none"); err == nil {
			t.Error("adopt of no tap made one")
		}
		owned := adopt
		owned.Owner = "65534"
		tap, err := EnsurePort(ctx, tapNet, owned, Options{})
		if err != nil {
			return err
		}
		if tap.Attrs().Index != before.Attrs().Index || tap.Attrs().Alias != datapath.AdoptedAlias("vm") {
			t.Errorf("adopted %d alias %q; want the runtime's %d with the adopted alias", tap.Attrs().Index, tap.Attrs().Alias, before.Attrs().Index)
		}
		if err := CheckPort(ctx, tap, owned, datapath.CheckAll); err != nil {
			t.Errorf("adopted tap: %v", err)
		}
		if _, err := EnsurePort(ctx, tapNet, p, Options{}); !errors.Is(err, datapath.ErrConflict) {
			t.Errorf("a port that does not adopt, on the adopted tap: %v, want a conflict", err)
		}
		if err := DeletePort(owned); err != nil {
			return err
		}
		return DeletePort(owned) // a second delete finds nothing of the port's
	})
	if err != nil {
		t.Fatal(err)
	}
	out := testbed.Run(t, "ip", "-n", ns, "-d", "link", "show", "vnt-rt")
	if strings.Contains(out, "ovs-vnet") || !strings.Contains(out, "tun type tap") {
		t.Errorf("the runtime's tap after the port's delete: %s", out)
	}
	if after := deviceState(t, ns, "vnt-inbr"); after != inBridge {
		t.Errorf("the refused adopt changed the tap in another's bridge:\nbefore %s\nafter  %s", inBridge, after)
	}
}

// TestPruneHandsBackAdopted: Prune finds an adopted tap that no port
// wants (the port's record went, and a crash or a failed detach kept the
// alias; or --reset-dataplane) and hands it back: the device stays, out
// of our bridge and without our alias, while a tap the daemon made goes.
func TestPruneHandsBackAdopted(t *testing.T) {
	ns := testbed.Netns(t, "vnt-tappr-")
	testbed.Run(t, "ip", "-n", ns, "link", "add", "vnt-br", "type", "bridge")
	testbed.Run(t, "ip", "-n", ns, "tuntap", "add", "dev", "vnt-rt", "mode", "tap", "user", "65534")
	adopted := model.Port{Name: "vm", Type: v1.PortTap, Ifname: "vnt-rt", HostIfname: "vnt-rt", Adopt: true}
	made := model.Port{Name: "vm2", Type: v1.PortTap, Ifname: "vnt-made", HostIfname: "vnt-made"}
	err := testbed.InNetns(ns, func() error {
		for _, p := range []model.Port{adopted, made} {
			if _, err := EnsurePort(context.Background(), tapNet, p, Options{}); err != nil {
				return err
			}
		}
		want := PortLinks([]model.Port{adopted})
		if want["vnt-rt"] != datapath.AdoptedAlias("vm") {
			t.Errorf("PortLinks: %v, want the adopted alias", want)
		}
		ports, _, err := Held()
		if err != nil {
			return err
		}
		if !slices.Equal(ports, []string{"vm", "vm2"}) {
			t.Errorf("Held: %v, want the adopted port too", ports)
		}
		return Prune(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	testbed.Run(t, "ip", "-n", ns, "link", "set", "vnt-rt", "master", "vnt-br")
	err = testbed.InNetns(ns, func() error {
		if err := netlink.LinkSetAlias(mustLink(t, "vnt-rt"), datapath.AdoptedAlias("vm")); err != nil {
			return err
		}
		return Prune(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	out := testbed.Run(t, "ip", "-n", ns, "-d", "link", "show", "vnt-rt")
	if strings.Contains(out, "ovs-vnet") || strings.Contains(out, "master") || !strings.Contains(out, "tun type tap") {
		t.Errorf("the adopted tap after Prune: %s", out)
	}
	if exec.Command("ip", "-n", ns, "link", "show", "vnt-made").Run() == nil {
		t.Error("Prune left the tap the daemon made")
	}
}

func mustLink(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// deviceState is what a refused adopt must leave as it was: the link
// (MTU, alias, master, group, flags) and the sysctls Seal sets.
func deviceState(t *testing.T, ns, dev string) string {
	t.Helper()
	return testbed.Run(t, "ip", "-n", ns, "-j", "link", "show", "dev", dev) +
		testbed.Run(t, "ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.conf."+dev+".arp_ignore",
			"net.ipv4.conf."+dev+".rp_filter")
}
