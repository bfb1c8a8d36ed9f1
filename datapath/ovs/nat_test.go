package ovs

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/natnft"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// testNATHost is what the daemon passes (datapath/backend): the agent runs
// in the host's namespace, so the real reader and conntrack clean-up act
// on the table and connections TestNAT makes.
func testNATHost() *NATHost {
	return &NATHost{Installed: natnft.Installed, Stats: natnft.ReadStats, Forget: natnft.Forget}
}

// Addresses of TestNAT: the host's on the outside link, the outside's,
// and the floating address the outside routes to the host.
var (
	natHostAddr  = netip.MustParseAddr("198.51.100.1")
	natOutside   = netip.MustParseAddr("198.51.100.2")
	natFloating  = netip.MustParseAddr("203.0.113.50")
	natFloating2 = netip.MustParseAddr("203.0.113.51")
	natNowhere   = netip.MustParseAddr("203.0.113.52")
)

// Services of TestNAT's ports: TCP and UDP echo, and "who", which writes
// the address a connection came from.
const (
	natEcho    = 80
	natWho     = 81
	natUDPEcho = 5353
)

// TestNAT proves floating IPs and port forwards on the real thing: a
// sandbox's ovs-vswitchd, ports in two networks (one masquerades, one
// does not), an outside namespace routed to the host, real packets: from
// outside through a forward and a floating address (the server sees the
// outside's address), the floating ports' own connections out (the
// outside sees the floating address, ahead of masquerade too), hairpin,
// another network through
// the host's address, the host itself, TCP and UDP; the host reaches no
// port but through them; the target's security groups judge the source it
// sees; a restart sends no NAT script; the NAT removed, nothing of it is
// left.
func TestNAT(t *testing.T) {
	box, cfg := startHostBox(t)
	nw := func(name, subnet string, id int, masq bool) model.Network {
		p := netip.MustParsePrefix(subnet)
		return model.Network{Name: name, Subnet: p, Gateway: p.Addr().Next(), MTU: 1500, ID: id, Masquerade: masq}
	}
	blue, red := nw("blue", "10.97.11.0/24", 1, true), nw("red", "10.97.12.0/24", 2, false)
	port := func(name string, n model.Network, host byte) model.Port {
		ip := n.Subnet.Addr().As4()
		ip[3] = host
		return model.Port{Name: name, Network: n.Name, Type: v1.PortVeth, Netns: testbed.Netns(t, "vnt-nat-"), Ifname: "eth0",
			IP: netip.AddrFrom4(ip), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name)}
	}
	web, bclient, db, rclient := port("web", blue, 10), port("bclient", blue, 11), port("db", red, 10), port("rclient", red, 11)
	target := func(p model.Port) model.Target { return model.Target{Port: p.Name, Network: p.Network, IP: p.IP} }
	nat := model.NAT{
		Floating: []model.FloatingRule{
			{Name: "pub", Address: natFloating, Target: target(db)},
			{Name: "pub2", Address: natFloating2, Target: target(bclient)},
		},
		Forwards: []model.ForwardRule{
			{Name: "dns", Proto: model.ProtoUDP, HostPort: natUDPEcho, TargetPort: natUDPEcho, Target: target(db)},
			{Name: "web", Proto: model.ProtoTCP, HostPort: 8080, TargetPort: natEcho, Target: target(web)},
			{Name: "whoweb", Proto: model.ProtoTCP, HostIP: natHostAddr, HostPort: 8081, TargetPort: natWho, Target: target(web)},
		},
	}

	// The outside: a namespace behind the host's uplink, which routes the
	// floating addresses (and, to try, the networks) to the host; the host
	// routes everything else to it.
	out := testbed.Netns(t, "vnt-out-")
	veth := testbed.UniqueName("vo")
	testbed.Run(t, "ip", "link", "add", veth+"a", "netns", box.Netns, "type", "veth", "peer", "name", veth+"b", "netns", out)
	testbed.Run(t, "ip", "-n", box.Netns, "addr", "add", natHostAddr.String()+"/24", "dev", veth+"a")
	testbed.Run(t, "ip", "-n", box.Netns, "link", "set", veth+"a", "up")
	testbed.Run(t, "ip", "-n", box.Netns, "route", "add", "default", "via", natOutside.String())
	testbed.Run(t, "ip", "-n", out, "addr", "add", natOutside.String()+"/24", "dev", veth+"b")
	testbed.Run(t, "ip", "-n", out, "link", "set", veth+"b", "up")
	testbed.Run(t, "ip", "-n", out, "route", "add", "203.0.113.0/24", "via", natHostAddr.String())
	testbed.Run(t, "ip", "-n", out, "route", "add", "10.97.0.0/16", "via", natHostAddr.String())

	var ports []model.Port
	state := func(n model.NAT) datapath.State {
		return datapath.State{Networks: []model.Network{blue, red}, Ports: ports, NAT: n}
	}
	top := t
	// start runs the backend as the daemon's reconcile does, the whole
	// test long: the NAT recorded first, then the attaches, then Prune.
	start := func(t *testing.T, n model.NAT) *agent {
		h := startAgent(t, top, "host", box.Netns)
		h.do(t, agentCmd{Op: "new", Config: cfg})
		h.do(t, agentCmd{Op: "network", Network: blue})
		h.do(t, agentCmd{Op: "network", Network: red})
		h.do(t, agentCmd{Op: "nat", NAT: n})
		ports = ports[:0]
		for _, p := range []model.Port{web, bclient, db, rclient} {
			nw := blue
			if p.Network == red.Name {
				nw = red
			}
			ports = append(ports, h.do(t, agentCmd{Op: "attach", Network: nw, Port: p}).Port)
		}
		h.do(t, agentCmd{Op: "prune", State: state(n)})
		return h
	}
	h := start(t, model.NAT{})
	for _, p := range []model.Port{web, db} {
		testbed.ServeEcho(t, p.Netns, p.IP, []uint16{natEcho}, []uint16{natUDPEcho})
		serveWho(t, p.Netns, netip.AddrPortFrom(p.IP, natWho))
	}
	serveWho(t, out, netip.AddrPortFrom(natOutside, natWho))
	h.do(t, agentCmd{Op: "nat", NAT: nat})

	tcp := func(from string, to netip.Addr, port uint16) error {
		return testbed.TCPEcho(from, netip.AddrPortFrom(to, port), probeTimeout, probeTimeout)
	}
	t.Run("from outside", func(t *testing.T) {
		if err := tcp(out, natHostAddr, 8080); err != nil {
			t.Errorf("outside → forward web: %v", err)
		}
		if err := testbed.UDPEcho(out, netip.AddrPortFrom(natHostAddr, natUDPEcho), probeTimeout); err != nil {
			t.Errorf("outside → forward dns (udp): %v", err)
		}
		if got := who(t, out, netip.AddrPortFrom(natHostAddr, 8081)); got != natOutside {
			t.Errorf("web saw the outside's connection through a forward from %s, want %s", got, natOutside)
		}
		if got := who(t, out, netip.AddrPortFrom(natFloating, natWho)); got != natOutside {
			t.Errorf("db saw the outside's connection through its floating IP from %s, want %s", got, natOutside)
		}
		if err := testbed.Ping(out, natFloating, probeTimeout); err != nil {
			t.Errorf("outside pings the floating address: %v", err)
		}
	})
	t.Run("floating port's own connection out", func(t *testing.T) {
		if got := who(t, db.Netns, netip.AddrPortFrom(natOutside, natWho)); got != natFloating {
			t.Errorf("the outside saw db's connection from %s, want its floating address %s", got, natFloating)
		}
		// In a masquerading network the floating address comes first.
		if got := who(t, bclient.Netns, netip.AddrPortFrom(natOutside, natWho)); got != natFloating2 {
			t.Errorf("the outside saw bclient's connection from %s, want its floating address %s", got, natFloating2)
		}
		if got := who(t, web.Netns, netip.AddrPortFrom(natOutside, natWho)); got != natHostAddr {
			t.Errorf("the outside saw web's (masquerade) from %s, want %s", got, natHostAddr)
		}
	})
	t.Run("hairpin, other networks, the host", func(t *testing.T) {
		for _, c := range []natProbe{
			{"web → its own forward", web.Netns, natHostAddr, 8080},
			{"bclient (same network) → forward", bclient.Netns, natHostAddr, 8080},
			{"rclient (red, no masquerade) → forward", rclient.Netns, natHostAddr, 8080},
			{"db → its own floating address", db.Netns, natFloating, natEcho},
			{"web → db's floating address", web.Netns, natFloating, natEcho},
			{"rclient → db's floating address", rclient.Netns, natFloating, natEcho},
			{"the host → forward", box.Netns, natHostAddr, 8080},
			{"the host → floating address", box.Netns, natFloating, natEcho},
		} {
			if err := tcp(c.from, c.to, c.port); err != nil {
				t.Errorf("%s (%s:%d): %v", c.what, c.to, c.port, err)
			}
		}
		if err := testbed.UDPEcho(rclient.Netns, netip.AddrPortFrom(natHostAddr, natUDPEcho), probeTimeout); err != nil {
			t.Errorf("rclient → forward dns (udp): %v", err)
		}
		if err := testbed.UDPEcho(db.Netns, netip.AddrPortFrom(natHostAddr, natUDPEcho), probeTimeout); err != nil {
			t.Errorf("db → its own forward dns (udp): %v", err)
		}
		if got := who(t, rclient.Netns, netip.AddrPortFrom(natHostAddr, 8081)); got != natHostAddr {
			t.Errorf("web saw rclient's connection through the forward from %s, want the address dialled %s", got, natHostAddr)
		}
		if got := who(t, box.Netns, netip.AddrPortFrom(natHostAddr, 8081)); got != natHostAddr {
			t.Errorf("web saw the host's connection from %s, want the host's %s", got, natHostAddr)
		}
	})
	t.Run("nothing else gets in", func(t *testing.T) {
		for _, c := range []natProbe{
			{"the host → web directly", box.Netns, web.IP, natEcho},
			{"the host → db directly", box.Netns, db.IP, natEcho},
			{"outside → db directly", out, db.IP, natEcho},
			{"outside → web directly", out, web.IP, natEcho},
			{"outside → a port not forwarded", out, natHostAddr, 8082},
			{"the floating address on loopback's forward port", box.Netns, netip.MustParseAddr("127.0.0.1"), 8080},
			{"an address no floating IP has", out, natNowhere, natEcho},
		} {
			if err := tcp(c.from, c.to, c.port); err == nil {
				t.Errorf("%s (%s:%d) passed", c.what, c.to, c.port)
			}
		}
	})
	t.Run("security groups judge what the port receives", func(t *testing.T) {
		// web's group lets in HTTP from the outside's address alone: a
		// port or the host reaching the forward comes from the host's
		// address (the hairpin SNAT; the host's own), and is refused.
		g, err := model.NewSecurityGroup("webin", v1.SecurityGroupSpec{Rules: []v1.Rule{
			{Direction: v1.DirIngress, Protocol: v1.ProtoTCP, Ports: fmt.Sprint(natEcho), Remote: natOutside.String() + "/32"}}})
		if err != nil {
			t.Fatal(err)
		}
		g.ID = 1
		groups, err := model.NewGroupList([]string{"webin"})
		if err != nil {
			t.Fatal(err)
		}
		h.do(t, agentCmd{Op: "policy", Policy: model.Policy{Groups: map[string]model.SecurityGroup{"webin": g},
			Ports: map[string]model.GroupList{"web": groups}, Members: map[string][]netip.Addr{"webin": {web.IP}}}})
		if err := tcp(out, natHostAddr, 8080); err != nil {
			t.Errorf("outside → forward web, allowed by web's group: %v", err)
		}
		for _, from := range []string{box.Netns, rclient.Netns, bclient.Netns} {
			if err := tcp(from, natHostAddr, 8080); err == nil {
				t.Errorf("%s → forward web passed: web's group allows only the outside", from)
			}
		}
		h.do(t, agentCmd{Op: "policy", Policy: model.Policy{}})
		if err := tcp(box.Netns, natHostAddr, 8080); err != nil {
			t.Errorf("the host → forward web, the group gone: %v", err)
		}
	})
	t.Run("trace from the host", func(t *testing.T) {
		// The outside's connection to db's floating address as the host
		// sends it on, translated.
		q := v1.Query{FromAddress: natOutside, To: db.IP, Proto: v1.ProtoTCP, DPort: natWho}
		r := h.do(t, agentCmd{Op: "trace", State: state(nat), Query: q}).Trace
		if r.Verdict != v1.Delivered || !slices.Equal(r.Ports, []string{"db"}) || r.Steps[0].Stage != "classify" || r.Steps[1].Stage != "from_host" {
			t.Errorf("trace %s: %s %v: %s\n%s", r.Packet, r.Verdict, r.Ports, r.Summary, r.Raw)
		}
		q.To = netip.MustParseAddr("10.97.12.77")
		r = h.do(t, agentCmd{Op: "trace", State: state(nat), Query: q}).Trace
		if r.Verdict != v1.Dropped || r.Reason != v1.DropHost {
			t.Errorf("trace %s: %s (%s): %s\n%s", r.Packet, r.Verdict, r.Reason, r.Summary, r.Raw)
		}
	})
	t.Run("counters", func(t *testing.T) {
		st := h.do(t, agentCmd{Op: "nat-stats"}).NATStats
		i := slices.IndexFunc(st.Forwards, func(f datapath.ForwardStats) bool { return f.Name == "web" })
		if i < 0 || st.Forwards[i].Connections == 0 || st.Forwards[i].Packets == 0 {
			t.Errorf("forward web counted nothing: %+v", st)
		}
	})
	t.Run("a forward's change sends only its flows", func(t *testing.T) {
		more := nat
		more.Forwards = append(slices.Clone(nat.Forwards), model.ForwardRule{Name: "extra", Proto: model.ProtoTCP, HostPort: 9090,
			TargetPort: natEcho, Target: target(rclient)})
		for _, n := range []model.NAT{more, nat} {
			before := boxFlows(t, box)
			h.do(t, agentCmd{Op: "nat", NAT: n})
			changed := changedFlows(before, boxFlows(t, box))
			if len(changed) != 2 || !strings.Contains(changed[0], "nw_src="+rclient.IP.String()) || !strings.Contains(changed[1], "tp_dst=9090") {
				t.Errorf("the forward's change changed %d flows, want its 2:\n%s", len(changed), strings.Join(changed, "\n"))
			}
		}
	})
	t.Run("a refused host change goes in whole, and is retried", func(t *testing.T) {
		h.do(t, agentCmd{Op: "nat", NAT: model.NAT{}})
		release := holdNftTable(t, box.Netns, "ip "+hostnet.NATTable)
		if _, err := h.call(agentCmd{Op: "nat", NAT: nat}); err == nil {
			t.Fatal("SetNAT passed while another process owned the NAT table's name")
		}
		// One transaction: the floating ports are not let out without the
		// SNAT that gives them their floating address.
		inet := testbed.Run(t, "ip", "netns", "exec", box.Netns, "nft", "list", "table", "inet", hostnet.Table)
		for _, p := range []model.Port{db, bclient} {
			if strings.Contains(inet, p.IP.String()) {
				t.Errorf("the host lets floating port %s out while its NAT was refused:\n%s", p.Name, inet)
			}
		}
		release()
		// The flows took nat already: the same NAT again must still
		// bring the host's rules.
		h.do(t, agentCmd{Op: "nat", NAT: nat})
		if err := tcp(out, natHostAddr, 8080); err != nil {
			t.Errorf("outside → forward web after the retry: %v", err)
		}
		if got := who(t, db.Netns, netip.AddrPortFrom(natOutside, natWho)); got != natFloating {
			t.Errorf("after the retry the outside saw db's connection from %s, want %s", got, natFloating)
		}
	})
	t.Run("restart sends no NAT script nor flow", func(t *testing.T) {
		before := boxFlows(t, box)
		stop := testbed.NftMonitor(t, box.Netns)
		h.stop()
		h = start(t, nat)
		if events := stop(); strings.Contains(events, hostnet.NATTable) {
			t.Errorf("the restart changed the NAT table:\n%s", events)
		}
		if changed := changedFlows(before, boxFlows(t, box)); len(changed) != 0 {
			t.Errorf("the restart changed %d flows:\n%s", len(changed), strings.Join(changed, "\n"))
		}
		if err := tcp(out, natHostAddr, 8080); err != nil {
			t.Errorf("outside → forward web after the restart: %v", err)
		}
	})
	t.Run("removed, nothing is left", func(t *testing.T) {
		h.do(t, agentCmd{Op: "nat", NAT: model.NAT{}})
		if err := tcp(out, natHostAddr, 8080); err == nil {
			t.Error("outside → forward web passed after the forward went")
		}
		if err := tcp(out, natFloating, natEcho); err == nil {
			t.Error("outside → floating address passed after it went")
		}
		ruleset := testbed.Run(t, "ip", "netns", "exec", box.Netns, "nft", "list", "ruleset")
		for _, s := range []string{hostnet.NATTable, natFloating.String(), natFloating2.String(), db.IP.String(), web.IP.String(), bclient.IP.String()} {
			if strings.Contains(ruleset, s) {
				t.Errorf("nft list ruleset still holds %s:\n%s", s, ruleset)
			}
		}
		flows := box.Ofctl(t, "dump-flows", "br-vnet")
		for _, s := range []string{"tp_dst=8080", natFloating.String()} {
			if strings.Contains(flows, s) {
				t.Errorf("the bridge still holds %s:\n%s", s, flows)
			}
		}
	})
}

