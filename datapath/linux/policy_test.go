package linux

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// sgPolicy is the matrix of docs/DESIGN.md §8.1: web takes tcp/80 (and
// udp 5000-5001, for related ICMP) from anywhere, db tcp/5432 from web
// only, web and db icmp from admin only; admin lists a group without rules
// (ingress default deny, egress open); other lists none.
func sgPolicy(t *testing.T, ports map[string]model.Port) model.Policy {
	p := model.Policy{
		Groups: map[string]model.SecurityGroup{
			"web": testGroup(t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "80"},
				v1.Rule{Direction: "ingress", Protocol: "udp", Ports: "5000-5001"}),
			"db":         testGroup(t, "db", 2, v1.Rule{Direction: "ingress", Protocol: "tcp", Ports: "5432", RemoteGroup: "web"}),
			"admin":      testGroup(t, "admin", 3),
			"icmp-admin": testGroup(t, "icmp-admin", 4, v1.Rule{Direction: "ingress", Protocol: "icmp", RemoteGroup: "admin"}),
		},
		Ports: map[string]model.GroupList{
			"web": groupList(t, "web", "icmp-admin"), "db": groupList(t, "db", "icmp-admin"), "admin": groupList(t, "admin"),
		},
	}
	setMembers(&p, ports)
	return p
}

// setMembers fills Members from Ports, as the controller does on one host.
func setMembers(p *model.Policy, ports map[string]model.Port) {
	p.Members = map[string][]netip.Addr{}
	for name, groups := range p.Ports {
		for _, g := range groups.Names() {
			p.Members[g] = append(p.Members[g], ports[name].IP)
		}
	}
	for _, members := range p.Members {
		slices.SortFunc(members, netip.Addr.Compare)
	}
}

type sgBed struct {
	*hostBed
	b     *Backend
	nets  map[string]model.Network
	ports map[string]model.Port
	// nftLog records every nft process the backend starts (wrapNft).
	nftLog string
}

// newSGBed makes networks sg-a and sg-b joined by a router, ports web, db,
// other on sg-a and admin on sg-b, each serving sgHTTP, sgPG and sgUDP.
func newSGBed(t *testing.T, ctx context.Context) *sgBed {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	s := &sgBed{hostBed: &hostBed{t: t, ns: newNetns(t, "vnt-sh-"), ctx: ctx}, nftLog: wrapNft(t)}
	testbed.Run(t, "ip", "-n", s.ns, "link", "set", "lo", "up")
	a := model.Network{Name: "sg-a", Subnet: netip.MustParsePrefix("10.91.0.0/24"), Gateway: netip.MustParseAddr("10.91.0.1"), MTU: 1500}
	bn := model.Network{Name: "sg-b", Subnet: netip.MustParsePrefix("10.92.0.0/24"), Gateway: netip.MustParseAddr("10.92.0.1"), MTU: 1500}
	s.nets = map[string]model.Network{a.Name: a, bn.Name: bn}
	s.ports = map[string]model.Port{
		"web": s.port("web", a.Name, "10.91.0.5"), "db": s.port("db", a.Name, "10.91.0.6"),
		"other": s.port("other", a.Name, "10.91.0.7"), "admin": s.port("admin", bn.Name, "10.92.0.5"),
	}
	for _, p := range s.ports {
		// Every address: the port gets its own at the attach below.
		testbed.ServeEcho(t, p.Netns, netip.IPv4Unspecified(), sgMatrix.TCP, []uint16{sgMatrix.UDPEcho})
	}
	s.do("set up", func() (err error) {
		if s.b, err = New(ctx, "vnsg", nil); err != nil {
			return err
		}
		return s.bringUp(sgPolicy(t, s.ports))
	})
	return s
}

