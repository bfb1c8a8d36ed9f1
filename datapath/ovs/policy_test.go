package ovs

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Services every port of TestSecurityGroups offers: TCP echo on two ports,
// UDP echo on one; sgUDPClosed is a port nothing listens on, which db's
// rules allow, so that the ICMP port unreachable it draws must pass the
// sender's ingress as related; sgStream takes the stream that a removed
// rule cuts, allowed with sgPostgres.
const (
	sgHTTP      = 80
	sgPostgres  = 5432
	sgStream    = 5433
	sgUDPEcho   = 5353
	sgUDPClosed = 5354
)

// sgGroups are the groups of TestSecurityGroups: web open to HTTP from
// anyone and to ping from admin's members; db to PostgreSQL and the UDP
// ports from web's; admin's egress limited to HTTP and ping.
func sgGroups(t *testing.T) map[string]model.SecurityGroup {
	group := func(name string, id int, rules ...v1.Rule) model.SecurityGroup {
		g, err := model.NewSecurityGroup(name, v1.SecurityGroupSpec{Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		g.ID = id
		return g
	}
	return map[string]model.SecurityGroup{
		"web": group("web", 1, v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoTCP, Ports: fmt.Sprint(sgHTTP)},
			v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoICMP, RemoteGroup: "admin"}),
		"db": group("db", 2, v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoTCP, Ports: fmt.Sprintf("%d-%d", sgPostgres, sgStream), RemoteGroup: "web"},
			v1.Rule{Direction: v1.DirIngress, Protocol: v1.ProtoUDP, Ports: fmt.Sprintf("%d-%d", sgUDPEcho, sgUDPClosed), RemoteGroup: "web"}),
		"admin": group("admin", 3, v1.Rule{Direction: v1.DirEgress, Protocol: v1.ProtoTCP, Ports: fmt.Sprint(sgHTTP)},
			v1.Rule{Direction: v1.DirEgress, Protocol: v1.ProtoICMP}),
	}
}

// startHostBox starts a sandbox whose namespace plays the host, and the
// configuration of a backend on its bridge br-vnet.
func startHostBox(t *testing.T) (*testbed.Sandbox, agentConfig) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	box := testbed.StartSandbox(t, root, "")
	// The pickup window closes when the test says (end-pickup), never
	// on its own in the middle of a subtest that counts flows.
	return box, agentConfig{DB: "unix:" + box.DBSock, Bridge: "br-vnet", Listen: "tcp:127.0.0.1:6653",
		VswitchdCtl: filepath.Join(box.Dir, "ovs-vswitchd.ctl"), PickupWindow: time.Hour}
}

// sgPolicy is the policy of groups for ports, as the controller computes
// it: the members of each group are the addresses of the ports that list
// it, and extra ones (other hosts' ports).
func sgPolicy(groups map[string]model.SecurityGroup, ports []model.Port, extra map[string][]netip.Addr) model.Policy {
	p := model.Policy{Groups: groups, Ports: map[string]model.GroupList{}, Members: map[string][]netip.Addr{}}
	for _, port := range ports {
		if port.SecurityGroups == "" {
			continue
		}
		p.Ports[port.Name] = port.SecurityGroups
		for _, g := range port.SecurityGroups.Names() {
			p.Members[g] = append(p.Members[g], port.IP)
		}
	}
	for g, as := range extra {
		p.Members[g] = append(p.Members[g], as...)
	}
	for g := range p.Members {
		slices.SortFunc(p.Members[g], netip.Addr.Compare)
		p.Members[g] = slices.Compact(p.Members[g])
	}
	return p
}

