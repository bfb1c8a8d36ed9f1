package linux

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// hostBed is a network namespace that plays the host: every backend call runs
// on a thread switched into it, so the machine's own links and tables are
// never touched.
type hostBed struct {
	t   *testing.T
	ns  string
	ctx context.Context
}

func newNetns(t *testing.T, prefix string) string {
	t.Helper()
	name := testbed.UniqueName(prefix)
	testbed.Run(t, "ip", "netns", "add", name)
	// Deleting the namespace takes its links, bridges and nft tables with it.
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return name
}

// newHostBed makes the host namespace, loopback up, for a test of at most
// timeout.
func newHostBed(t *testing.T, prefix string, timeout time.Duration) *hostBed {
	t.Helper()
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	h := &hostBed{t: t, ns: newNetns(t, prefix), ctx: ctx}
	testbed.Run(t, "ip", "-n", h.ns, "link", "set", "lo", "up")
	return h
}

// outside makes an "outside" namespace on the host's uplink "vout":
// hostAddr and outAddr are the two ends' addresses in one /24.
func (h *hostBed) outside(hostAddr, outAddr netip.Addr) string {
	h.t.Helper()
	out := newNetns(h.t, "vnt-lo-")
	testbed.Run(h.t, "ip", "-n", h.ns, "link", "add", "vout", "type", "veth", "peer", "name", "eth0", "netns", out)
	testbed.Run(h.t, "ip", "-n", h.ns, "addr", "add", hostAddr.String()+"/24", "dev", "vout")
	testbed.Run(h.t, "ip", "-n", h.ns, "link", "set", "vout", "up")
	testbed.Run(h.t, "ip", "-n", out, "addr", "add", outAddr.String()+"/24", "dev", "eth0")
	testbed.Run(h.t, "ip", "-n", out, "link", "set", "eth0", "up")
	return out
}

// do runs f in the host namespace.
func (h *hostBed) do(what string, f func() error) {
	h.t.Helper()
	if err := testbed.InNetns(h.ns, f); err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
}

func (h *hostBed) port(name, network, ip string) model.Port {
	h.t.Helper()
	return model.Port{Name: name, Network: network, Type: v1.PortVeth, Netns: newNetns(h.t, "vnt-lw-"), Ifname: "eth0",
		IP: netip.MustParseAddr(ip), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name)}
}

var ttlRe = regexp.MustCompile(`ttl=(\d+)`)

// ping sends one echo from netns to dst and returns the reply's TTL, or "" when
// nothing came back within a second: the namespaces are on one host, so a
// reply that comes at all comes in microseconds.
func ping(netns, dst string, args ...string) string {
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns, "ping", "-n", "-c1", "-W1"}, append(args, dst)...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return ""
	}
	if m := ttlRe.FindStringSubmatch(string(out)); m != nil {
		return m[1]
	}
	return ""
}

func (h *hostBed) expect(from, dst string, want bool, what string) {
	h.t.Helper()
	if got := ping(from, dst) != ""; got != want {
		h.t.Errorf("%s: ping %s from %s: got through %v, want %v", what, dst, from, got, want)
	}
}

func (h *hostBed) spoofDrops(b *Backend, port string) uint64 {
	h.t.Helper()
	var n uint64
	h.do("read spoof counter", func() (err error) { n, err = b.SpoofDrops(h.ctx, port); return err })
	return n
}