// holdNftTable makes table (family and name) in netns ns owned by an `nft
// -i` of the test's (NFT_TABLE_F_OWNER): every other process's change of
// it is refused, a real nft failure. The returned func releases it — the
// kernel removes an owned table with its owner's socket — and waits,
// bounded, until it is gone.
func holdNftTable(t *testing.T, ns, table string) (release func()) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-i")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, err := fmt.Fprintf(in, "add table %s { flags owner; }\n", table); err != nil {
		t.Fatal(err)
	}
	wait := func(present bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			held := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", strings.Fields(table)[0], strings.Fields(table)[1]).Run() == nil
			if held == present {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("table %s in %s: present=%v never came", table, ns, present)
			}
		}
	}
	wait(true)
	return func() {
		t.Helper()
		in.Close()
		_ = cmd.Wait()
		wait(false)
	}
}

// natProbe is a TCP connection TestNAT tries.
type natProbe struct {
	what string
	from string // namespace
	to   netip.Addr
	port uint16
}

// serveWho runs a TCP service at in namespace ns that writes each
// connection's source address and closes it, until the test ends.
func serveWho(t *testing.T, ns string, at netip.AddrPort) {
	t.Helper()
	ln := testbed.Listen(t, ns, at)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = fmt.Fprint(c, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
			c.Close()
		}
	}()
}

// who connects from ns to a serveWho service and returns the source it
// saw; the zero address when it could not.
func who(t *testing.T, ns string, to netip.AddrPort) netip.Addr {
	t.Helper()
	c, err := testbed.Connect(ns, to, probeTimeout)
	if err != nil {
		t.Errorf("connect from %s to %s: %v", ns, to, err)
		return netip.Addr{}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Errorf("read from %s: %v", to, err)
	}
	a, _ := netip.ParseAddr(string(b))
	return a
}
