package linux

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// underlayMTU is the hosts' underlay links' MTU: the networks' 1500 plus what
// VXLAN over IPv4 adds, so that no outer packet is fragmented.
const underlayMTU = 1500 + datapath.TunnelOverhead

// clusterHost is one host of the test cluster: a namespace on an underlay
// shared with the others, its agent, and the ports it holds.
type clusterHost struct {
	name  string
	ns    string
	ip    netip.Addr
	a     *agent
	ports []model.Port
}

type cluster struct {
	t        *testing.T
	prefix   string
	hosts    []*clusterHost
	networks []model.Network
	routers  []model.Router
}

// newCluster makes n host namespaces joined by a bridge in an underlay
// namespace of their own, addressed 10.98.0.i/24 inside them only.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, prefix: "vnbr"}
	under := newNetns(t, "vnt-ul-")
	testbed.Run(t, "ip", "-n", under, "link", "add", "ul", "mtu", fmt.Sprint(underlayMTU), "type", "bridge")
	testbed.Run(t, "ip", "-n", under, "link", "set", "ul", "up")
	for i := 1; i <= n; i++ {
		h := &clusterHost{name: fmt.Sprintf("h%d", i), ns: newNetns(t, fmt.Sprintf("vnt-h%d-", i)), ip: netip.AddrFrom4([4]byte{10, 98, 0, byte(i)})}
		peer := fmt.Sprintf("h%d", i)
		testbed.Run(t, "ip", "-n", h.ns, "link", "add", "ul0", "mtu", fmt.Sprint(underlayMTU), "type", "veth", "peer", "name", peer, "netns", under)
		testbed.Run(t, "ip", "-n", under, "link", "set", peer, "mtu", fmt.Sprint(underlayMTU), "master", "ul", "up")
		testbed.Run(t, "ip", "-n", h.ns, "addr", "add", h.ip.String()+"/24", "dev", "ul0")
		testbed.Run(t, "ip", "-n", h.ns, "link", "set", "ul0", "up")
		testbed.Run(t, "ip", "-n", h.ns, "link", "set", "lo", "up")
		c.hosts = append(c.hosts, h)
	}
	return c
}

func (c *cluster) network(name string) model.Network {
	for _, n := range c.networks {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no network %s", name)
	return model.Network{}
}

// addPort gives host h a veth port in a namespace of the test's.
func (c *cluster) addPort(h *clusterHost, name, network, ip string) model.Port {
	p := model.Port{Name: name, Network: network, Type: v1.PortVeth, Netns: newNetns(c.t, "vnt-cp-"), Ifname: "eth0",
		IP: netip.MustParseAddr(ip), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name), Host: h.name}
	h.ports = append(h.ports, p)
	return p
}

// remote is what h is told of the other hosts: all their ports. (The
// controller may tell a host less; more makes the isolation checks stronger:
// they then rest on the rules alone, not on what a host does not know.)
func (c *cluster) remote(h *clusterHost) []model.RemotePort {
	var rs []model.RemotePort
	for _, o := range c.hosts {
		if o != h {
			for _, p := range o.ports {
				rs = append(rs, model.RemotePort{Port: p, HostIP: o.ip})
			}
		}
	}
	return rs
}

func (c *cluster) state(h *clusterHost) datapath.State {
	return datapath.State{Networks: c.networks, Routers: c.routers, Ports: h.ports, Remote: c.remote(h)}
}

// bringUp does what the daemon does at start: a backend, every network and
// router, the host's ports, the remote ports, and Prune.
func (c *cluster) bringUp(h *clusterHost, underlay *datapath.Underlay) {
	c.t.Helper()
	h.a = startAgent(c.t, h.ns)
	h.a.must(agentReq{Op: "new", Prefix: c.prefix, Underlay: underlay})
	for _, n := range c.networks {
		h.a.must(agentReq{Op: "network", Network: n})
	}
	for _, r := range c.routers {
		h.a.must(agentReq{Op: "router", Router: r})
	}
	for _, p := range h.ports {
		h.a.must(agentReq{Op: "attach", Network: c.network(p.Network), Port: p})
	}
	s := c.state(h)
	if underlay == nil {
		s.Remote = nil
	} else {
		h.a.must(agentReq{Op: "remote", Remote: s.Remote})
	}
	h.a.must(agentReq{Op: "prune", State: s})
}