// TestSecurityGroups proves the OVS backend's security groups on the real
// thing — a sandbox's ovs-vswitchd (userspace datapath), ports in network
// namespaces, real packets: every pair of ports in two routed networks
// tries TCP, UDP and ping, and gets through exactly when model.Policy.Allows
// says (replies and related ICMP included), and replies through the
// masquerading host come back to a guarded port; a removed rule cuts an
// established TCP stream, and a rule added back lets a new connection
// through at once; a membership change touches only its address's flows;
// the trace names the rule, the counters count it; a restarted backend
// sends nothing.
func TestSecurityGroups(t *testing.T) {
	box, cfg := startHostBox(t)
	nw := func(name, subnet string, id int) model.Network {
		p := netip.MustParsePrefix(subnet)
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), MTU: 1500, ID: id}
	}
	front, back := nw("front", "10.97.1.0/24", 1), nw("back", "10.97.2.0/24", 2)
	front.Masquerade = true
	router := model.Router{Name: "r1", Networks: []string{"back", "front"}, ID: 1}
	port := func(name string, n model.Network, host byte, groups ...string) model.Port {
		l, err := model.NewGroupList(groups)
		if err != nil {
			t.Fatal(err)
		}
		ip := n.Subnet.Addr().As4()
		ip[3] = host
		return model.Port{Name: name, Network: n.Name, Type: v1.PortVeth, Netns: testbed.Netns(t, "vnt-sg-"), Ifname: "eth0",
			IP: netip.AddrFrom4(ip), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name), SecurityGroups: l}
	}
	want := []model.Port{port("web1", front, 10, "web"), port("other", front, 11), port("db1", back, 10, "db"), port("admin1", back, 11, "admin")}
	remoteWeb := netip.MustParseAddr("10.97.1.99") // a member of web on another host
	groups := sgGroups(t)
	policy := sgPolicy(groups, want, map[string][]netip.Addr{"web": {remoteWeb}})

	var ports []model.Port
	state := func() datapath.State {
		return datapath.State{Networks: []model.Network{front, back}, Routers: []model.Router{router}, Ports: ports, Policy: policy}
	}
	// start runs the backend as the daemon's reconcile does: the policy
	// recorded first, then the attaches, then Prune with the whole state.
	var h *agent
	start := func(t *testing.T) {
		h = startAgent(t, t, "host", box.Netns)
		h.do(t, agentCmd{Op: "new", Config: cfg})
		h.do(t, agentCmd{Op: "network", Network: front})
		h.do(t, agentCmd{Op: "network", Network: back})
		h.do(t, agentCmd{Op: "router", Router: router})
		h.do(t, agentCmd{Op: "policy", Policy: policy})
		ports = ports[:0]
		for _, p := range want {
			n := front
			if p.Network == back.Name {
				n = back
			}
			ports = append(ports, h.do(t, agentCmd{Op: "attach", Network: n, Port: p}).Port)
		}
		h.do(t, agentCmd{Op: "prune", State: state()})
	}
	start(t)
	byName := map[string]model.Port{}
	for _, p := range ports {
		byName[p.Name] = p
		serve(t, p)
	}

	// cut is the policy without db's TCP rule, which the streams use.
	cut := func() model.Policy {
		p := sgPolicy(sgGroups(t), want, map[string][]netip.Addr{"web": {remoteWeb}})
		db := p.Groups["db"]
		db.Rules = db.Rules[1:]
		p.Groups["db"] = db
		return p
	}

	t.Run("matrix", func(t *testing.T) {
		checkMatrix(t, policy, ports)
	})
	t.Run("masquerade: replies through the host pass", func(t *testing.T) {
		// Another namespace behind the host: front's ping of it goes out
		// to the host (LOCAL), which masquerades and forwards it, and the
		// reply comes back from the host, which web1's ingress (ping from
		// admin's members only) lets in as a reply.
		out := testbed.Netns(t, "vnt-out-")
		veth := testbed.UniqueName("vo")
		testbed.Run(t, "ip", "link", "add", veth+"a", "netns", box.Netns, "type", "veth", "peer", "name", veth+"b", "netns", out)
		testbed.Run(t, "ip", "-n", box.Netns, "addr", "add", "192.0.2.1/24", "dev", veth+"a")
		testbed.Run(t, "ip", "-n", box.Netns, "link", "set", veth+"a", "up")
		testbed.Run(t, "ip", "-n", out, "addr", "add", "192.0.2.2/24", "dev", veth+"b")
		testbed.Run(t, "ip", "-n", out, "link", "set", veth+"b", "up")
		testbed.Run(t, "ip", "netns", "exec", box.Netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		for _, p := range []string{"web1", "other"} {
			if err := testbed.Ping(byName[p].Netns, netip.MustParseAddr("192.0.2.2"), probeTimeout); err != nil {
				t.Errorf("%s → behind the host: %v", p, err)
			}
		}
	})
	t.Run("fragments of small networks reassembled", func(t *testing.T) {
		if n, ok := parseIPFMinV4(box.Appctl(t, "dpctl/ipf-get-status")); !ok || n != fragMinV4 {
			t.Errorf("min v4 frag size %d (%v), want %d", n, ok, fragMinV4)
		}
	})
	t.Run("trace names the rule", func(t *testing.T) {
		r := h.do(t, agentCmd{Op: "trace", State: state(), Query: v1.Query{From: "web1", To: byName["db1"].IP, Proto: v1.ProtoTCP, DPort: sgPostgres}})
		if r.Trace.Verdict != v1.Delivered || !strings.Contains(r.Trace.Summary, "allowed by rule 0 of security group db") {
			t.Errorf("trace web1 → db1:%d: %s: %s\n%s", sgPostgres, r.Trace.Verdict, r.Trace.Summary, r.Trace.Raw)
		}
		r = h.do(t, agentCmd{Op: "trace", State: state(), Query: v1.Query{From: "other", To: byName["db1"].IP, Proto: v1.ProtoTCP, DPort: sgPostgres}})
		if r.Trace.Verdict != v1.Dropped || r.Trace.Reason != v1.DropPolicy || !strings.Contains(r.Trace.Summary, "port db1's security groups (db)") {
			t.Errorf("trace other → db1:%d: %s (%s): %s\n%s", sgPostgres, r.Trace.Verdict, r.Trace.Reason, r.Trace.Summary, r.Trace.Raw)
		}
		t.Logf("trace other → db1: %s", r.Trace.Summary)
	})
	t.Run("counters", func(t *testing.T) {
		stats := h.do(t, agentCmd{Op: "policy-stats"}).PolicyStats
		hits := map[string]uint64{}
		for _, r := range stats.Rules {
			hits[v1.RuleOwner(r.Group, r.Index)] = r.Packets
		}
		// The matrix connected web1 to db1 on 5432 and pinged web1 from admin1.
		for _, rule := range []string{"db/0", "web/1", "admin/1"} {
			if hits[rule] == 0 {
				t.Errorf("rule %s counted no packet: %v", rule, stats.Rules)
			}
		}
		var drops uint64
		for _, d := range h.do(t, agentCmd{Op: "switch-stats"}).SwitchStats.Drops {
			if d.Reason == v1.DropPolicy {
				drops = d.Packets
			}
		}
		if drops == 0 {
			t.Error("no packet dropped for reason policy")
		}
		t.Logf("rule hits %v, policy drops %d", hits, drops)
	})
	t.Run("a removed rule cuts an established stream", func(t *testing.T) {
		db1, web1 := byName["db1"], byName["web1"]
		s := testbed.StartStream(t, web1.Netns, db1.Netns, netip.AddrPortFrom(db1.IP, sgStream), false, streamPace, probeTimeout)
		waitFlowing(t, s, "stream flowing", 0)
		sent := time.Now()
		h.do(t, agentCmd{Op: "policy", Policy: cut()})
		applied := time.Since(sent)
		took := waitStalled(t, s)
		t.Logf("the stream's last bytes came %v after SetPolicy returned (it took %v)", took, applied)
		if err := dialTCP(web1.Netns, db1.IP, sgPostgres); err == nil {
			t.Error("a new connection passed the removed rule")
		}
		h.do(t, agentCmd{Op: "policy", Policy: policy})
		// One connection, generously bounded: the stream resumes beside it
		// on a machine the other tests share, and a SYN lost to that costs
		// a second.
		sent = time.Now()
		if err := testbed.TCPEcho(web1.Netns, netip.AddrPortFrom(db1.IP, sgPostgres), 10*time.Second, probeTimeout); err != nil {
			t.Errorf("the rule is back, but the first new connection failed: %v", err)
		}
		t.Logf("the first new connection after the rule came back took %v", time.Since(sent))
	})
	t.Run("a membership change touches only its flows", func(t *testing.T) {
		before := boxFlows(t, box)
		more := sgPolicy(groups, want, map[string][]netip.Addr{"web": {remoteWeb, netip.MustParseAddr("10.97.1.98")}})
		h.do(t, agentCmd{Op: "policy", Policy: more})
		changed := changedFlows(before, boxFlows(t, box))
		if len(changed) != 2 || !allContain(changed, "cookie=0x76070a610162") {
			t.Errorf("a remote member joining web changed %d flows, want its 2:\n%s", len(changed), strings.Join(changed, "\n"))
		}
		// other joins web: its six port flows and its address's two.
		joined := slices.Clone(want)
		joined[1].SecurityGroups = "web"
		before = boxFlows(t, box)
		h.do(t, agentCmd{Op: "policy", Policy: sgPolicy(groups, joined, map[string][]netip.Addr{"web": {remoteWeb}})})
		changed = changedFlows(before, boxFlows(t, box))
		other := fmt.Sprintf("cookie=0x76040000%04x0000", byName["other"].Ofport)
		ports, members := 0, 0
		for _, f := range changed {
			switch {
			case strings.Contains(f, other):
				ports++
			case strings.Contains(f, "cookie=0x76070a61010b"):
				members++
			}
		}
		// And the second remote member left: its two flows went.
		if len(changed) != 10 || ports != 6 || members != 2 {
			t.Errorf("other joining web changed %d flows (%d of the port, %d of its address), want 10 (6, 2 and 2 of 10.97.1.98):\n%s",
				len(changed), ports, members, strings.Join(changed, "\n"))
		}
		if err := dialTCP(byName["web1"].Netns, byName["other"].IP, sgPostgres); err == nil {
			t.Error("other in web takes PostgreSQL connections, which web's rules do not allow")
		}
		if err := dialTCP(byName["other"].Netns, byName["db1"].IP, sgPostgres); err != nil {
			t.Errorf("other in web cannot reach db1 on %d: %v", sgPostgres, err)
		}
		h.do(t, agentCmd{Op: "policy", Policy: policy})
		if err := dialTCP(byName["other"].Netns, byName["db1"].IP, sgPostgres); err == nil {
			t.Error("other left web, but still reaches db1")
		}
	})
	// ack is ofproto/trace's bare ACK from other (no groups) to web1's
	// port 22, which web's rules do not open: a scan through
	// default-deny if it passed.
	ack := func() string {
		o, w := byName["other"], byName["web1"]
		return fmt.Sprintf("tcp,in_port=%d,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64,tp_src=40000,tp_dst=22,tcp_flags=ack",
			o.Ofport, o.MAC, w.MAC, o.IP, w.IP)
	}
	traceACK := func(t *testing.T) string {
		return box.Appctl(t, "ofproto/trace", "br-vnet", ack(), "--ct-next", "trk,new", "--ct-next", "trk,new")
	}
	// A daemon's start on a switch without our flows opened the window.
	if !pickupOpen(t, box) {
		t.Fatal("the backend started on a switch without its flows, but opened no pickup window")
	}
	h.do(t, agentCmd{Op: "end-pickup"})

	t.Run("outside the pickup window a bare ACK no rule allows is dropped", func(t *testing.T) {
		if pickupOpen(t, box) {
			t.Error("the pickup window's flows are still on the bridge after it closed")
		}
		if out := traceACK(t); !strings.Contains(out, "Datapath actions: drop") || !strings.Contains(out, "64. priority 0, cookie 0x7601000000000000") {
			t.Errorf("other's bare ACK to web1:22 is not dropped by ingress_verdict's miss (reason policy):\n%s", out)
		}
	})
	t.Run("an ovs-vswitchd restart keeps a download, and a cut stream cut", func(t *testing.T) {
		db1, web1 := byName["db1"], byName["web1"]
		// web1 opens, db1 sends: after the restart db1's next segment is
		// the first packet conntrack sees, the wrong way round.
		s := testbed.StartStream(t, web1.Netns, db1.Netns, netip.AddrPortFrom(db1.IP, sgStream), true, streamPace, probeTimeout)
		waitFlowing(t, s, "download flowing", 0)
		restartVswitchd(t, box)
		if !pickupOpen(t, box) {
			t.Fatal("no pickup window after the ovs-vswitchd restart")
		}
		waitFlowing(t, s, "download resumed after the ovs-vswitchd restart", s.Received())
		if err := dialTCP(db1.Netns, web1.IP, sgPostgres); err == nil {
			t.Error("db1 → web1 passed after the restart: web's rules do not allow it")
		}
		if err := dialTCP(byName["other"].Netns, db1.IP, sgPostgres); err == nil {
			t.Error("other → db1 passed after the restart: db's rules allow only web")
		}
		// What the window accepts (docs/PIPELINE.md): web1's egress
		// allows the reverse, and other has no groups.
		if out := traceACK(t); !strings.Contains(out, "Datapath actions: ct(commit,zone=1,mark=0x1/0x1),") {
			t.Errorf("in the pickup window other's bare ACK to web1:22 is not taken as the reverse of a connection web1 opened:\n%s", out)
		}
		// The window closes; the download it picked up goes on.
		before := boxFlows(t, box)
		h.do(t, agentCmd{Op: "end-pickup"})
		if changed := changedFlows(before, boxFlows(t, box)); len(changed) != pickupFlows {
			t.Errorf("closing the window changed %d flows, want its %d:\n%s", len(changed), pickupFlows, strings.Join(changed, "\n"))
		}
		waitFlowing(t, s, "download after the pickup window closed", s.Received())
		if out := traceACK(t); !strings.Contains(out, "Datapath actions: drop") {
			t.Errorf("after the pickup window other's bare ACK to web1:22 is not dropped:\n%s", out)
		}

		// The rule removed cuts the download; a restart must not bring it
		// back: db1's retransmissions are new again, and now neither way
		// is allowed.
		h.do(t, agentCmd{Op: "policy", Policy: cut()})
		waitStalled(t, s)
		restartVswitchd(t, box)
		at := s.Received()
		time.Sleep(3 * time.Second)
		if n := s.Received(); n != at {
			t.Errorf("the cut download got %d bytes in 3 s after the restart", n-at)
		}
		h.do(t, agentCmd{Op: "policy", Policy: policy})
	})
	t.Run("restart sends nothing", func(t *testing.T) {
		// In the window the last ovs-vswitchd restart opened: it goes on.
		if !pickupOpen(t, box) {
			t.Fatal("no pickup window after the ovs-vswitchd restart")
		}
		before := boxFlows(t, box)
		h.stop()
		start(t)
		if changed := changedFlows(before, boxFlows(t, box)); len(changed) != 0 {
			t.Errorf("the restart in the pickup window changed %d flows:\n%s", len(changed), strings.Join(changed, "\n"))
		}
		// Outside it: none opens.
		h.do(t, agentCmd{Op: "end-pickup"})
		before = boxFlows(t, box)
		h.stop()
		start(t)
		if changed := changedFlows(before, boxFlows(t, box)); len(changed) != 0 {
			t.Errorf("the restart changed %d flows:\n%s", len(changed), strings.Join(changed, "\n"))
		}
		if pickupOpen(t, box) {
			t.Error("a daemon restart that found its flows in place opened the pickup window")
		}
		h.do(t, agentCmd{Op: "policy", Policy: policy})
		if changed := changedFlows(before, boxFlows(t, box)); len(changed) != 0 {
			t.Errorf("the same policy again changed %d flows:\n%s", len(changed), strings.Join(changed, "\n"))
		}
		if err := dialTCP(byName["web1"].Netns, byName["db1"].IP, sgPostgres); err != nil {
			t.Errorf("web1 → db1 after the restart: %v", err)
		}
	})
}

