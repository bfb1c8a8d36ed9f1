package ovs

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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

// The underlay of TestOverlayTwoHosts. Its MTU leaves room for the
// encapsulation (VXLAN 50 bytes over IPv4, Geneve 50 without options): OVS
// does not fragment what it encapsulates, and a full 1500-byte packet of a
// port, tunnelled over a 1500-byte underlay, is dropped without a word.
const (
	underlayMTU    = 1600
	underlayPrefix = 24
)

// overlayHost is one host of the test: a namespace with its own OVS, a
// br-phy holding its end of the underlay, and an agent running the backend.
type overlayHost struct {
	name  string
	ns    string
	ip    netip.Addr // underlay address, on br-phy's internal interface
	box   *testbed.Sandbox
	agent *agent
	ports []model.Port // local, attached
}

// newOverlayHost brings up a host's namespace, OVS and br-phy (the
// userspace tunnelling recipe of docs/DESIGN.md §6): the underlay NIC is a port
// of a netdev bridge and the host's underlay address sits on that bridge's
// internal interface, so that OVS — which routes the encapsulated packets
// itself, by the routes it learns from the namespace's kernel — finds the
// way to the other hosts through br-phy.
func newOverlayHost(t *testing.T, root, name, ns, nic string, ip netip.Addr) *overlayHost {
	t.Helper()
	h := &overlayHost{name: name, ns: ns, ip: ip}
	h.box = testbed.StartSandbox(t, root, ns)
	// The internal interface's MTU set, not left to follow the NIC's some
	// time later: the backend checks the networks' MTU against it.
	h.box.Vsctl(t, "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
		"--", "add-port", "br-phy", nic, "--", "set", "interface", "br-phy", fmt.Sprintf("mtu_request=%d", underlayMTU))
	testbed.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	testbed.Run(t, "ip", "-n", ns, "link", "set", nic, "up")
	testbed.Run(t, "ip", "-n", ns, "addr", "add", netip.PrefixFrom(ip, underlayPrefix).String(), "dev", "br-phy")
	testbed.Run(t, "ip", "-n", ns, "link", "set", "br-phy", "up")
	return h
}

func (h *overlayHost) config(kind string) agentConfig {
	// The pickup window closes when the test says (end-pickup), never
	// by its timer in the middle of a subtest.
	c := agentConfig{DB: "unix:" + h.box.DBSock, Bridge: "br-vnet", Listen: "tcp:127.0.0.1:6653",
		VswitchdCtl: filepath.Join(h.box.Dir, "ovs-vswitchd.ctl"), PickupWindow: time.Hour}
	if kind != "" {
		c.Underlay = &datapath.Underlay{LocalIP: h.ip, Kind: kind}
	}
	return c
}

// overlayWorld is the desired state of the cluster: networks and routers
// everywhere, ports on one host or the other.
type overlayWorld struct {
	top      *testing.T // owns the agents, which outlive subtests
	networks []model.Network
	routers  []model.Router
	hosts    []*overlayHost
	// remoteOf lists, per host, the other hosts' ports it is given.
	remoteOf map[string][]model.RemotePort
}

func (w *overlayWorld) network(name string) model.Network {
	for _, n := range w.networks {
		if n.Name == name {
			return n
		}
	}
	panic("no network " + name)
}

func (w *overlayWorld) state(h *overlayHost) datapath.State {
	return datapath.State{Networks: w.networks, Routers: w.routers, Ports: h.ports, Remote: w.remoteOf[h.name]}
}

// start runs h's backend as the daemon's reconcile would after a (re)start:
// networks, routers, attaches, then Prune with the whole state.
func (w *overlayWorld) start(t *testing.T, h *overlayHost, kind string, want []model.Port) {
	t.Helper()
	h.agent = startAgent(t, w.top, h.name, h.ns)
	h.agent.do(t, agentCmd{Op: "new", Config: h.config(kind)})
	for _, n := range w.networks {
		h.agent.do(t, agentCmd{Op: "network", Network: n})
	}
	for _, r := range w.routers {
		h.agent.do(t, agentCmd{Op: "router", Router: r})
	}
	h.ports = nil
	for _, p := range want {
		r := h.agent.do(t, agentCmd{Op: "attach", Network: w.network(p.Network), Port: p})
		h.ports = append(h.ports, r.Port)
	}
	h.agent.do(t, agentCmd{Op: "prune", State: w.state(h)})
}