func (h *clusterHost) underlay() *datapath.Underlay {
	return &datapath.Underlay{LocalIP: h.ip, Kind: datapath.TunnelVXLAN}
}

// in runs a command in h's namespace.
func (h *clusterHost) in(t *testing.T, args ...string) string {
	t.Helper()
	return testbed.Run(t, "ip", append([]string{"netns", "exec", h.ns}, args...)...)
}

// fdbDsts returns the hosts a network's VXLAN device on h sends to, as
// `bridge fdb` shows them.
func (c *cluster) fdbDsts(h *clusterHost, network string) []string {
	out := h.in(c.t, "bridge", "fdb", "show", "dev", VXLANName(c.prefix, network))
	var dsts []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if i := slices.Index(f, "dst"); i >= 0 && i+1 < len(f) && !slices.Contains(dsts, f[i+1]) {
			dsts = append(dsts, f[i+1])
		}
	}
	slices.Sort(dsts)
	return dsts
}

var (
	countersRe = regexp.MustCompile(`packets \d+ bytes \d+`)
	linkRe     = regexp.MustCompile(`(?m)^(\d+): (vnbr\S*?|vnet\S*?)(@\S+)?:`)
)

// snapshot is what a no-op reconcile must leave exactly as it was: our
// links (by ifindex, so none was re-created), our FDB and neighbour entries,
// and our bridge table (counters aside).
func (c *cluster) snapshot(h *clusterHost) string {
	var b strings.Builder
	for _, m := range linkRe.FindAllStringSubmatch(h.in(c.t, "ip", "-o", "link", "show"), -1) {
		fmt.Fprintf(&b, "link %s %s\n", m[1], m[2])
	}
	for line := range strings.Lines(h.in(c.t, "bridge", "fdb", "show")) {
		if strings.Contains(line, " dev "+c.prefix+"x") && (strings.Contains(line, " self") || strings.Contains(line, " static")) {
			b.WriteString("fdb " + line)
		}
	}
	b.WriteString(h.in(c.t, "ip", "neigh", "show", "nud", "permanent"))
	b.WriteString(countersRe.ReplaceAllString(h.in(c.t, "nft", "list", "table", "bridge", "ovs_vnet"), ""))
	return b.String()
}

// reach pings until a reply comes (ARP across the overlay may take the first
// try) and returns its TTL, or "" after three silent seconds.
func reach(from, dst string) string {
	for range 3 {
		if ttl := ping(from, dst); ttl != "" {
			return ttl
		}
	}
	return ""
}

func clusterPrereqs(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	for _, tool := range []string{"ip", "bridge", "nft", "ping"} {
		_, err := exec.LookPath(tool)
		testbed.Need(t, err == nil, tool+" in PATH")
	}
	// A VXLAN device in a throwaway namespace proves the kernel has VXLAN.
	err := exec.Command("unshare", "--net", "ip", "link", "add", "vxt", "type", "vxlan", "id", "1", "dstport", "4789", "local", "10.98.0.1").Run()
	testbed.Need(t, err == nil, "kernel VXLAN support")
}