// sgMatrix is TestSecurityGroups' matrix: every port tries every service
// of every other port, and gets an answer exactly when Allows lets the
// packet through both sides.
var sgMatrix = testbed.Matrix{TCP: []uint16{sgHTTP, sgPostgres}, UDPEcho: sgUDPEcho, UDPClosed: sgUDPClosed, Wait: probeTimeout}

// probeTimeout bounds a probe that the policy drops.
const probeTimeout = 2 * time.Second

// checkMatrix runs sgMatrix on the ports and checks that it holds both
// allowed and denied probes, or it proves nothing.
func checkMatrix(t *testing.T, pol model.Policy, ports []model.Port) {
	t.Helper()
	var mp []testbed.MatrixPort
	for _, p := range ports {
		mp = append(mp, testbed.MatrixPort{Name: p.Name, Netns: p.Netns, IP: p.IP})
	}
	if allowed, n := sgMatrix.Check(t, "matrix", pol, mp); allowed == 0 || allowed == n {
		t.Errorf("the matrix proves nothing: %d of %d allowed", allowed, n)
	}
}

// serve runs sgMatrix's services on the port's address, in its
// namespace, until the test ends.
func serve(t *testing.T, p model.Port) {
	t.Helper()
	testbed.ServeEcho(t, p.Netns, p.IP, sgMatrix.TCP, []uint16{sgMatrix.UDPEcho})
}

