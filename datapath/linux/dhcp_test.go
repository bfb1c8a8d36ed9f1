package linux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// rawClient is a packet socket on eth0 of a port's namespace, or a tap's
// file as a VM has it: it sends the frames a DHCP client (or a liar)
// would, and reads what comes back.
type rawClient struct {
	t  *testing.T
	fd int
}

func newRawClient(t *testing.T, ns string) *rawClient {
	t.Helper()
	c := &rawClient{t: t, fd: -1}
	err := testbed.InNetns(ns, func() error {
		l, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		return errors.Join(unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
			unix.SetsockoptInt(c.fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1),
			unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Index}))
	})
	if c.fd >= 0 {
		t.Cleanup(func() { unix.Close(c.fd) })
	}
	if err != nil {
		t.Fatalf("packet socket in %s: %v", ns, err)
	}
	return c
}

// newTapClient attaches to the persistent tap of p as a VM does, in the
// host's namespace.
func newTapClient(t *testing.T, hostNS string, p model.Port) *rawClient {
	t.Helper()
	c := &rawClient{t: t, fd: -1}
	err := testbed.InNetns(hostNS, func() (err error) {
		if c.fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(p.HostIfname)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(c.fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		return nil
	})
	if c.fd >= 0 {
		t.Cleanup(func() { unix.Close(c.fd) })
	}
	if err != nil {
		t.Fatalf("attach to tap %s: %v", p.HostIfname, err)
	}
	// The tap has carrier now, but sends nothing until the kernel's link
	// watch (up to a second later) gives it its queue discipline back: an
	// answer before that is dropped, as a VM that is still booting would
	// not notice.
	for end := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(testbed.Run(t, "ip", "-n", hostNS, "-o", "link", "show", "dev", p.HostIfname), "state UP") {
			return c
		}
		if time.Now().After(end) {
			t.Fatalf("tap %s: not up 3 s after a queue attached", p.HostIfname)
		}
	}
}