// bringUp does what the controller's reconcile does: networks, router, the
// policy recorded, ports attached, then Prune.
func (s *sgBed) bringUp(p model.Policy) error {
	ctx := s.ctx
	st := s.state(p)
	for _, n := range st.Networks {
		if err := s.b.EnsureNetwork(ctx, n); err != nil {
			return err
		}
	}
	if err := s.b.EnsureRouter(ctx, st.Routers[0]); err != nil {
		return err
	}
	if err := s.b.SetPolicy(ctx, p); err != nil {
		return err
	}
	for _, port := range st.Ports {
		if _, err := s.b.AttachPort(ctx, s.nets[port.Network], port); err != nil {
			return err
		}
	}
	return s.b.Prune(ctx, st)
}

func (s *sgBed) state(p model.Policy) datapath.State {
	st := datapath.State{Networks: []model.Network{s.nets["sg-a"], s.nets["sg-b"]},
		Routers: []model.Router{{Name: "sg-r", Networks: []string{"sg-a", "sg-b"}}}, Policy: p}
	for _, name := range []string{"admin", "db", "other", "web"} {
		st.Ports = append(st.Ports, s.ports[name])
	}
	return st
}

func (s *sgBed) setPolicy(p model.Policy) {
	s.t.Helper()
	s.do("set policy", func() error { return s.b.SetPolicy(s.ctx, p) })
}