// dialTCP connects from namespace ns and has one byte echoed.
func dialTCP(ns string, to netip.Addr, port uint16) error {
	return testbed.TCPEcho(ns, netip.AddrPortFrom(to, port), probeTimeout, probeTimeout)
}

// streamPace is the streams' pace: as fast as they go.
var streamPace = testbed.Pace{Chunk: 64 << 10}

// waitFlowing waits, generously bounded, for another MiB of the stream
// past from bytes.
func waitFlowing(t *testing.T, s *testbed.Stream, what string, from int64) {
	t.Helper()
	if !s.WaitPast(from+1<<20, 30*time.Second) {
		t.Fatalf("no %s after 30 s (%d bytes in all)", what, s.Received())
	}
}

// waitStalled waits, generously bounded, until no byte of the stream has
// arrived for half a second, and returns how long after the call the last
// byte came.
func waitStalled(t *testing.T, s *testbed.Stream) time.Duration {
	t.Helper()
	start := time.Now()
	return s.WaitStalled(t, start, 500*time.Millisecond, 10*time.Second).Sub(start)
}

// restartVswitchd restarts the sandbox's ovs-vswitchd, which loses its
// flows and conntrack, and waits, generously bounded, for the backend to
// have put the flows back (the output table's commit flows among them).
func restartVswitchd(t *testing.T, box *testbed.Sandbox) {
	t.Helper()
	before := len(boxFlows(t, box))
	box.RestartVswitchd(t)
	eventually(t, "flows back after the ovs-vswitchd restart", func() bool { return len(boxFlows(t, box)) >= before })
}