// request frames m as a port's client sends it: from mac (and src), to
// the broadcast address unless to is set.
func request(t *testing.T, m *dhcpv4.DHCPv4, mac net.HardwareAddr, src netip.Addr, toMAC net.HardwareAddr, to netip.Addr) []byte {
	t.Helper()
	if toMAC == nil {
		toMAC, to = broadcastMAC, netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return dhcp.Frame(dhcp.Header{SrcMAC: mac, DstMAC: toMAC, SrcIP: src, DstIP: to,
		SrcPort: dhcp.ClientPort, DstPort: dhcp.ServerPort}, m.ToBytes())
}

func discover(t *testing.T, mac net.HardwareAddr, chaddr net.HardwareAddr) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(chaddr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (c *rawClient) send(frame []byte) {
	c.t.Helper()
	if _, err := unix.Write(c.fd, frame); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// answer is the first DHCP answer to xid read within wait, nil if none.
func (c *rawClient) answer(xid dhcpv4.TransactionID, wait time.Duration) (*dhcpv4.DHCPv4, dhcp.Header) {
	c.t.Helper()
	buf := make([]byte, 4096)
	for end := time.Now().Add(wait); time.Now().Before(end); {
		n, err := unix.Read(c.fd, buf)
		if err != nil {
			time.Sleep(10 * time.Millisecond) // nothing yet (a tap is non-blocking)
			continue
		}
		h, payload, err := dhcp.ParseFrame(buf[:n])
		if err != nil || h.SrcPort != dhcp.ServerPort || h.DstPort != dhcp.ClientPort {
			continue
		}
		if m, err := dhcpv4.FromBytes(payload); err == nil && m.TransactionID == xid {
			return m, h
		}
	}
	return nil, dhcp.Header{}
}

// heard reports whether any DHCP request (UDP 68→67) arrives within wait.
func (c *rawClient) heard(wait time.Duration) bool {
	buf := make([]byte, 4096)
	for end := time.Now().Add(wait); time.Now().Before(end); {
		n, err := unix.Read(c.fd, buf)
		if err != nil {
			continue
		}
		if h, _, err := dhcp.ParseFrame(buf[:n]); err == nil && h.SrcPort == dhcp.ClientPort && h.DstPort == dhcp.ServerPort {
			return true
		}
	}
	return false
}

func macOf(t *testing.T, p model.Port) net.HardwareAddr {
	t.Helper()
	mac, err := net.ParseMAC(p.MAC)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

func dhcpNetwork(t *testing.T) model.Network {
	t.Helper()
	dns, err := model.NewAddrList([]string{"10.81.0.53", "9.9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	return model.Network{Name: "dh", Subnet: netip.MustParsePrefix("10.81.0.0/24"), Gateway: netip.MustParseAddr("10.81.0.1"),
		MTU: 1400, DHCP: true, DNS: dns, Domain: "lab.example"}
}

func (h *hostBed) dhcpStats(b *Backend) datapath.DHCPStats {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	s, err := b.DHCPStats(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// udhcpcScript records what busybox udhcpc hands its script, and applies
// the address, route and MTU as a distribution's script does.
const udhcpcScript = `#!/bin/sh
echo "$1 ip=$ip subnet=$subnet router=$router dns=$dns domain=$domain mtu=$mtu lease=$lease serverid=$serverid" >> "$LOG"
case "$1" in bound|renew)
	ip addr add "$ip/$mask" dev "$interface"
	ip link set dev "$interface" mtu "$mtu"
	ip route add default via "$router" dev "$interface"
esac
`

// TestLinuxDHCP: the backend answers a port's DHCP from the port's host
// end. A real client (busybox udhcpc) on a configure:false port gets its
// address, gateway, DNS, domain, MTU and lease and then reaches the
// gateway and another port; a renewal unicast to the gateway's MAC is
// ACKed; a VM on a tap port is answered too; a client lying about its MAC gets nothing, one asking for
// another port's address a NAK; no port sees another's DHCP; a network
// with DHCP off answers nothing; after a repair that made the link anew
// and after a restart the port is answered again; a detached port's socket is closed.
// Witnesses: the frames in the namespaces, udhcpc and ping.
func TestLinuxDHCP(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	udhcpc, err := exec.LookPath("busybox")
	testbed.Need(t, err == nil, "busybox (udhcpc): apt-get install busybox-static")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := &hostBed{t: t, ns: newNetns(t, "vnt-dh-"), ctx: ctx}
	n := dhcpNetwork(t)
	a, c := h.port("a", "dh", "10.81.0.5"), h.port("c", "dh", "10.81.0.6")
	a.NoConfigure = true
	vm := model.Port{Name: "vm", Network: "dh", Type: v1.PortTap, IP: netip.MustParseAddr("10.81.0.9"), MAC: model.PortMAC("vm")}
	vm.Ifname, vm.HostIfname = model.HostIfname(vm.Name), model.HostIfname(vm.Name)
	b := h.start(n, a, c, vm)
	t.Cleanup(func() { b.Close() })
	aMAC, cMAC := macOf(t, a), macOf(t, c)
	gwMAC, _ := net.ParseMAC(model.BridgeMAC(n.Name))
	zero := netip.IPv4Unspecified()

	t.Run("udhcpc", func(t *testing.T) {
		if got := testbed.Run(t, "ip", "-n", a.Netns, "-4", "-o", "addr", "show", "dev", "eth0"); got != "" {
			t.Fatalf("configure:false port has an address before DHCP: %s", got)
		}
		dir := t.TempDir()
		script, log := filepath.Join(dir, "script"), filepath.Join(dir, "log")
		if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", a.Netns, udhcpc, "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "1", "-i", "eth0", "-s", script)
		cmd.Env = append(os.Environ(), "LOG="+log)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("udhcpc: %v\n%s", err, out)
		}
		got, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		want := "bound ip=10.81.0.5 subnet=255.255.255.0 router=10.81.0.1 dns=10.81.0.53 9.9.9.9 domain=lab.example mtu=1400 lease=86400 serverid=10.81.0.1"
		if !strings.Contains(string(got), want) {
			t.Fatalf("udhcpc's script saw\n%s\nwant the line\n%s", got, want)
		}
		h.expect(a.Netns, "10.81.0.1", true, "gateway after DHCP")
		h.expect(a.Netns, "10.81.0.6", true, "another port after DHCP")
		h.expect(c.Netns, "10.81.0.5", true, "the DHCP port from another port")
	})

	t.Run("tap", func(t *testing.T) {
		cl, mac := newTapClient(t, h.ns, vm), macOf(t, vm)
		m := discover(t, mac, mac)
		cl.send(request(t, m, mac, zero, nil, netip.Addr{}))
		offer, hdr := cl.answer(m.TransactionID, 2*time.Second)
		if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.Equal(vm.IP.AsSlice()) {
			t.Fatalf("DISCOVER from the VM: answer %v, want an OFFER of %s", offer, vm.IP)
		}
		if !bytes.Equal(hdr.DstMAC, mac) {
			t.Errorf("OFFER to %s, want the VM's MAC %s", hdr.DstMAC, mac)
		}
	})

	t.Run("renew", func(t *testing.T) {
		m, err := dhcpv4.NewRequestFromOffer(offerFor(t, a, aMAC))
		if err != nil {
			t.Fatal(err)
		}
		cl := newRawClient(t, a.Netns)
		// RENEWING: ciaddr set, no server identifier nor requested IP,
		// unicast to the server.
		m.ClientIPAddr = a.IP.AsSlice()
		m.Options.Del(dhcpv4.OptionServerIdentifier)
		m.Options.Del(dhcpv4.OptionRequestedIPAddress)
		before := h.dhcpStats(b)
		cl.send(request(t, m, aMAC, a.IP, gwMAC, n.Gateway))
		ack, hdr := cl.answer(m.TransactionID, 2*time.Second)
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(a.IP.AsSlice()) {
			t.Fatalf("renewal: answer %v", ack)
		}
		if hdr.DstIP != a.IP || !bytes.Equal(hdr.DstMAC, aMAC) || !bytes.Equal(hdr.SrcMAC, gwMAC) {
			t.Errorf("renewal's ACK sent %+v, want unicast from the gateway's MAC to the port", hdr)
		}
		after := h.dhcpStats(b)
		if after.Requests[dhcp.TypeRequest] != before.Requests[dhcp.TypeRequest]+1 || after.Answers[dhcp.AnswerAck] != before.Answers[dhcp.AnswerAck]+1 {
			t.Errorf("counters: %+v -> %+v", before, after)
		}
	})

	t.Run("spoofed", func(t *testing.T) {
		cl := newRawClient(t, a.Netns)
		before := h.dhcpStats(b)
		spoofBefore := h.spoofDrops(b, "a")
		// Another port's MAC as chaddr, and then as the Ethernet source too.
		for _, src := range []net.HardwareAddr{aMAC, cMAC} {
			m := discover(t, src, cMAC)
			cl.send(request(t, m, src, zero, nil, netip.Addr{}))
			if got, _ := cl.answer(m.TransactionID, time.Second); got != nil {
				t.Errorf("a DISCOVER from %s for %s's MAC was answered: %s", src, c.Name, got.Summary())
			}
		}
		after := h.dhcpStats(b)
		if d := after.Refused[dhcp.ReasonUnknownMAC] - before.Refused[dhcp.ReasonUnknownMAC]; d != 2 {
			t.Errorf("unknown_mac refusals +%d, want +2", d)
		}
		if got := h.spoofDrops(b, "a"); got <= spoofBefore {
			t.Errorf("the frame with %s's MAC as source: spoof drops %d -> %d, want a rise", c.Name, spoofBefore, got)
		}
		// A REQUEST for another port's address is refused aloud.
		m, err := dhcpv4.NewRequestFromOffer(offerFor(t, a, aMAC))
		if err != nil {
			t.Fatal(err)
		}
		cl = newRawClient(t, a.Netns)
		m.UpdateOption(dhcpv4.OptRequestedIPAddress(c.IP.AsSlice()))
		cl.send(request(t, m, aMAC, zero, nil, netip.Addr{}))
		if nak, _ := cl.answer(m.TransactionID, 2*time.Second); nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
			t.Errorf("a REQUEST for %s's address: answer %v, want a NAK", c.Name, nak)
		}
	})

	t.Run("isolated", func(t *testing.T) {
		// A port's DHCP reaches only the daemon: not another port, not
		// even a REBINDING broadcast from the port's own address, which
		// anti-spoofing alone would pass; and a DISCOVER from 0.0.0.0 is
		// DHCP, not spoofing.
		cl, other := newRawClient(t, a.Netns), newRawClient(t, c.Netns)
		spoofBefore := h.spoofDrops(b, "a")
		m := discover(t, aMAC, aMAC)
		cl.send(request(t, m, aMAC, zero, nil, netip.Addr{}))
		rebind, err := dhcpv4.NewRequestFromOffer(offerFor(t, a, aMAC))
		if err != nil {
			t.Fatal(err)
		}
		rebind.ClientIPAddr = a.IP.AsSlice()
		rebind.Options.Del(dhcpv4.OptionServerIdentifier)
		rebind.Options.Del(dhcpv4.OptionRequestedIPAddress)
		cl.send(request(t, rebind, aMAC, a.IP, nil, netip.Addr{}))
		if other.heard(time.Second) {
			t.Errorf("port %s heard port %s's DHCP", c.Name, a.Name)
		}
		if got := h.spoofDrops(b, "a"); got != spoofBefore {
			t.Errorf("DHCP counted as spoofing: %d -> %d", spoofBefore, got)
		}
	})

	t.Run("dhcp_off", func(t *testing.T) {
		off := n
		off.DHCP = false
		h.do("dhcp off", func() error { return b.EnsureNetwork(ctx, off) })
		cl := newRawClient(t, a.Netns)
		before := h.dhcpStats(b)
		m := discover(t, aMAC, aMAC)
		cl.send(request(t, m, aMAC, zero, nil, netip.Addr{}))
		if got, _ := cl.answer(m.TransactionID, time.Second); got != nil {
			t.Errorf("DHCP off, still answered: %s", got.Summary())
		}
		if d := h.dhcpStats(b).Refused[dhcp.ReasonDHCPOff] - before.Refused[dhcp.ReasonDHCPOff]; d != 1 {
			t.Errorf("dhcp_off refusals +%d, want +1", d)
		}
		h.do("dhcp on", func() error { return b.EnsureNetwork(ctx, n) })
		offerFor(t, a, aMAC)
	})

	t.Run("repair", func(t *testing.T) {
		// A link deleted under the daemon and made again by the repair's
		// attach has a new index: the port's socket follows it.
		testbed.Run(t, "ip", "-n", h.ns, "link", "del", c.HostIfname)
		h.do("repair", func() error { _, err := b.AttachPort(ctx, n, c); return err })
		offerFor(t, c, cMAC)
	})

	t.Run("restart", func(t *testing.T) {
		// A new process: the port's rules are inherited as they are, and
		// its socket is opened anew by the reconcile's attach.
		b.Close()
		b = h.start(n, a, c, vm)
		offerFor(t, a, aMAC)
	})

	t.Run("detach", func(t *testing.T) {
		h.do("detach", func() error { return b.DetachPort(ctx, n, c) })
		b.dhcp.mu.RLock()
		_, open := b.dhcp.sockets[c.Name]
		left := len(b.dhcp.sockets)
		b.dhcp.mu.RUnlock()
		if open || left != 2 {
			t.Errorf("after detaching %s: its socket open %v, %d sockets", c.Name, open, left)
		}
		h.do("prune", func() error { return b.Prune(ctx, datapath.State{Networks: []model.Network{n}}) })
		b.dhcp.mu.RLock()
		left = len(b.dhcp.sockets)
		b.dhcp.mu.RUnlock()
		if left != 0 {
			t.Errorf("after a prune of every port: %d sockets", left)
		}
	})
}

// start starts a backend in h as the daemon does: n and ports ensured,
// then pruned to them. The caller closes it.
func (h *hostBed) start(n model.Network, ports ...model.Port) *Backend {
	h.t.Helper()
	var b *Backend
	h.do("start", func() (err error) {
		if b, err = New(h.ctx, "vnbr", nil); err != nil {
			return err
		}
		if err := b.EnsureNetwork(h.ctx, n); err != nil {
			return err
		}
		for _, p := range ports {
			if _, err := b.AttachPort(h.ctx, n, p); err != nil {
				return err
			}
		}
		return b.Prune(h.ctx, datapath.State{Networks: []model.Network{n}, Ports: ports})
	})
	return b
}

// offerFor sends a DISCOVER from p's namespace and returns the OFFER.
func offerFor(t *testing.T, p model.Port, mac net.HardwareAddr) *dhcpv4.DHCPv4 {
	t.Helper()
	cl := newRawClient(t, p.Netns)
	m := discover(t, mac, mac)
	cl.send(request(t, m, mac, netip.IPv4Unspecified(), nil, netip.Addr{}))
	offer, _ := cl.answer(m.TransactionID, 2*time.Second)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.Equal(p.IP.AsSlice()) {
		t.Fatalf("DISCOVER from %s: answer %v, want an OFFER of %s", p.Name, offer, p.IP)
	}
	return offer
}

// TestLinuxDHCPFloodIsolation: a port sending DISCOVERs as fast as it can
// (20,000 at least, and until the other port is done) gets its own rate's
// worth of answers, and another port's client is answered within a second
// all along. Every frame sent is accounted for: a request, refused as
// rate_limited (read while the port was over its rate, or discarded after
// a pause) or queue_full (dropped by the socket's full buffer while its
// reader paused), or dropped by the kernel on the veth before any socket
// saw it (the port end's tx_dropped, the host end's rx_dropped; no other
// loss); and the daemon read only some of them, its work bounded by the
// port's rate. Witnesses: the frames in both namespaces.
func TestLinuxDHCPFloodIsolation(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := &hostBed{t: t, ns: newNetns(t, "vnt-dhf-"), ctx: ctx}
	n := dhcpNetwork(t)
	f, g := h.port("f", "dh", "10.81.0.7"), h.port("g", "dh", "10.81.0.8")
	b := h.start(n, f, g)
	t.Cleanup(func() { b.Close() })
	fMAC, gMAC := macOf(t, f), macOf(t, g)
	flooder, client := newRawClient(t, f.Netns), newRawClient(t, g.Netns)

	const flood = 20000
	before, vethBefore := h.dhcpStats(b), h.vethDrops(f)
	m := discover(t, fMAC, fMAC)
	frame := request(t, m, fMAC, netip.IPv4Unspecified(), nil, netip.Addr{})
	start := time.Now()
	sent, done := make(chan int), make(chan struct{})
	go func() {
		n := 0
		for stop := false; n < flood || !stop; {
			if _, err := unix.Write(flooder.fd, frame); err == nil {
				n++
			}
			select {
			case <-done:
				stop = true
			default:
			}
		}
		sent <- n
	}()
	for round := range 5 {
		q := discover(t, gMAC, gMAC)
		client.send(request(t, q, gMAC, netip.IPv4Unspecified(), nil, netip.Addr{}))
		if offer, _ := client.answer(q.TransactionID, time.Second); offer == nil {
			t.Errorf("round %d: port g's DISCOVER not answered within a second during the flood", round)
		}
	}
	close(done)
	nSent := <-sent
	elapsed := time.Since(start)
	// The flooder's answers: its burst and its rate over the flood, read
	// from its namespace.
	answered := 0
	buf := make([]byte, 4096)
	for {
		k, err := unix.Read(flooder.fd, buf)
		if err != nil {
			break
		}
		if hd, payload, err := dhcp.ParseFrame(buf[:k]); err == nil && hd.SrcPort == dhcp.ServerPort {
			if r, err := dhcpv4.FromBytes(payload); err == nil && r.TransactionID == m.TransactionID {
				answered++
			}
		}
	}
	limit := dhcp.PortBurst + int(elapsed.Seconds()*dhcp.PortRate) + 1
	if answered > limit || answered < dhcp.PortBurst {
		t.Errorf("the flooding port got %d answers, want %d to %d", answered, dhcp.PortBurst, limit)
	}
	// The reader may be pausing with frames queued: they are counted once
	// it has drained them (within a pause and a drain).
	var requests, limited, full, lost uint64
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s := h.dhcpStats(b)
		requests = s.Requests[dhcp.TypeDiscover] - before.Requests[dhcp.TypeDiscover] - 5 // g's
		limited = s.Refused[dhcp.ReasonRateLimited] - before.Refused[dhcp.ReasonRateLimited]
		full = s.Refused[dhcp.ReasonQueueFull] - before.Refused[dhcp.ReasonQueueFull]
		lost = h.vethDrops(f) - vethBefore
		if requests+limited+full+lost >= uint64(nSent) || time.Now().After(end) {
			break
		}
	}
	t.Logf("sent %d in %v; answered %d (limit %d); requests %d, rate_limited %d, queue_full %d, lost on the veth %d",
		nSent, elapsed, answered, limit, requests, limited, full, lost)
	if got := requests + limited + full + lost; got != uint64(nSent) {
		t.Errorf("%d frames sent, %d accounted for", nSent, got)
	}
	// The daemon's work is bounded by the port's rate, not the sender's:
	// after a refusal the reader pauses, so it reads no more than a token's
	// frame, or a refused frame and a drain, per pause, however fast the
	// port sends (and however slow this machine is: the bound grows with
	// the time taken).
	pauses := uint64(time.Since(start)/dhcpPause) + 1
	if read, most := requests+limited, dhcp.PortBurst+pauses*(dhcpDrainMax+2); read > most {
		t.Errorf("the daemon read %d of the flooding port's frames in %d pauses' time, want at most %d", read, pauses, most)
	}
}

// vethDrops is what the kernel dropped of p's frames on their way from its
// veth's port end to the host end: before any packet socket, so counted
// by no DHCP counter.
func (h *hostBed) vethDrops(p model.Port) uint64 {
	h.t.Helper()
	var n uint64
	for _, c := range []struct{ ns, link, stat string }{
		{p.Netns, p.Ifname, "tx_dropped"}, {h.ns, p.HostIfname, "rx_dropped"},
	} {
		var v uint64
		out := testbed.Run(h.t, "ip", "netns", "exec", c.ns, "cat", "/sys/class/net/"+c.link+"/statistics/"+c.stat)
		if _, err := fmt.Sscan(out, &v); err != nil {
			h.t.Fatalf("%s %s: %v", c.link, c.stat, err)
		}
		n += v
	}
	return n
}