// nftRuns counts the nft processes started so far.
func (s *sgBed) nftRuns() int {
	s.t.Helper()
	data, err := os.ReadFile(s.nftLog)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// wrapNft puts an nft first on PATH that logs each run before it runs the
// real one: the witness that a change started no nft process.
func wrapNft(t *testing.T) string {
	real, err := exec.LookPath("nft")
	testbed.Need(t, err == nil, "nft (hack/install-deps.sh)")
	dir := t.TempDir()
	log := filepath.Join(dir, "runs.log")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n", log, real)
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// The ports' services: TCP echo on 80 and 5432, UDP echo on 5000; 5001
// is closed, so a datagram to it draws an ICMP port unreachable.
const (
	sgHTTP, sgPG, sgUDP, sgUDPClosed = 80, 5432, 5000, 5001
	// probeWait bounds a probe: the namespaces are on one host, so an
	// answer that comes at all comes in microseconds.
	probeWait = time.Second
)

// sgMatrix is TestSecurityGroupsKernel's matrix: real sockets opened in
// the ports' namespaces.
var sgMatrix = testbed.Matrix{TCP: []uint16{sgHTTP, sgPG}, UDPEcho: sgUDP, UDPClosed: sgUDPClosed, Wait: probeWait}

type probe struct {
	from, to string
	proto    uint8
	port     uint16
}

func (p probe) String() string {
	return fmt.Sprintf("%s -> %s %s/%d", p.from, p.to, map[uint8]string{model.ProtoICMP: "icmp", model.ProtoTCP: "tcp", model.ProtoUDP: "udp"}[p.proto], p.port)
}

// run sends the probe and reports whether it got through and back.
func (s *sgBed) run(p probe) bool {
	passed, _ := sgMatrix.Try(s.ports[p.from].Netns, s.ports[p.to].IP, p.proto, p.port)
	return passed
}

// oracle is what model.Policy.Allows says of the probe.
func oracle(pol model.Policy, s *sgBed, p probe) bool {
	pkt := model.Packet{SrcPort: p.from, DstPort: p.to, Src: s.ports[p.from].IP, Dst: s.ports[p.to].IP, Proto: p.proto}
	if p.proto != model.ProtoICMP {
		pkt.DPort = p.port
	}
	eg, in := pol.Allows(pkt)
	return eg.Allowed && in.Allowed
}

// checkMatrix runs sgMatrix on the ports and compares with the oracle.
func (s *sgBed) checkMatrix(pol model.Policy, what string) {
	s.t.Helper()
	var ports []testbed.MatrixPort
	for _, name := range slices.Sorted(maps.Keys(s.ports)) {
		p := s.ports[name]
		ports = append(ports, testbed.MatrixPort{Name: name, Netns: p.Netns, IP: p.IP})
	}
	sgMatrix.Check(s.t, what, pol, ports)
}

// TestSecurityGroupsKernel proves the table against the kernel: the
// policy matrix (TCP, UDP, ping, replies, related ICMP) against the
// oracle; a membership change that is set elements only (nft monitor and
// no nft process as witnesses); a removed rule cutting an established TCP
// stream; a table deleted by hand written again at the next change; a
// restart that changes nothing; Prune removing what is stale.
func TestSecurityGroupsKernel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := newSGBed(t, ctx)
	pol := sgPolicy(t, s.ports)
	s.checkMatrix(pol, "matrix")
	// The matrix holds denials and allowances of every kind, or it proves
	// little: web takes http from all, db pg from web alone, admin nothing.
	for _, c := range []struct {
		p    probe
		want bool
	}{
		{probe{"other", "web", model.ProtoTCP, sgHTTP}, true},
		{probe{"admin", "web", model.ProtoTCP, sgHTTP}, true},
		{probe{"web", "db", model.ProtoTCP, sgPG}, true},
		{probe{"other", "db", model.ProtoTCP, sgPG}, false},
		{probe{"admin", "db", model.ProtoICMP, 0}, true},
		{probe{"other", "db", model.ProtoICMP, 0}, false},
		{probe{"web", "admin", model.ProtoICMP, 0}, false},
		{probe{"admin", "other", model.ProtoUDP, sgUDP}, true},
		{probe{"db", "web", model.ProtoUDP, sgUDPClosed}, true},
	} {
		if got := oracle(pol, s, c.p); got != c.want {
			t.Fatalf("the oracle says %v for %s, the test expects %v", got, c.p, c.want)
		}
	}
	if out := testbed.Run(t, "ip", "netns", "exec", s.ns, "nft", "list", "counter", "inet", hostnet.PolicyTable, policyDropCounter); strings.Contains(out, "packets 0 ") {
		t.Errorf("denied probes were not counted in %s:\n%s", policyDropCounter, out)
	}
	var stats datapath.PolicyStats
	s.do("policy stats", func() (err error) { stats, err = s.b.PolicyStats(ctx); return err })
	if i := slices.IndexFunc(stats.Drops, func(d datapath.DropStats) bool { return d.Reason == v1.DropPolicy }); i < 0 || stats.Drops[i].Packets == 0 {
		t.Errorf("policy drops: %+v", stats.Drops)
	}
	hits := map[string]uint64{}
	for _, r := range stats.Rules {
		hits[v1.RuleOwner(r.Group, r.Index)] = r.Packets
	}
	if hits["web/0"] == 0 || hits["db/0"] == 0 || hits["icmp-admin/0"] == 0 || len(hits) != 4 {
		t.Errorf("rule hits: %v", hits)
	}

	t.Run("membership is elements", func(t *testing.T) { s.t = t; testMembership(s, pol) })
	t.Run("rule removal cuts", func(t *testing.T) { s.t = t; testRuleRemoval(s, pol) })
	t.Run("a table deleted by hand", func(t *testing.T) { s.t = t; testTableDeleted(s, pol) })
	t.Run("br_netfilter off", func(t *testing.T) { s.t = t; testBridgeNfOff(s, pol) })
	t.Run("restart", func(t *testing.T) { s.t = t; testPolicyRestart(s, pol) })
}

// testBridgeNfOff: with bridge-nf-call-iptables off in the host's
// namespace, traffic within a network passes unjudged; a change of a
// policy that guards ports, and a Prune, are refused as not supported,
// naming the setting, with nothing sent to the table (nft monitor); the
// policy in force may be handed back (a refused change's rollback does);
// a backend made meanwhile offers no security groups and says why. Once
// it is on again, the change goes through.
func testBridgeNfOff(s *sgBed, pol model.Policy) {
	t := s.t
	sysctl := func(v string) *exec.Cmd {
		return exec.Command("ip", "netns", "exec", s.ns, "sysctl", "-qw", bridgeNfSysctl+"="+v)
	}
	if out, err := sysctl("0").CombinedOutput(); err != nil {
		t.Fatalf("switch %s off: %v\n%s", bridgeNfSysctl, err, out)
	}
	t.Cleanup(func() { _ = sysctl("1").Run() })
	if !s.run(probe{"other", "db", model.ProtoTCP, sgPG}) {
		t.Errorf("other -> db (one network) is still judged with %s off: the check guards nothing", bridgeNfSysctl)
	}
	q := sgPolicy(t, s.ports)
	q.Ports["other"] = groupList(t, "admin")
	setMembers(&q, s.ports)
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, datapath.ErrUnsupported) || !strings.Contains(err.Error(), bridgeNfSysctl+" is 0") {
			t.Errorf("%s with %s off: %v, want not supported, naming the setting", what, bridgeNfSysctl, err)
		}
	}
	mon := testbed.NftMonitor(t, s.ns)
	var setErr, pruneErr error
	s.do("changes with the setting off", func() error {
		setErr = s.b.SetPolicy(s.ctx, q)
		pruneErr = s.b.Prune(s.ctx, s.state(pol))
		return s.b.SetPolicy(s.ctx, pol)
	})
	refused("a membership change", setErr)
	refused("a Prune", pruneErr)
	if events := mon(); events != "" {
		t.Errorf("refused changes changed nftables:\n%s", events)
	}
	var caps datapath.Capabilities
	s.do("a backend made with the setting off", func() error {
		b, err := New(s.ctx, "vnsg", nil)
		if err != nil {
			return err
		}
		caps = b.Capabilities()
		return b.Close()
	})
	if caps.Policy != nil || !strings.Contains(caps.NoPolicy, bridgeNfSysctl+" is 0") || !strings.Contains(caps.NoPolicy, "restart") {
		t.Errorf("a backend made with %s off offers security groups %v, and says %q", bridgeNfSysctl, caps.Policy != nil, caps.NoPolicy)
	}

	if out, err := sysctl("1").CombinedOutput(); err != nil {
		t.Fatalf("switch %s on: %v\n%s", bridgeNfSysctl, err, out)
	}
	s.setPolicy(q)
	s.checkMatrix(q, "other in admin, the setting on again")
	s.setPolicy(pol)
}