// TestOverlayCluster proves cluster mode on the real kernel: three hosts,
// each a namespace with its own backend (agent process), ports on all of
// them, joined by VXLAN over a veth underlay.
func TestOverlayCluster(t *testing.T) {
	clusterPrereqs(t)
	start := time.Now()
	c := newCluster(t, 3)
	h1, h2, h3 := c.hosts[0], c.hosts[1], c.hosts[2]
	network := func(name string, id int, third byte) model.Network {
		return model.Network{Name: name, ID: id, MTU: 1500, Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 97, third, 0}), 24),
			Gateway: netip.AddrFrom4([4]byte{10, 97, third, 1})}
	}
	c.networks = []model.Network{network("blue", 11, 1), network("red", 12, 2), network("green", 13, 3)}
	c.routers = []model.Router{{Name: "r", Networks: []string{"blue", "red"}}}
	b1 := c.addPort(h1, "b1", "blue", "10.97.1.11")
	b2 := c.addPort(h2, "b2", "blue", "10.97.1.12")
	r2 := c.addPort(h2, "r2", "red", "10.97.2.12")
	r3 := c.addPort(h3, "r3", "red", "10.97.2.13")
	g3 := c.addPort(h3, "g3", "green", "10.97.3.13")
	for _, h := range c.hosts {
		c.bringUp(h, h.underlay())
	}
	t.Logf("3 hosts, 3 networks, 5 ports up in %v", time.Since(start).Round(time.Millisecond))

	// One network across hosts: bridged, no hop.
	if ttl := reach(b1.Netns, b2.IP.String()); ttl != "64" {
		t.Errorf("b1 (h1) -> b2 (h2), blue: reply ttl %q, want 64", ttl)
	}
	// Across the router: routed once, on the sending host.
	for _, p := range []struct {
		from model.Port
		to   model.Port
	}{{b1, r2}, {b1, r3}, {r2, b1}, {r3, b1}} {
		if ttl := reach(p.from.Netns, p.to.IP.String()); ttl != "63" {
			t.Errorf("%s (%s) -> %s (%s), routed: reply ttl %q, want 63", p.from.Name, p.from.Host, p.to.Name, p.to.Host, ttl)
		}
	}
	// No router, nothing: even though every host knows every port.
	for _, p := range []struct {
		from model.Port
		to   string
	}{{b1, g3.IP.String()}, {g3, b1.IP.String()}, {b2, g3.IP.String()}, {b1, "10.97.3.1"}} {
		if ttl := ping(p.from.Netns, p.to); ttl != "" {
			t.Errorf("%s (%s) -> %s: got through (ttl %s), want isolation", p.from.Name, p.from.Host, p.to, ttl)
		}
	}
	t.Logf("TCP b1 (h1) -> b2 (h2), blue: 32 MiB at %.0f Mbit/s", testbed.TransferTCP(t, b1.Netns, b2.Netns, b2.IP.String(), 32<<20))
	t.Logf("TCP b1 (h1) -> r3 (h3), routed: 32 MiB at %.0f Mbit/s", testbed.TransferTCP(t, b1.Netns, r3.Netns, r3.IP.String(), 32<<20))

	// Broadcast goes to the hosts with ports in the network, and only there.
	wantDsts := map[*clusterHost]map[string][]string{
		h1: {"blue": {"10.98.0.2"}, "red": {"10.98.0.2", "10.98.0.3"}, "green": {"10.98.0.3"}},
		h2: {"blue": {"10.98.0.1"}, "red": {"10.98.0.3"}, "green": {"10.98.0.3"}},
		h3: {"blue": {"10.98.0.1", "10.98.0.2"}, "red": {"10.98.0.2"}, "green": nil},
	}
	for h, nets := range wantDsts {
		for network, want := range nets {
			if got := c.fdbDsts(h, network); !slices.Equal(got, want) {
				t.Errorf("%s: %s's VXLAN FDB sends to %v, want %v", h.name, network, got, want)
			}
		}
	}

	// The gateway answers from the port's own host: b2 learns h2's bridge
	// MAC, and the ARP request that the bridge also flooded to the overlay
	// was dropped on its way out.
	testbed.Run(t, "ip", "-n", b2.Netns, "neigh", "flush", "all")
	if ttl := ping(b2.Netns, "10.97.1.1"); ttl != "64" {
		t.Errorf("b2 -> its gateway: ttl %q", ttl)
	}
	gwMAC := bridgeMAC("blue", h2.underlay())
	if out := testbed.Run(t, "ip", "-n", b2.Netns, "neigh", "show", "10.97.1.1"); !strings.Contains(out, gwMAC) {
		t.Errorf("b2's gateway neighbour: %q, want h2's bridge MAC %s", out, gwMAC)
	}
	if bridgeMAC("blue", h1.underlay()) == gwMAC {
		t.Errorf("h1 and h2 have the same bridge MAC for blue")
	}
	out := h2.in(t, "nft", "list", "counter", "bridge", "ovs_vnet", overlayCounter)
	if m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("h2's gateway ARP counter did not count b2's request:\n%s", out)
	}

	// Prune with the same state changes nothing.
	before := c.snapshot(h2)
	h2.a.must(agentReq{Op: "prune", State: c.state(h2)})
	if after := c.snapshot(h2); after != before {
		t.Errorf("h2: Prune of the same state changed things:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Remote ports that cannot be written are left out, logged once, and
	// fail nothing (a restart's Prune included): one of h3 with b1's MAC
	// (after b1 by name, so b1 keeps it), one with b2's, which is local
	// here, and one claiming h2's own underlay address.
	withBad := append(c.remote(h2),
		model.RemotePort{Port: model.Port{Name: "zz", Network: "blue", IP: netip.MustParseAddr("10.97.1.99"), MAC: b1.MAC, Host: "h3"}, HostIP: h3.ip},
		model.RemotePort{Port: model.Port{Name: "zy", Network: "blue", IP: netip.MustParseAddr("10.97.1.98"), MAC: b2.MAC, Host: "h3"}, HostIP: h3.ip},
		model.RemotePort{Port: model.Port{Name: "zx", Network: "blue", IP: netip.MustParseAddr("10.97.1.97"), MAC: model.PortMAC("zx"), Host: "h2"}, HostIP: h2.ip})
	for range 3 {
		h2.a.must(agentReq{Op: "remote", Remote: withBad})
	}
	badState := c.state(h2)
	badState.Remote = withBad
	h2.a.must(agentReq{Op: "prune", State: badState})
	if after := c.snapshot(h2); after != before {
		t.Errorf("h2: bad remote ports changed things:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ttl := reach(b2.Netns, b1.IP.String()); ttl != "64" {
		t.Errorf("b2 -> b1 beside bad remote ports: ttl %q", ttl)
	}
	if n := strings.Count(h2.a.stderr.String(), "remote port left out"); n != 3 {
		t.Errorf("h2 logged %d remote ports left out, want 3 (once each):\n%s", n, h2.a.stderr)
	}
	h2.a.must(agentReq{Op: "remote", Remote: c.remote(h2)})

	// A restart of h1's backend, under traffic, changes nothing either.
	before = c.snapshot(h1)
	pinger := exec.Command("ip", "netns", "exec", b1.Netns, "ping", "-n", "-q", "-i", "0.01", "-w", "3", b2.IP.String())
	var pings bytes.Buffer
	pinger.Stdout, pinger.Stderr = &pings, &pings
	if err := pinger.Start(); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	h1.a.close()
	c.bringUp(h1, h1.underlay())
	restarted := time.Since(restart)
	_ = pinger.Wait()
	if after := c.snapshot(h1); after != before {
		t.Errorf("h1: restart changed things:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	loss := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(pings.String())
	if loss == nil || loss[1] != loss[2] {
		t.Errorf("b1 -> b2 during h1's restart: %s", pings.String())
	} else {
		t.Logf("h1 restart (new backend, ensure all, prune) took %v; b1 -> b2 pings every 10 ms meanwhile: %s sent, %s received",
			restarted.Round(time.Millisecond), loss[1], loss[2])
	}

	// Without remote ports h1 reaches no other host.
	h1.a.must(agentReq{Op: "remote"})
	for _, network := range []string{"blue", "red", "green"} {
		if got := c.fdbDsts(h1, network); len(got) > 0 {
			t.Errorf("h1: %s's VXLAN FDB still sends to %v after SetRemotePorts(nil)", network, got)
		}
	}
	if out := strings.TrimSpace(h1.in(t, "ip", "neigh", "show", "nud", "permanent")); out != "" {
		t.Errorf("h1: permanent neighbours left after SetRemotePorts(nil):\n%s", out)
	}
	if ttl := ping(b1.Netns, b2.IP.String()); ttl != "" {
		t.Errorf("b1 -> b2 got through without remote ports")
	}
	if ttl := ping(b1.Netns, r2.IP.String()); ttl != "" {
		t.Errorf("b1 -> r2 (routed) got through without remote ports")
	}
	h1.a.must(agentReq{Op: "remote", Remote: c.remote(h1)})
	if ttl := reach(b1.Netns, b2.IP.String()); ttl != "64" {
		t.Errorf("b1 -> b2 after the remote ports are back: ttl %q", ttl)
	}

	// DeleteNetwork takes the VXLAN device; EnsureNetwork brings it back
	// with the remote ports it should hold.
	green := c.network("green")
	h1.a.must(agentReq{Op: "delete-network", Network: green})
	if err := exec.Command("ip", "-n", h1.ns, "link", "show", VXLANName(c.prefix, "green")).Run(); err == nil {
		t.Errorf("h1: green's VXLAN device outlived its network")
	}
	if out := h1.in(t, "nft", "list", "set", "bridge", "ovs_vnet", overlaySet); strings.Contains(out, VXLANName(c.prefix, "green")) {
		t.Errorf("h1: green's gateway element outlived its network:\n%s", out)
	}
	h1.a.must(agentReq{Op: "network", Network: green})
	if got := c.fdbDsts(h1, "green"); !slices.Equal(got, []string{"10.98.0.3"}) {
		t.Errorf("h1: re-created green's VXLAN FDB sends to %v, want [10.98.0.3]", got)
	}

	// A network too large for the underlay's MTU is warned about, once.
	jumbo := network("jumbo", 14, 4)
	jumbo.MTU = underlayMTU - datapath.TunnelOverhead + 1
	h1.a.must(agentReq{Op: "network", Network: jumbo})
	h1.a.must(agentReq{Op: "network", Network: jumbo})
	if n := strings.Count(h1.a.stderr.String(), "network MTU too large for the underlay"); n != 1 {
		t.Errorf("h1 warned %d times of jumbo's MTU, want once:\n%s", n, h1.a.stderr)
	}
	h1.a.must(agentReq{Op: "delete-network", Network: jumbo})

	// Prune with less: green is no longer wanted on h2, nor is r3.
	shrunk := c.state(h2)
	shrunk.Networks = slices.DeleteFunc(slices.Clone(shrunk.Networks), func(n model.Network) bool { return n.Name == "green" })
	shrunk.Remote = slices.DeleteFunc(slices.Clone(shrunk.Remote), func(r model.RemotePort) bool {
		return r.Port.Network == "green" || r.Port.Name == "r3"
	})
	h2.a.must(agentReq{Op: "prune", State: shrunk})
	if err := exec.Command("ip", "-n", h2.ns, "link", "show", VXLANName(c.prefix, "green")).Run(); err == nil {
		t.Errorf("h2: green's VXLAN device outlived a Prune without green")
	}
	if out := h2.in(t, "nft", "list", "set", "bridge", "ovs_vnet", overlaySet); strings.Contains(out, VXLANName(c.prefix, "green")) {
		t.Errorf("h2: green's gateway element outlived a Prune without green:\n%s", out)
	}
	if got := c.fdbDsts(h2, "red"); len(got) > 0 {
		t.Errorf("h2: red's VXLAN FDB still sends to %v without r3", got)
	}
	if out := h2.in(t, "ip", "neigh", "show", "nud", "permanent"); strings.Contains(out, r3.IP.String()) {
		t.Errorf("h2: r3's neighbour entry outlived it:\n%s", out)
	}
	if ttl := ping(r2.Netns, r3.IP.String()); ttl != "" {
		t.Errorf("r2 -> r3 got through after h2 pruned r3")
	}
	if ttl := reach(b2.Netns, b1.IP.String()); ttl != "64" {
		t.Errorf("b2 -> b1 after h2's shrinking Prune: ttl %q", ttl)
	}

	// h3 leaves the cluster: a single-host backend prunes the overlay away.
	h3.a.close()
	c.bringUp(h3, nil)
	if out := strings.TrimSpace(h3.in(t, "ip", "-d", "link", "show", "type", "vxlan")); out != "" {
		t.Errorf("h3: VXLAN devices left on a single host:\n%s", out)
	}
	if out := h3.in(t, "nft", "list", "table", "bridge", "ovs_vnet"); strings.Contains(out, "overlay") {
		t.Errorf("h3: overlay rules left on a single host:\n%s", out)
	}
	if ttl := ping(b1.Netns, r3.IP.String()); ttl != "" {
		t.Errorf("b1 -> r3 got through to a host that left the cluster")
	}
	// An underlay address the host does not have is refused at start.
	stray := startAgent(t, h3.ns)
	err := stray.call(agentReq{Op: "new", Prefix: c.prefix, Underlay: &datapath.Underlay{LocalIP: netip.MustParseAddr("10.98.0.99")}})
	if err == nil || !strings.Contains(err.Error(), "not an address of this host") {
		t.Errorf("New with a foreign underlay address: %v", err)
	}
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}
