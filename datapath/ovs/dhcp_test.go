package ovs

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// busybox is Debian's busybox-static, whose udhcpc is the client here.
const busybox = "/bin/busybox"

// udhcpcScript records each event udhcpc reports with what it was given,
// and applies a lease as a client's own script would: address, MTU, default
// route.
const udhcpcScript = `#!/bin/sh
echo "$1 ip=$ip subnet=$subnet router=$router dns=$dns domain=$domain mtu=$mtu lease=$lease serverid=$serverid" >> "$EVENTS"
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/$subnet" dev "$interface"
	[ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
	ip route replace default via "$router" dev "$interface"
	;;
esac
exit 0
`

// TestDHCPAnswers runs busybox udhcpc in a port's namespace against the
// real backend on a sandboxed bridge — the e2e path without the daemon:
// the lease carries the port's address and the network's options, the
// client pings the gateway and another port with it, renews by unicast,
// gets nothing with its network's DHCP off or with a MAC not its port's,
// is answered within a second while another port floods DISCOVERs, and
// renews again after the backend restarted (the flows and meters stayed
// on the bridge), after ovs-save's restore (ovs-ctl restart) and after
// ovs-vswitchd restarted (they came back); its counters are still read
// with the switch down; a failed attach leaves no meter behind.
func TestDHCPAnswers(t *testing.T) {
	_, err := os.Stat(busybox)
	testbed.Need(t, err == nil, busybox+": apt-get install busybox-static (hack/install-deps.sh)")
	box, cfg := startHostBox(t)
	cfg.PickupWindow = 0 // the daemon's default
	prefix := netip.MustParsePrefix("10.98.0.0/24")
	dns, err := model.NewAddrList([]string{"10.98.0.53", "9.9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	n := model.Network{Name: "dh", Subnet: prefix, Gateway: prefix.Addr().Next(), MTU: 1400, ID: 1, DHCP: true, DNS: dns, Domain: "lab.example"}
	port := func(name, ip string) model.Port {
		return model.Port{Name: name, Network: n.Name, Type: v1.PortVeth, Netns: testbed.Netns(t, "vnt-dh-"), Ifname: "eth0",
			IP: netip.MustParseAddr(ip), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name)}
	}
	want := []model.Port{port("dha", "10.98.0.10"), port("dhb", "10.98.0.11"), port("dhf", "10.98.0.12")}
	var ports []model.Port
	start := func() *agent {
		h := startAgent(t, t, "host", box.Netns)
		h.do(t, agentCmd{Op: "new", Config: cfg})
		h.do(t, agentCmd{Op: "network", Network: n})
		ports = ports[:0]
		for _, p := range want {
			ports = append(ports, h.do(t, agentCmd{Op: "attach", Network: n, Port: p}).Port)
		}
		h.do(t, agentCmd{Op: "prune", State: datapath.State{Networks: []model.Network{n}, Ports: ports}})
		return h
	}
	h := start()
	a, b, f := ports[0], ports[1], ports[2]
	// The port as configure:false leaves it (datapath/link): up, and no
	// address nor route.
	testbed.Run(t, "ip", "-n", a.Netns, "addr", "flush", "dev", "eth0")

	dir := t.TempDir()
	script := filepath.Join(dir, "udhcpc.script")
	if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "events")
	udhcpc := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", a.Netns, busybox, "udhcpc", "-i", "eth0", "-s", script}, args...)...)
		cmd.Env = append(os.Environ(), "EVENTS="+events)
		return cmd
	}
	stats := func() datapath.DHCPStats { return h.do(t, agentCmd{Op: "dhcp-stats"}).DHCPStats }

	t.Run("lease", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := udhcpc(ctx, "-f", "-q", "-n", "-t", "3", "-T", "1").CombinedOutput(); err != nil {
			t.Fatalf("udhcpc: %v\n%s", err, out)
		}
		got := lastEvent(t, events, "bound")
		wantLease := "bound ip=10.98.0.10 subnet=255.255.255.0 router=10.98.0.1 dns=10.98.0.53 9.9.9.9 domain=lab.example mtu=1400 lease=86400 serverid=10.98.0.1"
		if got != wantLease {
			t.Fatalf("lease:\n got %s\nwant %s", got, wantLease)
		}
		s := stats()
		if s.Requests[dhcp.TypeDiscover] < 1 || s.Requests[dhcp.TypeRequest] < 1 || s.Answers[dhcp.AnswerOffer] < 1 || s.Answers[dhcp.AnswerAck] < 1 {
			t.Fatalf("counters: %+v", s)
		}
	})
	t.Run("ping", func(t *testing.T) {
		testbed.Run(t, "ip", "netns", "exec", a.Netns, "ping", "-c", "2", "-W", "2", n.Gateway.String())
		testbed.Run(t, "ip", "netns", "exec", a.Netns, "ping", "-c", "2", "-W", "2", b.IP.String())
		testbed.Run(t, "ip", "netns", "exec", b.Netns, "ping", "-c", "2", "-W", "2", a.IP.String())
	})
	renew := func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		before := stats()
		cmd := udhcpc(ctx, "-f", "-t", "3", "-T", "1", "-n")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		bound := waitEvents(t, events, "bound")
		// udhcpc runs under ip netns exec, which execs it: the pid is its.
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		got := waitEvents(t, events, "renew")
		if !strings.HasPrefix(got, "renew ip=10.98.0.10 ") || bound == "" {
			t.Fatalf("renew: %s", got)
		}
		after := stats()
		if after.Answers[dhcp.AnswerAck] < before.Answers[dhcp.AnswerAck]+2 {
			t.Fatalf("acks %d → %d: the renew was not ACKed here", before.Answers[dhcp.AnswerAck], after.Answers[dhcp.AnswerAck])
		}
	}
	t.Run("renew", renew)
	t.Run("trace", func(t *testing.T) {
		state := datapath.State{Networks: []model.Network{n}, Ports: ports}
		got := h.do(t, agentCmd{Op: "trace", State: state, Query: v1.Query{From: a.Name, To: n.Gateway, Proto: v1.ProtoUDP, DPort: dhcp.ServerPort}}).Trace
		var stages []string
		for _, s := range got.Steps {
			stages = append(stages, s.Stage)
		}
		if got.Verdict != v1.Answered || got.Summary != "answered by the daemon (DHCP of network dh)" ||
			strings.Join(stages, " ") != "classify spoof_guard dhcp" {
			t.Fatalf("trace: %s, %q through %v", got.Verdict, got.Summary, stages)
		}
	})
	t.Run("dhcp off", func(t *testing.T) {
		off := n
		off.DHCP = false
		h.do(t, agentCmd{Op: "network", Network: off})
		// The network's drop, above its ports' ways to the daemon: the
		// table's one dhcp_off flow that counts.
		dropped := func() (string, int) {
			dump := box.Ofctl(t, "dump-flows", "br-vnet", "table=12,reg0=1")
			for _, l := range strings.Split(dump, "\n") {
				if strings.Contains(l, "priority=150,reg0=0x1 actions=drop") {
					_, count, _ := strings.Cut(l, "n_packets=")
					count, _, _ = strings.Cut(count, ",")
					k, _ := strconv.Atoi(count)
					return dump, k
				}
			}
			return dump, -1
		}
		_, before := dropped()
		defer h.do(t, agentCmd{Op: "network", Network: n})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := udhcpc(ctx, "-f", "-q", "-n", "-t", "1", "-T", "1").CombinedOutput(); err == nil {
			t.Fatalf("udhcpc got a lease with DHCP off:\n%s", out)
		}
		if got, after := dropped(); before < 0 || after <= before {
			t.Fatalf("table 12 with DHCP off (%d packets before):\n%s", before, got)
		}
	})
	t.Run("another MAC", func(t *testing.T) {
		// The client takes b's MAC: its DHCP is no port's own, and the
		// spoof guard drops it.
		testbed.Run(t, "ip", "-n", a.Netns, "link", "set", "eth0", "address", b.MAC)
		defer testbed.Run(t, "ip", "-n", a.Netns, "link", "set", "eth0", "address", a.MAC)
		before := stats()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := udhcpc(ctx, "-f", "-q", "-n", "-t", "2", "-T", "1").CombinedOutput(); err == nil {
			t.Fatalf("udhcpc got a lease with another port's MAC:\n%s", out)
		}
		if after := stats(); after.Requests[dhcp.TypeDiscover] != before.Requests[dhcp.TypeDiscover] {
			t.Fatalf("the daemon was sent a DISCOVER from another port's MAC: %d → %d", before.Requests[dhcp.TypeDiscover], after.Requests[dhcp.TypeDiscover])
		}
	})
	t.Run("flood", func(t *testing.T) {
		// f floods DISCOVERs at 2,000 a second for 3 s while a asks three
		// times with udhcpc waiting 1 s for each answer (-T 1) and sending
		// each of its packets once (-t 1; SELECT is resent only unanswered):
		// one DISCOVER and one SELECT each time prove both answers came
		// within the second. f's meter drops nearly all of the flood.
		before := stats()
		sock := openPacketSocket(t, f.Netns)
		discover := discoverFrame(t, f)
		stop := make(chan struct{})
		sent := make(chan int, 1)
		start := time.Now()
		go func() { sent <- flood(sock, discover, stop) }()
		for round := range 3 {
			time.Sleep(500 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := udhcpc(ctx, "-f", "-q", "-n", "-t", "1", "-T", "1", "-A", "0").CombinedOutput()
			cancel()
			if err != nil || strings.Count(string(out), "broadcasting discover") != 1 || strings.Count(string(out), "broadcasting select") != 1 {
				close(stop)
				t.Fatalf("round %d beside the flood: %v\n%s", round, err, out)
			}
		}
		time.Sleep(time.Until(start.Add(3 * time.Second)))
		close(stop)
		n := <-sent
		after := stats()
		limited := after.Refused[dhcp.ReasonRateLimited] - before.Refused[dhcp.ReasonRateLimited]
		queued := after.Refused[dhcp.ReasonQueueFull] - before.Refused[dhcp.ReasonQueueFull]
		// The port's burst (20) and rate (10/s) let some 60 through in the
		// flood's few seconds.
		if n < 4000 || int(limited+queued) < n-100 {
			t.Fatalf("flood of %d DISCOVERs: %d rate limited, %d queue full", n, limited, queued)
		}
		t.Logf("flood of %d DISCOVERs: %d rate limited, %d queue full, %d offers", n, limited, queued,
			after.Answers[dhcp.AnswerOffer]-before.Answers[dhcp.AnswerOffer])
		// Once the flood stops, f's bucket fills again and f is answered.
		time.Sleep(2 * time.Second)
		if _, err := sock.Write(discover); err != nil {
			t.Fatal(err)
		}
		if got := readOffer(t, sock); got != f.IP {
			t.Fatalf("f's DISCOVER after the flood: offer of %s, want %s", got, f.IP)
		}
	})
	t.Run("after a restart", func(t *testing.T) {
		h.stop()
		// A bridge from a release that bounded all ports' DHCP with a
		// meter of the bridge's (object 2) loses it at the sync.
		old := strconv.FormatUint(uint64(cookieSpace.Meter(0, 2)), 10)
		box.Ofctl(t, "add-meter", "br-vnet", "meter="+old+",pktps,burst,stats,band=type=drop,rate=500,burst_size=100")
		h = start()
		eventually(t, "the bridge's old DHCP meter gone", func() bool {
			return !strings.Contains(box.Ofctl(t, "dump-meters", "br-vnet"), "meter="+old+" ")
		})
		renew(t)
	})
	t.Run("after ovs-save's restore", func(t *testing.T) {
		// ovs-ctl restart saves the bridge's flows and groups with
		// ovs-save, restarts ovs-vswitchd and runs the saved script before
		// any controller connects; meters are not saved. With the daemon
		// stopped, what the bridge holds after is the script's alone: all
		// of its flows, and a port reaches another through them.
		h.stop()
		want := flowTexts(t, box)
		script := filepath.Join(t.TempDir(), "restore")
		env := append(os.Environ(), "OVS_RUNDIR="+box.Dir)
		save := exec.Command("ip", "netns", "exec", box.Netns, "/usr/share/openvswitch/scripts/ovs-save", "save-flows", "br-vnet")
		save.Env = env
		saved, err := save.Output()
		if err != nil {
			t.Fatalf("ovs-save: %v", err)
		}
		if err := os.WriteFile(script, saved, 0o755); err != nil {
			t.Fatal(err)
		}
		box.RestartVswitchd(t)
		restore := exec.Command("ip", "netns", "exec", box.Netns, "sh", script)
		restore.Env = env
		out, err := restore.CombinedOutput()
		if got := flowTexts(t, box); err != nil || got != want {
			t.Fatalf("ovs-save's restore: %v\n%s\nflows after:\n%s\nbefore:\n%s", err, out, got, want)
		}
		testbed.Run(t, "ip", "netns", "exec", b.Netns, "ping", "-c", "2", "-W", "2", a.IP.String())
		h = start()
		renew(t)
	})
	t.Run("switch down", func(t *testing.T) {
		// The daemon's own counters need no switch: with ovs-vswitchd
		// gone they are still reported, and only rate_limited, which
		// the ports' meters count too, is left out.
		before, flows := stats(), len(boxFlows(t, box))
		pid, err := os.ReadFile(filepath.Join(box.Dir, "ovs-vswitchd.pid"))
		if err != nil {
			t.Fatal(err)
		}
		testbed.Run(t, "kill", "-KILL", strings.TrimSpace(string(pid)))
		defer func() {
			box.RestartVswitchd(t)
			eventually(t, "flows back after the ovs-vswitchd restart", func() bool { return len(boxFlows(t, box)) >= flows })
		}()
		got, err := h.call(agentCmd{Op: "dhcp-stats"})
		if _, limited := got.DHCPStats.Refused[dhcp.ReasonRateLimited]; err != nil || limited ||
			got.DHCPStats.Requests[dhcp.TypeRequest] != before.Requests[dhcp.TypeRequest] || before.Requests[dhcp.TypeRequest] == 0 ||
			got.DHCPStats.Answers[dhcp.AnswerAck] != before.Answers[dhcp.AnswerAck] {
			t.Fatalf("DHCP stats with the switch down: %+v, %v (before %+v)", got.DHCPStats, err, before)
		}
	})
	t.Run("after an ovs-vswitchd restart", func(t *testing.T) {
		// The switch forgot its flows and meters; the resync puts both
		// back: path_mtu's meter and the ports'.
		restartVswitchd(t, box)
		if meters := box.Ofctl(t, "dump-meters", "br-vnet"); strings.Count(meters, "meter=") != 1+len(ports) {
			t.Fatalf("meters after the restart:\n%s", meters)
		}
		renew(t)
	})
	t.Run("failed attach", func(t *testing.T) {
		// An attach the switch refuses — its network's flood group, which
		// the attach changes, is gone (OFPGMFC_UNKNOWN_GROUP) — is rolled
		// back, and leaves no meter of its port on the bridge.
		meters := func() []string {
			var out []string
			for _, l := range strings.Split(box.Ofctl(t, "dump-meters", "br-vnet"), "\n") {
				if strings.HasPrefix(l, "meter=") {
					out = append(out, l)
				}
			}
			return out
		}
		before := meters()
		box.Ofctl(t, "del-groups", "br-vnet", "group_id="+strconv.FormatUint(uint64(cookieSpace.Group(uint32(n.ID))), 10))
		_, err := h.call(agentCmd{Op: "attach", Network: n, Port: port("dhg", "10.98.0.13")})
		if err == nil || !strings.Contains(err.Error(), "commit bundle") {
			t.Fatalf("attach without its network's flood group: %v", err)
		}
		if after := meters(); !slices.Equal(after, before) {
			t.Fatalf("meters after the failed attach:\n%s\nbefore:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
		}
	})
}

// flowTexts is the bridge's flows as ovs-save dumps them, sorted: their
// text without counters.
func flowTexts(t *testing.T, box *testbed.Sandbox) string {
	t.Helper()
	return strings.Join(slices.Sorted(maps.Keys(boxFlows(t, box))), "\n")
}

// lastEvent is the last line of udhcpc's events starting with kind.
func lastEvent(t *testing.T, path, kind string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, kind+" ") {
			last = l
		}
	}
	if last == "" {
		t.Fatalf("no %s event in:\n%s", kind, b)
	}
	return last
}