func TestLinuxBackendReachability(t *testing.T) {
	h := newHostBed(t, "vnt-lh-", 2*time.Minute)
	ctx := h.ctx

	blue := model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.71.0.0/24"), Gateway: netip.MustParseAddr("10.71.0.1"), MTU: 1500}
	red := model.Network{Name: "red", Subnet: netip.MustParsePrefix("10.72.0.0/24"), Gateway: netip.MustParseAddr("10.72.0.1"), MTU: 1500}
	green := model.Network{Name: "green", Subnet: netip.MustParsePrefix("10.73.0.0/24"), Gateway: netip.MustParseAddr("10.73.0.1"), MTU: 1500, Masquerade: true}
	router := model.Router{Name: "r", Networks: []string{"blue", "red"}}
	b1, b2 := h.port("b1", "blue", "10.71.0.5"), h.port("b2", "blue", "10.71.0.6")
	r1, g1 := h.port("r1", "red", "10.72.0.5"), h.port("g1", "green", "10.73.0.5")
	tap := model.Port{Name: "t1", Network: "blue", Type: v1.PortTap, Ifname: "vmtap0", IP: netip.MustParseAddr("10.71.0.9"), MAC: model.PortMAC("t1"), HostIfname: "vmtap0"}
	nets := map[string]model.Network{"blue": blue, "red": red, "green": green}
	ports := []model.Port{b1, b2, r1, g1, tap}

	var b *Backend
	h.do("set up", func() (err error) {
		if b, err = New(ctx, "vnbr", nil); err != nil {
			return err
		}
		for _, n := range []model.Network{blue, red, green} {
			if err := b.EnsureNetwork(ctx, n); err != nil {
				return err
			}
		}
		if err := b.EnsureRouter(ctx, router); err != nil {
			return err
		}
		for _, p := range ports {
			if _, err := b.AttachPort(ctx, nets[p.Network], p); err != nil {
				return err
			}
		}
		return nil
	})
	if got := strings.TrimSpace(testbed.Run(t, "ip", "netns", "exec", h.ns, "cat", "/proc/sys/net/ipv4/ip_forward")); got != "1" {
		t.Fatalf("ip_forward in the host namespace is %q, want 1", got)
	}

	// An "outside" world reached through the host: with no route back to the
	// networks, a reply arrives only if the host masqueraded the request.
	outside := h.outside(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"))

	h.expect(b1.Netns, "10.71.0.6", true, "same network")
	h.expect(b1.Netns, "10.71.0.1", true, "own gateway")
	h.expect(b1.Netns, "10.72.0.1", true, "routed network's gateway")
	if ttl := ping(b1.Netns, "10.72.0.5"); ttl != "63" {
		t.Errorf("routed ping blue -> red: reply ttl %q, want 63 (one hop through the host)", ttl)
	}
	h.expect(r1.Netns, "10.71.0.5", true, "routed back")
	h.expect(b1.Netns, "10.73.0.5", false, "unrouted network")
	h.expect(b1.Netns, "10.73.0.1", false, "unrouted network's gateway")
	h.expect(b1.Netns, "192.0.2.1", false, "host address outside the networks")
	h.expect(g1.Netns, "10.71.0.5", false, "unrouted network, other way")
	h.expect(g1.Netns, "192.0.2.2", true, "masquerade to the outside")

	// Now the outside could answer anything: what still fails is blocked by us.
	testbed.Run(t, "ip", "-n", outside, "route", "add", "10.64.0.0/10", "via", "192.0.2.1")
	h.expect(r1.Netns, "192.0.2.2", false, "no masquerade, no way out")
	h.expect(outside, "10.73.0.5", false, "outside opens into a masquerade network")
	h.expect(outside, "10.71.0.5", false, "outside opens into a network")

	// Spoofing: a second address in b1's namespace, used as source.
	before := h.spoofDrops(b, "b1")
	testbed.Run(t, "ip", "-n", b1.Netns, "addr", "add", "10.71.0.77/24", "dev", "eth0")
	if ttl := ping(b1.Netns, "10.71.0.6", "-I", "10.71.0.77"); ttl != "" {
		t.Errorf("spoofed source IP got a reply")
	}
	if ttl := ping(b1.Netns, "10.72.0.5", "-I", "10.71.0.77"); ttl != "" {
		t.Errorf("spoofed source IP got a routed reply")
	}
	afterIP := h.spoofDrops(b, "b1")
	if afterIP <= before {
		t.Errorf("b1 spoof drops %d -> %d: did not rise", before, afterIP)
	}
	// The operator's recipe reads the same counter.
	out := testbed.Run(t, "ip", "netns", "exec", h.ns, "nft", "-j", "list", "counter", "bridge", "ovs_vnet", SpoofCounter("b1"))
	if !strings.Contains(out, `"packets": `) {
		t.Errorf("nft -j list counter: %s", out)
	}
	// A changed MAC gets nothing through either.
	testbed.Run(t, "ip", "-n", r1.Netns, "link", "set", "eth0", "address", "02:00:00:00:ee:01")
	h.expect(r1.Netns, "10.72.0.1", false, "spoofed MAC")
	if n := h.spoofDrops(b, "r1"); n == 0 {
		t.Errorf("r1 spoof drops 0 after a MAC change")
	}
	testbed.Run(t, "ip", "-n", r1.Netns, "link", "set", "eth0", "address", r1.MAC)
	h.expect(b1.Netns, "10.71.0.6", true, "honest traffic after spoofing")

	// Incremental: detaching one port (twice) leaves the others' rules and counters.
	h.do("detach b2", func() error {
		if err := b.DetachPort(ctx, blue, b2); err != nil {
			return err
		}
		return b.DetachPort(ctx, blue, b2)
	})
	if got := h.spoofDrops(b, "b1"); got < afterIP {
		t.Errorf("b1 spoof drops went down from %d to %d on another port's detach", afterIP, got)
	}
	out = testbed.Run(t, "ip", "netns", "exec", h.ns, "nft", "list", "table", "bridge", "ovs_vnet")
	if strings.Contains(out, "port_b2") || strings.Contains(out, b2.HostIfname) {
		t.Errorf("b2's rules are still there:\n%s", out)
	}

	// A restart: a new backend, everything ensured, then Prune without r1.
	// Counters of ports that stay are kept.
	keep := h.spoofDrops(b, "b1")
	h.do("restart", func() error {
		b2nd, err := New(ctx, "vnbr", nil)
		if err != nil {
			return err
		}
		b = b2nd
		return b.EnsureNetwork(ctx, blue)
	})
	// Half way through the restart's reconcile the previous rules still hold.
	if ttl := ping(b1.Netns, "10.72.0.5"); ttl != "63" {
		t.Errorf("routed ping during a restart: reply ttl %q, want 63", ttl)
	}
	h.do("reconcile", func() error {
		for _, n := range []model.Network{blue, red, green} {
			if err := b.EnsureNetwork(ctx, n); err != nil {
				return err
			}
		}
		if err := b.EnsureRouter(ctx, router); err != nil {
			return err
		}
		for _, p := range []model.Port{b1, g1, tap} {
			if _, err := b.AttachPort(ctx, nets[p.Network], p); err != nil {
				return err
			}
		}
		return b.Prune(ctx, datapath.State{Networks: []model.Network{blue, red, green}, Routers: []model.Router{router}, Ports: []model.Port{b1, g1, tap}})
	})
	if got := h.spoofDrops(b, "b1"); got < keep {
		t.Errorf("b1 spoof drops reset by the restart: %d -> %d", keep, got)
	}
	out = testbed.Run(t, "ip", "netns", "exec", h.ns, "nft", "list", "table", "bridge", "ovs_vnet")
	if strings.Contains(out, "port_r1") || !strings.Contains(out, "port_b1") || !strings.Contains(out, `"vmtap0" : jump port_t1`) {
		t.Errorf("after prune, want b1 and t1 but not r1:\n%s", out)
	}
	h.expect(b1.Netns, "10.72.0.1", true, "routed gateway after restart")
	h.expect(g1.Netns, "192.0.2.2", true, "masquerade after restart")

	// Attaches run side by side, each its own nft transaction.
	errs := make(chan error, 6)
	for i := range cap(errs) {
		p := model.Port{Name: fmt.Sprintf("tp%d", i), Network: "red", Type: v1.PortTap, IP: netip.MustParseAddr(fmt.Sprintf("10.72.0.%d", 20+i))}
		p.MAC, p.HostIfname = model.PortMAC(p.Name), model.HostIfname(p.Name)
		go func() {
			errs <- testbed.InNetns(h.ns, func() error { _, err := b.AttachPort(ctx, red, p); return err })
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("concurrent attach: %v", err)
		}
	}
	out = testbed.Run(t, "ip", "netns", "exec", h.ns, "nft", "list", "map", "bridge", "ovs_vnet", "ports")
	if n := strings.Count(out, "jump port_tp"); n != cap(errs) {
		t.Errorf("%d of %d concurrent attaches have their rules:\n%s", n, cap(errs), out)
	}

	// Routers are live: without it blue no longer reaches red's gateway.
	h.do("delete router", func() error { return b.DeleteRouter(ctx, router) })
	h.expect(b1.Netns, "10.72.0.1", false, "routed gateway after the router is gone")
	h.expect(b1.Netns, "10.71.0.1", true, "own gateway after the router is gone")

	// Everything goes: the tables too.
	h.do("prune all", func() error { return b.Prune(ctx, datapath.State{}) })
	if out := testbed.Run(t, "ip", "netns", "exec", h.ns, "nft", "list", "tables"); strings.Contains(out, "ovs_vnet") {
		t.Errorf("tables left after pruning everything:\n%s", out)
	}
}