// TestOverlayTwoHosts proves the overlay on the real thing: two hosts (each
// a network namespace with its own ovs-vswitchd, userspace datapath) joined
// by a veth underlay, a backend per host. Ports on different hosts ping and
// carry TCP in one network and across a router; an unrouted network stays
// isolated; the remote ports' removal stops the traffic; a restarted backend
// keeps every flow; the tunnel kind can change; a single host drops the
// tunnel port.
func TestOverlayTwoHosts(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root (network namespaces, OVS sandboxes)")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w := &overlayWorld{top: t, remoteOf: map[string][]model.RemotePort{}}
	nw := func(name, subnet string, id int) model.Network {
		p := netip.MustParsePrefix(subnet)
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), MTU: 1500, ID: id}
	}
	w.networks = []model.Network{nw("blue", "10.98.1.0/24", 11), nw("red", "10.98.2.0/24", 12), nw("green", "10.98.3.0/24", 13)}
	w.routers = []model.Router{{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}}

	// Namespaces first, removed last (cleanups run in reverse).
	ns := func(prefix string) string {
		name := testbed.UniqueName(prefix)
		testbed.Run(t, "ip", "netns", "add", name)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
		return name
	}
	hostNS := []string{ns("vnt-h1-"), ns("vnt-h2-")}
	nic := testbed.UniqueName("vu")
	testbed.Run(t, "ip", "link", "add", nic+"a", "netns", hostNS[0], "mtu", fmt.Sprint(underlayMTU), "type", "veth",
		"peer", "name", nic+"b", "netns", hostNS[1], "mtu", fmt.Sprint(underlayMTU))
	h1 := newOverlayHost(t, root, "h1", hostNS[0], nic+"a", netip.MustParseAddr("10.99.0.1"))
	h2 := newOverlayHost(t, root, "h2", hostNS[1], nic+"b", netip.MustParseAddr("10.99.0.2"))
	w.hosts = []*overlayHost{h1, h2}

	port := func(name, network, ip, host string) model.Port {
		return model.Port{Name: name, Network: network, Type: v1.PortVeth, Netns: ns("vnt-p-"), Ifname: "eth0",
			IP: netip.MustParseAddr(ip), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name), Host: host}
	}
	ba := port("ba", "blue", "10.98.1.10", "h1")
	bb, rb, gb := port("bb", "blue", "10.98.1.11", "h2"), port("rb", "red", "10.98.2.11", "h2"), port("gb", "green", "10.98.3.11", "h2")
	remote := func(h *overlayHost, ports ...model.Port) []model.RemotePort {
		var out []model.RemotePort
		for _, p := range ports {
			out = append(out, model.RemotePort{Port: p, HostIP: h.ip})
		}
		return out
	}
	// h1 knows green's port too, as a cluster-wide model would: isolation
	// must come from the routing, not from ignorance.
	w.remoteOf["h1"] = remote(h2, bb, rb, gb)
	w.remoteOf["h2"] = remote(h1, ba)
	w.start(t, h1, datapath.TunnelVXLAN, []model.Port{ba})
	w.start(t, h2, datapath.TunnelVXLAN, []model.Port{bb, rb, gb})
	t.Logf("two hosts up in %v", time.Since(start).Round(time.Millisecond))

	t.Run("same network", func(t *testing.T) {
		ping(t, ba.Netns, bb.IP, true)
		ping(t, bb.Netns, ba.IP, true)
		testbed.TransferTCP(t, ba.Netns, bb.Netns, bb.IP.String(), 32<<20)
		testbed.TransferTCP(t, bb.Netns, ba.Netns, ba.IP.String(), 32<<20)
	})
	t.Run("across a router", func(t *testing.T) {
		ping(t, ba.Netns, rb.IP, true)
		testbed.TransferTCP(t, rb.Netns, ba.Netns, ba.IP.String(), 8<<20)
	})
	t.Run("isolation", func(t *testing.T) {
		ping(t, ba.Netns, gb.IP, false)
		ping(t, gb.Netns, ba.IP, false)
		r := h1.agent.do(t, agentCmd{Op: "trace", State: w.state(h1), Query: v1.Query{From: "ba", To: gb.IP, Proto: v1.ProtoICMP}})
		if r.Trace.Verdict != v1.Dropped || r.Trace.Reason != v1.DropIsolated {
			t.Errorf("trace ba → gb: %s (%s): %s", r.Trace.Verdict, r.Trace.Reason, r.Trace.Summary)
		}
	})
	t.Run("owners and trace", func(t *testing.T) {
		r := h1.agent.do(t, agentCmd{Op: "trace", State: w.state(h1), Query: v1.Query{From: "ba", To: bb.IP, Proto: v1.ProtoTCP, DPort: 80}})
		if r.Trace.Verdict != v1.Delivered || strings.Join(r.Trace.Ports, ",") != "bb on h2" {
			t.Errorf("trace ba → bb: %s %v: %s\n%s", r.Trace.Verdict, r.Trace.Ports, r.Trace.Summary, r.Trace.Raw)
		}
		t.Logf("trace ba → bb: %s", r.Trace.Summary)
		flows := h1.agent.do(t, agentCmd{Op: "flows", State: w.state(h1)}).Flows
		owners := map[string]int{}
		for _, f := range flows {
			if f.Host != "" {
				f.Owner += " on " + f.Host
			}
			owners[f.OwnerKind+" "+f.Owner]++
		}
		for _, want := range []string{"remote port bb on h2", "remote port rb on h2", "remote port gb on h2"} {
			if owners[want] != 2 {
				t.Errorf("%d flows of %q, want 2; owners %v", owners[want], want, owners)
			}
		}
	})
	t.Run("security groups across hosts", func(t *testing.T) {
		// ba (h1) in web, whose rules allow nothing in; bb and rb (h2, the
		// second across the router) in db, which takes PostgreSQL from
		// web's members. Each host judges its own ports: h1 ba's egress,
		// h2 the ingress of bb and rb; replies come back through the
		// tunnel as replies of the connection h1 committed.
		groups := sgGroups(t)
		web := groups["web"]
		web.Rules = []model.Rule{}
		groups["web"] = web
		for _, p := range []model.Port{ba, bb, rb} {
			serve(t, p)
		}
		members := map[string][]netip.Addr{"web": {ba.IP}, "db": {bb.IP, rb.IP}}
		pol := func(local map[string]model.GroupList) model.Policy {
			return model.Policy{Groups: groups, Ports: local, Members: members}
		}
		h1.agent.do(t, agentCmd{Op: "policy", Policy: pol(map[string]model.GroupList{"ba": "web"})})
		h2.agent.do(t, agentCmd{Op: "policy", Policy: pol(map[string]model.GroupList{"bb": "db", "rb": "db"})})
		for _, c := range []struct {
			from, to model.Port
			port     uint16
			want     bool
		}{
			{ba, bb, sgPostgres, true}, {ba, rb, sgPostgres, true}, {ba, bb, sgHTTP, false},
			{bb, ba, sgHTTP, false}, {rb, bb, sgPostgres, false},
		} {
			if err := dialTCP(c.from.Netns, c.to.IP, c.port); (err == nil) != c.want {
				t.Errorf("TCP %s → %s:%d: %v, want success %v", c.from.Name, c.to.Name, c.port, err, c.want)
			}
		}
		if err := testbed.Ping(bb.Netns, ba.IP, probeTimeout); err == nil {
			t.Error("bb pings ba, whose group allows nothing in")
		}
		for _, h := range w.hosts {
			h.agent.do(t, agentCmd{Op: "policy", Policy: model.Policy{}})
		}
		ping(t, bb.Netns, ba.IP, true)
	})
	t.Run("remote_sender's flows only in the pickup window", func(t *testing.T) {
		// h1 started on a switch without its flows: its window is open,
		// and table 65 (pipeline.Member) holds a flow per member address
		// and the skeleton's. A membership change sends the address's
		// while the window is open, not once it closed; closing it
		// removes them all.
		groups := sgGroups(t)
		pol := func(members map[string][]netip.Addr) model.Policy {
			return model.Policy{Groups: groups, Ports: map[string]model.GroupList{"ba": "web"}, Members: members}
		}
		flowsOf := func(table, addr string) int {
			n := 0
			for f := range dumpFlows(t, h1) {
				if strings.Contains(f, " table="+table+",") && strings.Contains(f, addr) {
					n++
				}
			}
			return n
		}
		check := func(when string, remoteSender int) {
			t.Helper()
			if n := flowsOf("65", ""); n != remoteSender {
				t.Errorf("%s: %d flows in table 65, want %d", when, n, remoteSender)
			}
		}
		h1.agent.do(t, agentCmd{Op: "policy", Policy: pol(map[string][]netip.Addr{"web": {ba.IP}})})
		check("window open", 2)
		h1.agent.do(t, agentCmd{Op: "policy", Policy: pol(map[string][]netip.Addr{"web": {ba.IP}, "db": {bb.IP}})})
		check("bb joined db in the window", 3)
		h1.agent.do(t, agentCmd{Op: "end-pickup"})
		check("window closed", 0)
		h1.agent.do(t, agentCmd{Op: "policy", Policy: pol(map[string][]netip.Addr{"web": {ba.IP}, "db": {bb.IP, rb.IP}})})
		check("rb joined db after the window", 0)
		if n := flowsOf("62", "nw_src="+rb.IP.String()+" "); n != 1 {
			t.Errorf("rb joined db after the window: %d ingress_peer flows of its address, want 1", n)
		}
		h1.agent.do(t, agentCmd{Op: "policy", Policy: model.Policy{}})
	})
	t.Run("restart keeps the flows", func(t *testing.T) {
		before := dumpFlows(t, h1)
		pinger := startPing(t, bb.Netns, ba.IP)
		h1.agent.stop()
		w.start(t, h1, datapath.TunnelVXLAN, []model.Port{ba})
		after := dumpFlows(t, h1)
		compareDumps(t, before, after)
		if loss := pinger.wait(t); loss != 0 {
			t.Errorf("pings lost across the restart: %d", loss)
		}
		// The same remote set again sends nothing either.
		h1.agent.do(t, agentCmd{Op: "remote", Remote: w.remoteOf["h1"]})
		compareDumps(t, after, dumpFlows(t, h1))
	})
	t.Run("bad remote ports are left out", func(t *testing.T) {
		// One of a third host with bb's MAC (after bb by name: bb keeps
		// it), one with ba's, which is local on h1, and one claiming h1's
		// own underlay address: left out and logged once each, nothing
		// else changes, and a restart's Prune with them succeeds.
		h3 := netip.MustParseAddr("10.99.0.3")
		withBad := append(slices.Clone(w.remoteOf["h1"]),
			model.RemotePort{Port: model.Port{Name: "zz", Network: "blue", IP: netip.MustParseAddr("10.98.1.99"), MAC: bb.MAC, Host: "h3"}, HostIP: h3},
			model.RemotePort{Port: model.Port{Name: "zy", Network: "blue", IP: netip.MustParseAddr("10.98.1.98"), MAC: ba.MAC, Host: "h3"}, HostIP: h3},
			model.RemotePort{Port: model.Port{Name: "zx", Network: "blue", IP: netip.MustParseAddr("10.98.1.97"), MAC: model.PortMAC("zx"), Host: "h1"}, HostIP: h1.ip})
		before := dumpFlows(t, h1)
		for range 3 {
			h1.agent.do(t, agentCmd{Op: "remote", Remote: withBad})
		}
		s := w.state(h1)
		s.Remote = withBad
		h1.agent.do(t, agentCmd{Op: "prune", State: s})
		compareDumps(t, before, dumpFlows(t, h1))
		ping(t, ba.Netns, bb.IP, true)
		if n := strings.Count(h1.agent.log.String(), "remote port left out"); n != 3 {
			t.Errorf("h1 logged %d remote ports left out, want 3 (once each):\n%s", n, h1.agent.log.String())
		}
		h1.agent.do(t, agentCmd{Op: "remote", Remote: w.remoteOf["h1"]})
	})
	t.Run("MTU too large for the underlay", func(t *testing.T) {
		const warning = "network MTU too large for the underlay"
		if strings.Contains(h1.agent.log.String(), warning) {
			t.Errorf("warned of an MTU that fits:\n%s", h1.agent.log.String())
		}
		jumbo := nw("jumbo", "10.98.9.0/24", 19)
		jumbo.MTU = underlayMTU - datapath.TunnelOverhead + 1
		h1.agent.do(t, agentCmd{Op: "network", Network: jumbo})
		h1.agent.do(t, agentCmd{Op: "network", Network: jumbo})
		if n := strings.Count(h1.agent.log.String(), warning); n != 1 || !strings.Contains(h1.agent.log.String(), "underlay_interface=br-phy") {
			t.Errorf("warned %d times of jumbo's MTU, want once, naming br-phy:\n%s", n, h1.agent.log.String())
		}
		h1.agent.do(t, agentCmd{Op: "delete-network", Network: jumbo})
	})
	t.Run("remote ports removed", func(t *testing.T) {
		for _, h := range w.hosts {
			h.agent.do(t, agentCmd{Op: "remote", Remote: nil})
		}
		if n := strings.Count(h1.box.Ofctl(t, "dump-flows", "br-vnet"), "cookie=0x7605"); n != 0 {
			t.Errorf("%d remote port flows left on h1", n)
		}
		ping(t, ba.Netns, bb.IP, false)
		ping(t, ba.Netns, rb.IP, false)
		for _, h := range w.hosts {
			h.agent.do(t, agentCmd{Op: "remote", Remote: w.remoteOf[h.name]})
		}
		ping(t, ba.Netns, bb.IP, true)
	})
	t.Run("geneve replaces vxlan", func(t *testing.T) {
		for _, h := range w.hosts {
			h.agent.stop()
			w.start(t, h, datapath.TunnelGeneve, h.ports)
			if typ := h.box.Vsctl(t, "get", "interface", tunnelPort, "type"); typ != "geneve" {
				t.Errorf("%s: tunnel port type %s", h.name, typ)
			}
		}
		ping(t, ba.Netns, bb.IP, true)
		ping(t, ba.Netns, rb.IP, true)
		testbed.TransferTCP(t, ba.Netns, bb.Netns, bb.IP.String(), 8<<20)
	})
	t.Run("single host drops the tunnel", func(t *testing.T) {
		h1.agent.stop()
		w.start(t, h1, "", []model.Port{ba})
		if out := h1.box.Vsctl(t, "--bare", "--columns=name", "find", "interface", "name="+tunnelPort); out != "" {
			t.Errorf("tunnel port left on a single host: %q", out)
		}
		flows := h1.box.Ofctl(t, "dump-flows", "br-vnet")
		if strings.Contains(flows, "cookie=0x7605") || strings.Contains(flows, "tun_id") {
			t.Errorf("tunnel flows left on a single host:\n%s", flows)
		}
		if _, err := h1.agent.call(agentCmd{Op: "remote", Remote: w.remoteOf["h1"]}); err == nil {
			t.Error("SetRemotePorts on a single host succeeded")
		}
	})
	t.Logf("whole test %v", time.Since(start).Round(time.Millisecond))
}