// testTableDeleted: with the table deleted by hand, the next change
// succeeds and makes the table whole again (the matrix is the oracle's):
// a membership change, elements only into sets that are gone, and a
// change of rules, whose script would delete a counter that is gone.
func testTableDeleted(s *sgBed, pol model.Policy) {
	deleteTable := func() {
		testbed.Run(s.t, "ip", "netns", "exec", s.ns, "nft", "delete", "table", "inet", hostnet.PolicyTable)
	}
	deleteTable()
	q := sgPolicy(s.t, s.ports)
	q.Ports["other"] = groupList(s.t, "admin")
	setMembers(&q, s.ports)
	s.setPolicy(q)
	s.checkMatrix(q, "other in admin, after the table was deleted")
	deleteTable()
	r := sgPolicy(s.t, s.ports)
	r.Groups["web"] = testGroup(s.t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "udp", Ports: "5000-5001"})
	s.setPolicy(r)
	s.checkMatrix(r, "web without its http rule, after the table was deleted")
	s.setPolicy(pol)
	s.checkMatrix(pol, "the policy back")
}

// testMembership: other joins admin (so may ping web and db, and becomes
// guarded itself): set elements change, over netlink, and nothing else.
func testMembership(s *sgBed, pol model.Policy) {
	t := s.t
	if s.run(probe{"other", "web", model.ProtoICMP, 0}) {
		t.Fatal("other pings web before it joins admin")
	}
	q := sgPolicy(t, s.ports)
	q.Ports["other"] = groupList(t, "admin")
	setMembers(&q, s.ports)
	mon := testbed.NftMonitor(t, s.ns)
	runs := s.nftRuns()
	s.setPolicy(q)
	// Counted before the monitor's stop, which runs nft itself.
	if n := s.nftRuns() - runs; n != 0 {
		t.Errorf("a membership change ran nft %d times", n)
	}
	events := mon()
	var elems int
	for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
		switch {
		case strings.HasPrefix(line, "add element inet "+hostnet.PolicyTable+" "):
			elems++
		case strings.HasPrefix(line, "# new generation"):
			// The process that made the change is named: not nft.
			if strings.HasSuffix(line, "(nft)") {
				t.Errorf("nft made a membership change: %s", line)
			}
		default:
			t.Errorf("a membership change made the kernel event %q, want set elements only", line)
		}
	}
	// guarded, p_admin and m_admin gain other's address.
	if elems != 3 {
		t.Errorf("%d element events, want 3:\n%s", elems, events)
	}
	t.Logf("kernel events of the membership change:\n%s", events)
	s.checkMatrix(q, "other in admin")
	s.setPolicy(pol)
	s.checkMatrix(pol, "other out of admin")
}