// pickupFlows is what the pickup window adds or changes on
// TestSecurityGroups' bridge, as changedFlows counts: two flows of each
// of its three guarded ports, six of the skeleton, and egress_ct's miss,
// replaced (its old and new text).
const pickupFlows = 2*3 + 6 + 2

// pickupOpen tells whether the bridge holds the pickup window's flows:
// its mark, ingress_verdict's verdict on a packet taken as its reverse.
func pickupOpen(t *testing.T, box *testbed.Sandbox) bool {
	t.Helper()
	for f := range boxFlows(t, box) {
		if strings.Contains(f, "cookie=0x7601000000000000, table=64, priority=160,") {
			return true
		}
	}
	return false
}

// boxFlows is the integration bridge's flows (ofctlDump): text without
// counters, and how long each has been installed.
func boxFlows(t *testing.T, box *testbed.Sandbox) ofctlDump {
	t.Helper()
	out := ofctlDump{}
	for _, line := range strings.Split(box.Ofctl(t, "dump-flows", "br-vnet"), "\n") {
		g := durationField.FindStringSubmatch(line)
		if g == nil {
			continue
		}
		var d float64
		fmt.Sscan(g[1], &d)
		out[counterFields.ReplaceAllString(strings.TrimSpace(line), "")] = d
	}
	return out
}

