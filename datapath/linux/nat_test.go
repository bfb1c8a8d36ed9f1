package linux

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// serveWho answers every TCP connection to at, in namespace ns, with the
// address it came from, as the server saw it.
func serveWho(t *testing.T, ns string, at netip.AddrPort) {
	t.Helper()
	ln := testbed.Listen(t, ns, at)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			_, _ = io.WriteString(c, from.String())
			c.Close()
		}
	}()
}

// who connects from ns to a serveWho at to and returns the source the
// server saw, or "" when it could not connect.
func who(ns string, to netip.AddrPort) string {
	c, err := testbed.Connect(ns, to, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestLinuxNAT sends real packets through a floating IP and port forwards
// of the Linux backend, in a namespace that plays the host, with an
// "outside" namespace on its uplink: from outside, from the host, from
// the port itself (hairpin) and from a port of another network; the
// floating port's own connections out; security groups judging what the
// port receives; and, the rules removed, nothing left of them.
func TestLinuxNAT(t *testing.T) {
	h := newHostBed(t, "vnt-nh-", 3*time.Minute)
	ctx := h.ctx
	var (
		hostAddr = netip.MustParseAddr("198.51.100.1")
		outAddr  = netip.MustParseAddr("198.51.100.2")
		pubAddr  = netip.MustParseAddr("203.0.113.50")
	)
	outside := h.outside(hostAddr, outAddr)
	// The outside routes the floating addresses to the host, and is the
	// host's default route (the host reaches a floating address only
	// with a route to it); it has none to the networks.
	testbed.Run(t, "ip", "-n", outside, "route", "add", "203.0.113.0/24", "via", "198.51.100.1")
	testbed.Run(t, "ip", "-n", h.ns, "route", "add", "default", "via", "198.51.100.2")

	blue := model.Network{Name: "blue", Subnet: netip.MustParsePrefix("10.74.0.0/24"), Gateway: netip.MustParseAddr("10.74.0.1"), MTU: 1500}
	green := model.Network{Name: "green", Subnet: netip.MustParsePrefix("10.75.0.0/24"), Gateway: netip.MustParseAddr("10.75.0.1"), MTU: 1500, Masquerade: true}
	w1, g1 := h.port("w1", "blue", "10.74.0.5"), h.port("g1", "green", "10.75.0.5")
	nets := map[string]model.Network{"blue": blue, "green": green}
	for _, p := range []model.Port{w1, g1} {
		testbed.Run(t, "ip", "-n", p.Netns, "link", "set", "lo", "up")
	}
	var (
		target = model.Target{Port: w1.Name, Network: w1.Network, IP: w1.IP}
		nat    = model.NAT{
			Floating: []model.FloatingRule{{Name: "pub", Address: pubAddr, Target: target}},
			Forwards: []model.ForwardRule{
				{Name: "dns", Proto: model.ProtoUDP, HostPort: 5353, TargetPort: 53, Target: target},
				{Name: "echo", Proto: model.ProtoTCP, HostPort: 8007, TargetPort: 7, Target: target},
				{Name: "web", Proto: model.ProtoTCP, HostPort: 8080, TargetPort: 80, Target: target},
			},
		}
		state = datapath.State{Networks: []model.Network{blue, green}, Ports: []model.Port{w1, g1}, NAT: nat}
	)
	// start is a daemon's start: a new backend, the networks ensured,
	// and (on a fresh host) the ports attached, the NAT recorded — before
	// the first Prune it is only recorded — then Prune.
	var b *Backend
	start := func(fresh bool) error {
		var err error
		if b, err = New(ctx, "vnnat", nil); err != nil {
			return err
		}
		for _, n := range state.Networks {
			if err := b.EnsureNetwork(ctx, n); err != nil {
				return err
			}
		}
		if fresh {
			for _, p := range state.Ports {
				if _, err := b.AttachPort(ctx, nets[p.Network], p); err != nil {
					return err
				}
			}
			if err := b.SetNAT(ctx, nat); err != nil {
				return err
			}
		}
		return b.Prune(ctx, state)
	}
	h.do("set up", func() error { return start(true) })
	serveWho(t, w1.Netns, netip.MustParseAddrPort("0.0.0.0:80"))
	testbed.ServeEcho(t, w1.Netns, netip.IPv4Unspecified(), []uint16{7}, []uint16{53})
	serveWho(t, outside, netip.MustParseAddrPort("198.51.100.2:9000"))

	fwd := netip.AddrPortFrom(hostAddr, 8080)
	pub := netip.AddrPortFrom(pubAddr, 80)
	for _, c := range []struct {
		what, from string
		to         netip.AddrPort
		want       string // the source the server sees; "" none
	}{
		{"outside through the floating IP", outside, pub, outAddr.String()},
		{"outside through the forward", outside, fwd, outAddr.String()},
		{"the floating port's own connection out", w1.Netns, netip.AddrPortFrom(outAddr, 9000), pubAddr.String()},
		{"hairpin through the host's address", w1.Netns, fwd, hostAddr.String()},
		{"hairpin through the floating IP", w1.Netns, pub, pubAddr.String()},
		{"another network's port through the host's address", g1.Netns, fwd, hostAddr.String()},
		{"another network's port through the floating IP", g1.Netns, pub, pubAddr.String()},
		{"the host through its address", h.ns, fwd, hostAddr.String()},
		{"the host through the floating IP", h.ns, pub, hostAddr.String()},
		{"the host to the port directly", h.ns, netip.AddrPortFrom(w1.IP, 80), ""},
		{"the host on loopback", h.ns, netip.MustParseAddrPort("127.0.0.1:8080"), ""},
		{"the port's gateway on the forwarded port", w1.Netns, netip.AddrPortFrom(blue.Gateway, 8080), ""},
	} {
		if got := who(c.from, c.to); got != c.want {
			t.Errorf("%s: %s seen from %q, want %q", c.what, c.to, got, c.want)
		}
	}
	for _, from := range []string{outside, w1.Netns, g1.Netns, h.ns} {
		if err := testbed.UDPEcho(from, netip.AddrPortFrom(hostAddr, 5353), 2*time.Second); err != nil {
			t.Errorf("udp forward from %s: %v", from, err)
		}
	}
	var stats datapath.NATStats
	h.do("stats", func() (err error) { stats, err = b.NATStats(ctx); return err })
	// web: outside, hairpin, another network, the host; not loopback,
	// nor the gateway.
	if len(stats.Forwards) != 3 || stats.Forwards[2].Name != "web" || stats.Forwards[2].Connections != 4 || stats.Forwards[2].Packets == 0 ||
		len(stats.Floating) != 1 || stats.Floating[0].ConnectionsIn < 4 || stats.Floating[0].ConnectionsOut != 1 {
		t.Errorf("stats %+v", stats)
	}

	// Security groups judge what the port receives, whoever sent it: the
	// outside is let in, the host (through the forward) is not. And what
	// a port sends as it sent it: the client's egress rule names the
	// address and port it dialled, not the port they are translated to.
	webFrom := func(remote string) model.SecurityGroup {
		return model.SecurityGroup{Name: "web", ID: 1, Rules: []model.Rule{
			{Direction: model.Ingress, Proto: model.ProtoTCP, PortMin: 80, PortMax: 80, Remote: netip.MustParsePrefix(remote)}}}
	}
	client := model.SecurityGroup{Name: "client", ID: 2, Rules: []model.Rule{
		{Direction: model.Egress, Proto: model.ProtoTCP, PortMin: 8080, PortMax: 8080, Remote: netip.MustParsePrefix("198.51.100.1/32")}}}
	for _, c := range []struct {
		what   string
		groups []model.SecurityGroup
		from   string
		to     netip.AddrPort
		want   string
	}{
		{"outside through the forward, allowed", []model.SecurityGroup{webFrom("198.51.100.2/32")}, outside, fwd, outAddr.String()},
		{"the host through the forward, not allowed", []model.SecurityGroup{webFrom("198.51.100.2/32")}, h.ns, fwd, ""},
		{"the client to what it may dial", []model.SecurityGroup{webFrom("198.51.100.0/24"), client}, g1.Netns, fwd, hostAddr.String()},
		{"the client to what it may not dial", []model.SecurityGroup{webFrom("198.51.100.0/24"), client}, g1.Netns, pub, ""},
	} {
		policy := model.Policy{Groups: map[string]model.SecurityGroup{}, Ports: map[string]model.GroupList{w1.Name: "web", g1.Name: "client"}}
		for _, g := range c.groups {
			policy.Groups[g.Name] = g
		}
		h.do("security groups", func() error { return b.SetPolicy(ctx, policy) })
		if got := who(c.from, c.to); got != c.want {
			t.Errorf("guarded: %s: %s seen from %q, want %q", c.what, c.to, got, c.want)
		}
	}
	h.do("no security groups", func() error { return b.SetPolicy(ctx, model.Policy{}) })

	// A restart with the same NAT leaves the table alone, and connections
	// through it (which the removal below must end).
	var conns []net.Conn
	for _, to := range []netip.AddrPort{netip.AddrPortFrom(hostAddr, 8007), netip.AddrPortFrom(pubAddr, 7)} {
		c, err := testbed.Connect(outside, to, 2*time.Second)
		if err != nil {
			t.Fatalf("connection to %s: %v", to, err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	monitor := testbed.NftMonitor(t, h.ns)
	h.do("restart", func() error { return start(false) })
	if out := monitor(); strings.Contains(out, "ovs_vnet_nat") {
		t.Errorf("a restart with the same NAT changed its table:\n%s", out)
	}
	for _, c := range conns {
		if err := testbed.Echo(c, 2*time.Second); err != nil {
			t.Errorf("a connection to %s across the restart: %v", c.RemoteAddr(), err)
		}
	}

	// Removed: the rules, their connections and every trace of them go.
	h.do("remove", func() error { return b.SetNAT(ctx, model.NAT{}) })
	if got := who(outside, fwd); got != "" {
		t.Errorf("the forward removed, outside still got through, seen from %q", got)
	}
	if got := who(outside, pub); got != "" {
		t.Errorf("the floating IP removed, outside still got through, seen from %q", got)
	}
	for _, c := range conns {
		if err := testbed.Echo(c, time.Second); err == nil {
			t.Errorf("a connection to %s through a removed rule still got an answer", c.RemoteAddr())
		}
	}
	out := testbed.Run(t, "ip", "netns", "exec", h.ns, "nft", "list", "ruleset")
	for _, s := range []string{"ovs_vnet_nat", pubAddr.String(), "8080", "web"} {
		if strings.Contains(out, s) {
			t.Errorf("the ruleset still holds %q:\n%s", s, out)
		}
	}

	// A UDP client that sent before its forward existed is forwarded as
	// soon as the forward is: the untranslated entry of its earlier
	// datagrams goes (with it, conntrack would keep the flow off the
	// rule for as long as the client keeps sending).
	var early net.PacketConn
	if err := testbed.InNetns(outside, func() (err error) {
		early, err = net.ListenPacket("udp4", "198.51.100.2:40053")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	dns := net.UDPAddrFromAddrPort(netip.AddrPortFrom(hostAddr, 5353))
	if _, err := early.WriteTo([]byte("early"), dns); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the host's port unreachable, and its entry
	h.do("a UDP forward", func() error { return b.SetNAT(ctx, model.NAT{Forwards: nat.Forwards[:1]}) })
	_ = early.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	if _, err := early.WriteTo([]byte("late"), dns); err != nil {
		t.Fatal(err)
	}
	if n, _, err := early.ReadFrom(buf); err != nil || string(buf[:n]) != "late" {
		t.Errorf("a UDP client that sent before the forward: %q, %v", buf[:n], err)
	}
	h.do("no forward", func() error { return b.SetNAT(ctx, model.NAT{}) })

	// The standard portmap plugin chained after ours: its DNAT (iptables,
	// in its own chains) reaches the port from outside, from another
	// network and from the host, through the admission that serves ours.
	t.Run("chained portmap", func(t *testing.T) {
		_, err := os.Stat(portmapPlugin)
		testbed.Need(t, err == nil, "the portmap CNI plugin (Debian: containernetworking-plugins)")
		portmap(t, h.ns, "ADD", w1, 18080, 80)
		defer portmap(t, h.ns, "DEL", w1, 18080, 80)
		pm := netip.AddrPortFrom(hostAddr, 18080)
		for _, c := range []struct{ what, from, want string }{
			{"outside", outside, outAddr.String()},
			{"another network's port", g1.Netns, hostAddr.String()}, // our hairpin SNAT serves portmap's DNAT too
			{"the host", h.ns, hostAddr.String()},
		} {
			if got := who(c.from, pm); got != c.want {
				t.Errorf("portmap from %s: %s seen from %q, want %q", c.what, pm, got, c.want)
			}
		}
	})
}

const portmapPlugin = "/usr/lib/cni/portmap"

// portmap runs the portmap plugin in the host namespace as a runtime
// chaining it after ovs-vnet-cni would, mapping hostPort to p's port.
func portmap(t *testing.T, hostNS, command string, p model.Port, hostPort, port int) {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"0.4.0","name":"vnet","type":"portmap","capabilities":{"portMappings":true},
		"runtimeConfig":{"portMappings":[{"hostPort":%d,"containerPort":%d,"protocol":"tcp"}]},
		"prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/%s"}],
		"ips":[{"version":"4","address":"%s/24","interface":0}]}}`, hostPort, port, p.Netns, p.IP)
	cmd := exec.Command("ip", "netns", "exec", hostNS, portmapPlugin)
	cmd.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID=vnt-"+p.Name, "CNI_NETNS=/var/run/netns/"+p.Netns,
		"CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni")
	cmd.Stdin = strings.NewReader(conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("portmap %s: %v: %s", command, err, out)
	}
}