// testRuleRemoval: a TCP stream other -> web:80 runs; removing web's http
// rule stalls it (original-direction packets are judged again), and adding
// the rule back lets a new connection through on its first try.
func testRuleRemoval(s *sgBed, pol model.Policy) {
	t := s.t
	st := startStream(t, s.ports["other"].Netns, s.ports["web"].IP)
	if !st.WaitPast(st.Received(), 5*time.Second) {
		t.Fatal("the stream does not flow before the change")
	}
	q := sgPolicy(t, s.ports)
	q.Groups["web"] = testGroup(t, "web", 1, v1.Rule{Direction: "ingress", Protocol: "udp", Ports: "5000-5001"})
	s.setPolicy(q)
	changed := time.Now()
	stalledAt := st.WaitStalled(t, changed, time.Second, 10*time.Second)
	t.Logf("the stream's last echo came %v after the rule's removal", stalledAt.Sub(changed).Round(time.Millisecond))
	if s.run(probe{"admin", "web", model.ProtoTCP, sgHTTP}) {
		t.Error("a new connection passes without its rule")
	}
	s.setPolicy(pol)
	if !s.run(probe{"admin", "web", model.ProtoTCP, sgHTTP}) {
		t.Error("a new connection is refused on its first try after its rule came back")
	}
}