func ping(t *testing.T, ns string, to netip.Addr, want bool) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", to.String()).CombinedOutput()
	if got := err == nil; got != want {
		t.Fatalf("ping from %s to %s: success=%v, want %v\n%s", ns, to, got, want, out)
	}
}

// pinger is a ping running in the background, one every 20 ms.
type pinger struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startPing(t *testing.T, ns string, to netip.Addr) *pinger {
	t.Helper()
	p := &pinger{}
	// 150 pings 20 ms apart: about 3 s, longer than a backend restart here.
	p.cmd = exec.Command("ip", "netns", "exec", ns, "ping", "-c", "150", "-i", "0.02", "-W", "1", to.String())
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// wait returns how many pings were lost.
func (p *pinger) wait(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Wait()
	g := pingSummary.FindStringSubmatch(p.out.String())
	if g == nil {
		t.Fatalf("ping output without a summary:\n%s", p.out.String())
	}
	var sent, got int
	fmt.Sscan(g[1], &sent)
	fmt.Sscan(g[2], &got)
	t.Logf("background ping: %d sent, %d received", sent, got)
	return sent - got
}

// ofctlDump is our flows on a bridge as ovs-ofctl shows them: by their text without counters, the
// time each has been installed.
type ofctlDump map[string]float64

var (
	durationField = regexp.MustCompile(`duration=([0-9.]+)s, `)
	counterFields = regexp.MustCompile(`(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, `)
)

func dumpFlows(t *testing.T, h *overlayHost) ofctlDump {
	t.Helper()
	return boxFlows(t, h.box)
}

// compareDumps: the same flows, none of them replaced (a replaced flow
// starts its duration anew).
func compareDumps(t *testing.T, before, after ofctlDump) {
	t.Helper()
	remote := 0
	for key, d := range before {
		a, ok := after[key]
		switch {
		case !ok:
			t.Errorf("flow gone: %s", key)
		case a < d:
			t.Errorf("flow replaced (duration %.3fs → %.3fs): %s", d, a, key)
		}
		if strings.Contains(key, "cookie=0x7605") {
			remote++
		}
	}
	for key := range after {
		if _, ok := before[key]; !ok {
			t.Errorf("flow new: %s", key)
		}
	}
	if remote == 0 {
		t.Error("no remote port flow in the dump")
	}
	t.Logf("%d flows kept, %d of them remote ports'", len(before), remote)
}
