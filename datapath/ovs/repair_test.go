package ovs

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestPortRepair changes a real sandbox's ports under the backend — host
// links deleted, a link made again by hand under a port's name, a
// namespace end given another MAC, an OVS port deleted, a tap deleted, a namespace deleted and made again, a
// spare's link deleted — and checks that Changed fires, CheckPort names
// what broke, and AttachPort repairs it: the same ofport (ovs-vsctl), the
// interface bound again (the device's promiscuity, see bound) and pings
// through.
func TestPortRepair(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	box := testbed.StartSandbox(t, root, "")
	h := startAgent(t, t, "host", box.Netns)
	h.do(t, agentCmd{Op: "new", Config: agentConfig{DB: "unix:" + box.DBSock, Bridge: "br-vnet", Listen: "tcp:127.0.0.1:6653",
		VswitchdCtl: filepath.Join(box.Dir, "ovs-vswitchd.ctl"), SparePorts: 2}})
	n := model.Network{Name: "blue", ID: 1, Subnet: netip.MustParsePrefix("10.96.0.0/24"), Gateway: netip.MustParseAddr("10.96.0.1"), MTU: 1500}
	h.do(t, agentCmd{Op: "network", Network: n})
	veth := func(name, ip string) model.Port {
		return model.Port{Name: name, Network: n.Name, Type: v1.PortVeth, Netns: testbed.Netns(t, "vnt-rp-"), Ifname: "eth0",
			IP: netip.MustParseAddr(ip), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name)}
	}
	check := func(t *testing.T, p model.Port, want string) {
		t.Helper()
		if r := h.do(t, agentCmd{Op: "check", Network: n, Port: p}); r.Check != want {
			t.Fatalf("CheckPort(%s) = %s (%s), want %s", p.Name, r.Check, r.Detail, want)
		}
	}
	// attach attaches p and checks it at once: no false alarm right after
	// an attach.
	attach := func(t *testing.T, p model.Port) model.Port {
		t.Helper()
		got := h.do(t, agentCmd{Op: "attach", Network: n, Port: p}).Port
		check(t, got, "ok")
		return got
	}
	// broken: `ip args` breaks something, and Changed fires.
	broken := func(t *testing.T, what string, args ...string) {
		t.Helper()
		h.do(t, agentCmd{Op: "drain"})
		testbed.Run(t, "ip", args...)
		if !h.do(t, agentCmd{Op: "changed"}).Changed {
			t.Fatalf("%s: Changed was not signalled", what)
		}
	}
	// repaired: AttachPort brings p back on its ofport, bound.
	repaired := func(t *testing.T, p model.Port) {
		t.Helper()
		got := attach(t, p)
		if got.Ofport != p.Ofport || got.HostIfname != p.HostIfname {
			t.Errorf("repaired %s: ofport %d on %s, was %d on %s", p.Name, got.Ofport, got.HostIfname, p.Ofport, p.HostIfname)
		}
		if of := box.Vsctl(t, "get", "Interface", p.HostIfname, "ofport"); of != strconv.Itoa(p.Ofport) {
			t.Errorf("ovs-vsctl: ofport of %s is %s, want %d", p.HostIfname, of, p.Ofport)
		}
		if out := testbed.Run(t, "ip", "-n", box.Netns, "-d", "link", "show", p.HostIfname); !strings.Contains(out, "promiscuity 1") {
			t.Errorf("%s is not promiscuous: ovs-vswitchd did not take it\n%s", p.HostIfname, out)
		}
	}

	pa, pb := attach(t, veth("pa", "10.96.0.10")), attach(t, veth("pb", "10.96.0.11"))
	pt := attach(t, model.Port{Name: "pt", Network: n.Name, Type: v1.PortTap, Ifname: "vmtap0", IP: netip.MustParseAddr("10.96.0.20"),
		MAC: model.PortMAC("pt"), HostIfname: "vmtap0"})
	h.do(t, agentCmd{Op: "prune", State: datapath.State{Networks: []model.Network{n}, Ports: []model.Port{pa, pb, pt}}})
	// The spares come in the background, after the first Prune; a port
	// attached before one is free takes the slow way, and goes again.
	pc := veth("pc", "10.96.0.12")
	eventually(t, "a port on a spare", func() bool {
		got := attach(t, pc)
		if link.IsSpare(got.HostIfname) {
			pc = got
			return true
		}
		h.do(t, agentCmd{Op: "detach", Network: n, Port: got})
		return false
	})
	for _, p := range []model.Port{pa, pb, pt, pc} {
		check(t, p, "ok")
	}
	ping(t, pa.Netns, pb.IP, true)
	ping(t, pa.Netns, pc.IP, true)

	t.Run("veth host link deleted", func(t *testing.T) {
		broken(t, "link deleted", "-n", box.Netns, "link", "del", pa.HostIfname)
		check(t, pa, "link_gone")
		repaired(t, pa)
		ping(t, pa.Netns, pb.IP, true)
	})
	t.Run("link made again by hand", func(t *testing.T) {
		// What the issue saw: the link back under its name, OVSDB content,
		// and nothing forwarded.
		broken(t, "link deleted", "-n", box.Netns, "link", "del", pa.HostIfname)
		testbed.Run(t, "ip", "-n", box.Netns, "link", "add", pa.HostIfname, "type", "veth", "peer", "name", pa.Ifname, "netns", pa.Netns)
		testbed.Run(t, "ip", "-n", box.Netns, "link", "set", pa.HostIfname, "alias", datapath.PortAlias(pa.Name), "up")
		testbed.Run(t, "ip", "-n", pa.Netns, "link", "set", pa.Ifname, "address", pa.MAC, "up")
		testbed.Run(t, "ip", "-n", pa.Netns, "addr", "add", pa.IP.String()+"/24", "dev", pa.Ifname)
		eventually(t, "OVSDB to show the new link", func() bool {
			return box.Vsctl(t, "get", "Interface", pa.HostIfname, "link_state") == "up"
		})
		if of := box.Vsctl(t, "get", "Interface", pa.HostIfname, "ofport"); of != strconv.Itoa(pa.Ofport) {
			t.Fatalf("ofport %s, want the old %d", of, pa.Ofport)
		}
		check(t, pa, "not_bound")
		ping(t, pa.Netns, pb.IP, false)
		repaired(t, pa)
		ping(t, pa.Netns, pb.IP, true)
	})
	t.Run("namespace end's MAC changed", func(t *testing.T) {
		// In the port's namespace: no event in the host's (the
		// controller's sweep finds it). The attach makes the pair again
		// under the OVS port, which it then binds to the new link.
		testbed.Run(t, "ip", "-n", pa.Netns, "link", "set", pa.Ifname, "address", "02:00:00:00:00:99")
		check(t, pa, "link_gone")
		repaired(t, pa)
		ping(t, pa.Netns, pb.IP, true)
	})
	t.Run("OVS port deleted by hand", func(t *testing.T) {
		h.do(t, agentCmd{Op: "drain"})
		box.Vsctl(t, "del-port", "br-vnet", pb.HostIfname)
		if !h.do(t, agentCmd{Op: "changed"}).Changed {
			t.Fatal("Changed was not signalled")
		}
		check(t, pb, "not_bound")
		// OVS may give it another ofport: the flows follow.
		pb = attach(t, pb)
		if of := box.Vsctl(t, "get", "Interface", pb.HostIfname, "ofport"); of != strconv.Itoa(pb.Ofport) {
			t.Errorf("ovs-vsctl: ofport of %s is %s, the port has %d", pb.HostIfname, of, pb.Ofport)
		}
		ping(t, pa.Netns, pb.IP, true)
	})
	t.Run("tap deleted", func(t *testing.T) {
		broken(t, "tap deleted", "-n", box.Netns, "link", "del", pt.HostIfname)
		check(t, pt, "link_gone")
		repaired(t, pt)
	})
	t.Run("namespace made again", func(t *testing.T) {
		broken(t, "namespace deleted", "netns", "del", pb.Netns)
		check(t, pb, "netns_gone")
		testbed.Run(t, "ip", "netns", "add", pb.Netns)
		check(t, pb, "link_gone")
		repaired(t, pb)
		ping(t, pa.Netns, pb.IP, true)
	})
	t.Run("spare's link deleted", func(t *testing.T) {
		broken(t, "spare's link deleted", "-n", box.Netns, "link", "del", pc.HostIfname)
		check(t, pc, "link_gone")
		repaired(t, pc)
		ping(t, pa.Netns, pc.IP, true)
	})
	for _, p := range []model.Port{pa, pb, pt, pc} {
		check(t, p, "ok")
	}
}

// eventually waits, generously bounded, for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