// waitEvents waits for a new event of kind (one after those the file has
// when called) and returns it.
func waitEvents(t *testing.T, path, kind string) string {
	t.Helper()
	count := func() (int, string) {
		b, _ := os.ReadFile(path)
		n, last := 0, ""
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, kind+" ") {
				n, last = n+1, l
			}
		}
		return n, last
	}
	seen, _ := count()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if n, last := count(); n > seen {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("no new %s event in 15 s:\n%s", kind, b)
	return ""
}

// openPacketSocket opens a packet socket on eth0 in namespace ns, which
// sends frames as they are and reads what eth0 carries; non-blocking, so
// that its reads take a deadline.
func openPacketSocket(t *testing.T, ns string) *os.File {
	t.Helper()
	var fd int
	err := testbed.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("packet socket in %s: %v", ns, err)
	}
	f := os.NewFile(uintptr(fd), "packet")
	t.Cleanup(func() { f.Close() })
	return f
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// discoverFrame is a DISCOVER from port p, as its client would broadcast it.
func discoverFrame(t *testing.T, p model.Port) []byte {
	t.Helper()
	mac, err := net.ParseMAC(p.MAC)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dhcpv4.NewDiscovery(mac)
	if err != nil {
		t.Fatal(err)
	}
	return dhcp.Frame(dhcp.Header{SrcMAC: mac, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		SrcIP: netip.IPv4Unspecified(), DstIP: netip.AddrFrom4([4]byte{255, 255, 255, 255}),
		SrcPort: dhcp.ClientPort, DstPort: dhcp.ServerPort}, m.ToBytes())
}

// flood sends frame 20 times every 10 ms (2,000 a second) until stop, and
// returns how many went out.
func flood(sock *os.File, frame []byte, stop <-chan struct{}) int {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-stop:
			return n
		case <-tick.C:
			for range 20 {
				if _, err := sock.Write(frame); err == nil {
					n++
				}
			}
		}
	}
}

// readOffer reads frames from sock for up to 3 s and returns the address
// of the first OFFER among them.
func readOffer(t *testing.T, sock *os.File) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		if err := sock.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, err := sock.Read(buf)
		if err != nil {
			break
		}
		h, payload, err := dhcp.ParseFrame(buf[:n])
		if err != nil || h.SrcPort != dhcp.ServerPort {
			continue
		}
		m, err := dhcpv4.FromBytes(payload)
		if err == nil && m.MessageType() == dhcpv4.MessageTypeOffer {
			a, _ := netip.AddrFromSlice(m.YourIPAddr.To4())
			return a
		}
	}
	t.Fatal("no OFFER within 3 s")
	return netip.Addr{}
}