// changedFlows lists the flows added, removed or replaced (a replaced
// flow's duration starts anew) between two dumps, sorted.
func changedFlows(before, after ofctlDump) []string {
	var out []string
	for k, d := range before {
		if a, ok := after[k]; !ok || a < d {
			out = append(out, k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func allContain(lines []string, s string) bool {
	for _, l := range lines {
		if !strings.Contains(l, s) {
			return false
		}
	}
	return true
}

// TestMeetsTraffic: SetPolicy waits for the revalidators only for a change
// that packets already forwarded can meet, not for the one that readies a
// port before its attach (nor the one after its detach).
func TestMeetsTraffic(t *testing.T) {
	s := newState()
	s.ports["blue"] = map[string]model.Port{"a": {Name: "a", Network: "blue", IP: netip.MustParseAddr("10.98.1.10")}}
	s.remote = byNetwork([]model.RemotePort{remotePort("r", "blue", "10.98.1.20", "10.99.0.2")})
	addr := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		ch   model.PolicyChange
		want bool
	}{
		{"a port being attached and its address", model.PolicyChange{Ports: []string{"new"}, Members: []netip.Addr{addr("10.98.1.30")}}, false},
		{"nothing", model.PolicyChange{}, false},
		{"a group's rules", model.PolicyChange{Groups: []string{"db"}}, true},
		{"an attached port's groups", model.PolicyChange{Ports: []string{"a"}, Members: []netip.Addr{addr("10.98.1.10")}}, true},
		{"an attached port's egress opening", model.PolicyChange{EgressFlip: []string{"a"}}, true},
		{"an attached port's address alone", model.PolicyChange{Members: []netip.Addr{addr("10.98.1.10")}}, true},
		{"another host's port", model.PolicyChange{Members: []netip.Addr{addr("10.98.1.20")}}, true},
	} {
		if got := meetsTraffic(s, tc.ch); got != tc.want {
			t.Errorf("%s: meetsTraffic = %v, want %v", tc.name, got, tc.want)
		}
	}
}