// testPolicyRestart: a new backend on the same host, reconciled with the
// same policy, sends nothing to the table (nft monitor sees nothing of
// it), keeps its counters, and an established stream keeps flowing; a
// Prune without a group removes its objects, one without groups the table;
// a start on a host without the table filters each port from its attach.
func testPolicyRestart(s *sgBed, pol model.Policy) {
	t := s.t
	st := startStream(t, s.ports["admin"].Netns, s.ports["web"].IP)
	if !st.WaitPast(st.Received(), 5*time.Second) {
		t.Fatal("the stream does not flow before the restart")
	}
	before := ruleHits(s, "web", 0)
	mon := testbed.NftMonitor(t, s.ns)
	s.do("restart", func() (err error) {
		if s.b, err = New(s.ctx, "vnsg", nil); err != nil {
			return err
		}
		return s.bringUp(pol)
	})
	if events := mon(); strings.Contains(events, hostnet.PolicyTable) {
		t.Errorf("a restart with the same policy changed the table:\n%s", events)
	}
	if after := ruleHits(s, "web", 0); after < before {
		t.Errorf("web's rule 0 counter went from %d to %d over the restart", before, after)
	}
	if !st.WaitPast(st.Received(), 5*time.Second) {
		t.Error("the stream stopped over the restart")
	}
	s.checkMatrix(pol, "after restart")

	// A table of a release that had the ingress chain on the forward
	// hook: a restart puts it on postrouting, where it judges the host's
	// own packets too.
	chain := testbed.Run(t, "ip", "netns", "exec", s.ns, "nft", "list", "chain", "inet", hostnet.PolicyTable, policyIngress)
	old := strings.Replace(chain, "hook postrouting priority srcnat + 10", "hook forward priority filter + 20", 1)
	testbed.Run(t, "ip", "netns", "exec", s.ns, "nft", fmt.Sprintf("flush chain inet %[1]s %[2]s; delete chain inet %[1]s %[2]s; %[3]s",
		hostnet.PolicyTable, policyIngress, old))
	s.do("upgrade", func() (err error) {
		if s.b, err = New(s.ctx, "vnsg", nil); err != nil {
			return err
		}
		return s.bringUp(pol)
	})
	if chain := testbed.Run(t, "ip", "netns", "exec", s.ns, "nft", "list", "chain", "inet", hostnet.PolicyTable, policyIngress); !strings.Contains(chain, "hook postrouting") {
		t.Errorf("the ingress chain after an upgrade:\n%s", chain)
	}

	q := sgPolicy(t, s.ports)
	delete(q.Groups, "icmp-admin")
	q.Ports["web"], q.Ports["db"] = groupList(t, "web"), groupList(t, "db")
	setMembers(&q, s.ports)
	s.do("prune a group", func() error { return s.b.Prune(s.ctx, s.state(q)) })
	out := testbed.Run(t, "ip", "netns", "exec", s.ns, "nft", "list", "table", "inet", hostnet.PolicyTable)
	if strings.Contains(out, "icmp-admin") || !strings.Contains(out, "ig_web") {
		t.Errorf("after a Prune without icmp-admin:\n%s", out)
	}
	s.checkMatrix(q, "icmp-admin pruned")
	s.do("prune all groups", func() error { return s.b.Prune(s.ctx, s.state(model.Policy{})) })
	if out := testbed.Run(t, "ip", "netns", "exec", s.ns, "nft", "list", "tables"); strings.Contains(out, hostnet.PolicyTable) {
		t.Errorf("the table outlived the last group:\n%s", out)
	}
	var stats datapath.PolicyStats
	s.do("policy stats without a table", func() (err error) { stats, err = s.b.PolicyStats(s.ctx); return err })
	if len(stats.Rules) != 0 || slices.ContainsFunc(stats.Drops, func(d datapath.DropStats) bool { return d.Reason == v1.DropPolicy }) {
		t.Errorf("policy stats without a table: %+v", stats)
	}

	// As after a reboot: no table, the policy recorded, ports attached one
	// by one before the first Prune. Each is filtered from its attach on.
	s.do("start on a bare host", func() (err error) {
		if s.b, err = New(s.ctx, "vnsg", nil); err != nil {
			return err
		}
		if err := s.b.SetPolicy(s.ctx, pol); err != nil {
			return err
		}
		for _, name := range []string{"db", "other"} {
			p := s.ports[name]
			if _, err := s.b.AttachPort(s.ctx, s.nets[p.Network], p); err != nil {
				return err
			}
		}
		return nil
	})
	if s.run(probe{"other", "db", model.ProtoTCP, sgPG}) || !s.run(probe{"other", "web", model.ProtoTCP, sgHTTP}) {
		t.Error("before the first Prune, db is not guarded by its groups yet")
	}
	s.do("reconcile", func() error { return s.bringUp(pol) })
	s.checkMatrix(pol, "after a start on a bare host")
}

// startStream writes to web's TCP echo on sgHTTP from netns, 1 KiB a
// millisecond, and counts what comes back.
func startStream(t *testing.T, netns string, web netip.Addr) *testbed.Stream {
	t.Helper()
	return testbed.StartEchoStream(t, netns, netip.AddrPortFrom(web, sgHTTP), testbed.Pace{Chunk: 1024, Pause: time.Millisecond}, probeWait)
}

func ruleHits(s *sgBed, group string, index int) uint64 {
	s.t.Helper()
	var stats datapath.PolicyStats
	s.do("policy stats", func() (err error) { stats, err = s.b.PolicyStats(s.ctx); return err })
	for _, r := range stats.Rules {
		if r.Group == group && r.Index == index {
			return r.Packets
		}
	}
	s.t.Fatalf("no counter of rule %d of %s in %+v", index, group, stats.Rules)
	return 0
}
