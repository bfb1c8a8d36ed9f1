package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// The host's own service in the host namespace: a link of its own (a veth
// pair: this kernel has no dummy links) holds an address of the host that is
// none of ovs-vnet's, and a listener on [::]
// (dual-stack: every IPv4 and IPv6 address) waits on svcPort.
const (
	svcLink = "vnt-svc0"
	svcIP   = "192.0.2.1"
	svcPort = 7777
)

// TestHostIsolation: no port reaches the host's own IP stack through its
// host end, on either backend (docs/DESIGN.md §8.7, docs/PIPELINE.md). From a
// veth port and a tap port (written to as a VM would, through /dev/net/tun)
// a rogue router advertisement, an ARP request for the host's address and
// TCP SYNs to the host's service over IPv4 and every host link-local address
// change nothing on the host — no route, address or neighbour — and the host
// sends nothing back; from the veth port real connects fail too, to the
// gateway's address as well (it answers ping only); nor does the host
// reach the port, which it may only through a forward. The frames
// demonstrably reached the host end (its receive counter), and on OVS the
// host's stack demonstrably dropped them (our nft counters, Ip6InDiscards).
// A restart seals a link an older version left unsealed.
func TestHostIsolation(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			testbed.Run(t, "ip", "-n", hostNS, "link", "add", svcLink, "type", "veth", "peer", "name", svcLink+"p")
			testbed.Run(t, "ip", "-n", hostNS, "addr", "add", svcIP+"/32", "dev", svcLink)
			testbed.Run(t, "ip", "-n", hostNS, "link", "set", svcLink, "up")
			testbed.Run(t, "ip", "-n", hostNS, "link", "set", svcLink+"p", "up")
			accepted := listenInNetns(t, hostNS)

			// Masquerade: the host has a route back into the network, so a
			// connection the host took would complete.
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.73.0.0/24","masquerade":true}`, 201, nil)
			nsP := newNetns(t, "vnt-p-")
			var p, vm portView
			d.must("PUT", "/v1/ports/p", map[string]string{"network": "blue", "netns": nsP}, 201, &p)
			d.must("PUT", "/v1/ports/vm", `{"network":"blue","type":"tap","ifname":"vnt-tap0"}`, 201, &vm)
			ping(t, nsP, p.Gateway, true) // what a port is offered still works
			// The other way, the host reaches a port only through a port
			// forward or a floating IP (docs/API.md), on both backends,
			// though it has a route into the network.
			ping(t, hostNS, strings.Split(p.IP, "/")[0], false)
			for _, port := range []portView{p, vm} {
				checkSealed(t, hostNS, port.HostIfname)
			}
			if bc.kind == "linux" {
				br := model.BridgeName("vnbr", "blue")
				if out := testbed.Run(t, "ip", "netns", "exec", hostNS, "sysctl", "-n", "net.ipv6.conf."+br+".disable_ipv6"); strings.TrimSpace(out) != "1" {
					t.Errorf("bridge %s: disable_ipv6 = %s", br, out)
				}
			}

			wires := []*wire{openPacketWire(t, hostNS, nsP, p), openTapWire(t, hostNS, vm)}
			if bc.kind == "ovs" {
				// The group's drop rules are there before any probe.
				testbed.Run(t, "ip", "netns", "exec", hostNS, "nft", "list", "chain", "arp", "ovs_vnet", "input")
			}
			// The host's own links done with duplicate address detection,
			// whose end adds routes of the host's own.
			waitFor(t, "the host's addresses leave the tentative state", func() bool {
				return !strings.Contains(testbed.Run(t, "ip", "-n", hostNS, "-6", "addr"), "tentative")
			})
			before := hostLearnt(t, hostNS)
			drops := ovsDrops(t, bc.kind, hostNS)
			for _, w := range wires {
				w.probe(t, hostNS, bc.kind, hostLinkLocals(t, hostNS))
			}
			connectFromPort(t, hostNS, nsP, p)
			if after := hostLearnt(t, hostNS); !slices.Equal(before, after) {
				t.Errorf("the host learnt from the ports:\n before %q\n after  %q", before, after)
			}
			for _, w := range wires {
				w.checkNothingFromHost(t)
			}
			if got := accepted(); len(got) != 0 {
				t.Errorf("the host's service accepted connections from ports: %v", got)
			}
			if after := ovsDrops(t, bc.kind, hostNS); bc.kind == "ovs" && (after[0] <= drops[0] || after[1] <= drops[1]) {
				t.Errorf("nft drop counters (inet prerouting, arp input) %v -> %v: the host's stack was offered nothing?", drops, after)
			}

			// A link an older version made is sealed when the restarted daemon adopts it.
			d.stop()
			for _, port := range []portView{p, vm} {
				testbed.Run(t, "ip", "netns", "exec", hostNS, "sysctl", "-q", "-w", "net.ipv6.conf."+port.HostIfname+".disable_ipv6=0")
				testbed.Run(t, "ip", "-n", hostNS, "link", "set", port.HostIfname, "group", "default")
			}
			d.start()
			for _, port := range []portView{p, vm} {
				checkSealed(t, hostNS, port.HostIfname)
			}
			ping(t, nsP, p.Gateway, true)
		})
	}
}

// checkSealed: the host end is in link.Group with IPv6 off.
func checkSealed(t *testing.T, hostNS, ifname string) {
	t.Helper()
	out := testbed.Run(t, "ip", "netns", "exec", hostNS, "sysctl", "-n", "net.ipv6.conf."+ifname+".disable_ipv6")
	if strings.TrimSpace(out) != "1" {
		t.Errorf("%s: disable_ipv6 = %s", ifname, out)
	}
	l := linkIn(t, hostNS, ifname)
	if l.Attrs().Group != link.Group {
		t.Errorf("%s: group %#x, want %#x", ifname, l.Attrs().Group, link.Group)
	}
}

func linkIn(t *testing.T, ns, name string) netlink.Link {
	t.Helper()
	for _, l := range linksIn(t, ns) {
		if l.Attrs().Name == name {
			return l
		}
	}
	t.Fatalf("no link %s in %s", name, ns)
	return nil
}

// listenInNetns serves TCP on [::]:svcPort in ns, proves it answers from ns
// itself, and returns what it accepted since.
func listenInNetns(t *testing.T, ns string) func() []string {
	t.Helper()
	var ln net.Listener
	err := testbed.InNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", svcPort))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, c.RemoteAddr().String())
			mu.Unlock()
			c.Close()
		}
	}()
	c, err := dialInNetns("/var/run/netns/"+ns)(t.Context(), "tcp", fmt.Sprintf("%s:%d", svcIP, svcPort))
	if err != nil {
		t.Fatalf("the host's own service does not answer the host: %v", err)
	}
	c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener never recorded the host's own connection to %s:%d", svcIP, svcPort)
		}
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got[1:])
	}
}

// hostLearnt is what the host could learn from a port: its IPv6 routes (all
// tables) and addresses, and its neighbours of both families, as sorted lines.
func hostLearnt(t *testing.T, ns string) []string {
	t.Helper()
	nh := netlinkIn(t, ns)
	var out []string
	routes, err := nh.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		out = append(out, fmt.Sprintf("route table %d dst %v gw %v dev %d", r.Table, r.Dst, r.Gw, r.LinkIndex))
	}
	addrs, err := nh.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		out = append(out, fmt.Sprintf("addr %s dev %d", a.IPNet, a.LinkIndex))
	}
	neighs, err := nh.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		// Multicast entries are the host's own sending (MLD, IGMP, DAD).
		if n.IP != nil && !n.IP.IsMulticast() {
			out = append(out, fmt.Sprintf("neigh %s dev %d", n.IP, n.LinkIndex))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hostLinkLocals lists every IPv6 link-local address the host namespace has.
func hostLinkLocals(t *testing.T, ns string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, line := range hostLearnt(t, ns) {
		var a, dev string
		if _, err := fmt.Sscanf(line, "addr %s dev %s", &a, &dev); err == nil {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().IsLinkLocalUnicast() {
				out = append(out, p.Addr())
			}
		}
	}
	return out
}

var counterRe = regexp.MustCompile(`counter packets (\d+)`)

// ovsDrops reads the OVS backend's drop counters of the ports' links: inet
// prerouting and arp input. Other backends: nil.
func ovsDrops(t *testing.T, kind, ns string) []int {
	t.Helper()
	if kind != "ovs" {
		return nil
	}
	var out []int
	for _, chain := range [][]string{{"inet", "prerouting"}, {"arp", "input"}} {
		text := testbed.Run(t, "ip", "netns", "exec", ns, "nft", "list", "chain", chain[0], "ovs_vnet", chain[1])
		m := counterRe.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no counter in %s:\n%s", chain, text)
		}
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// wire is the workload's side of a port: frames written come out of the
// host end into the host; frames read are what the host end sent.
type wire struct {
	name    string
	f       *os.File
	port    portView
	hostEnd net.HardwareAddr
	mu      sync.Mutex
	got     [][]byte
	done    chan struct{}
}

func newWire(t *testing.T, name string, f *os.File, p portView, hostEnd net.HardwareAddr) *wire {
	w := &wire{name: name, f: f, port: p, hostEnd: hostEnd, done: make(chan struct{})}
	t.Cleanup(func() { f.Close() })
	go func() {
		defer close(w.done)
		buf := make([]byte, 65536)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			w.mu.Lock()
			w.got = append(w.got, slices.Clone(buf[:n]))
			w.mu.Unlock()
		}
	}()
	return w
}

// openPacketWire opens a packet socket on the veth port's interface in its
// namespace, as a workload's raw socket would.
func openPacketWire(t *testing.T, hostNS, ns string, p portView) *wire {
	t.Helper()
	var fd int
	err := testbed.InNetns(ns, func() error {
		ifc, err := net.InterfaceByName(p.Ifname)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index})
	})
	if err != nil {
		t.Fatalf("packet socket on %s in %s: %v", p.Ifname, ns, err)
	}
	return newWire(t, "veth "+p.Name, os.NewFile(uintptr(fd), "packet"), p, linkIn(t, hostNS, p.HostIfname).Attrs().HardwareAddr)
}

// ifreqFlags is struct ifreq with its union holding flags, as TUNSETIFF wants it.
type ifreqFlags struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// openTapWire attaches to the persistent tap as a VM would: /dev/net/tun,
// TUNSETIFF with the tap's name, in the tap's (the host's) namespace.
func openTapWire(t *testing.T, hostNS string, p portView) *wire {
	t.Helper()
	var fd int
	err := testbed.InNetns(hostNS, func() (err error) {
		if fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		var req ifreqFlags
		copy(req.name[:unix.IFNAMSIZ-1], p.HostIfname)
		req.flags = unix.IFF_TAP | unix.IFF_NO_PI
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
			return fmt.Errorf("TUNSETIFF: %w", errno)
		}
		return unix.SetNonblock(fd, true)
	})
	if err != nil {
		t.Fatalf("attach to tap %s: %v", p.HostIfname, err)
	}
	return newWire(t, "tap "+p.Name, os.NewFile(uintptr(fd), "tap"), p, linkIn(t, hostNS, p.HostIfname).Attrs().HardwareAddr)
}

// probe writes what a hostile workload would into the host end — a router
// advertisement, an ARP request for the host's address, TCP SYNs to the
// host's service over IPv4 and to every host link-local address (the host
// end's own EUI-64 one included) — and waits until the host end took them.
func (w *wire) probe(t *testing.T, hostNS, kind string, linkLocals []netip.Addr) {
	t.Helper()
	mac, _ := net.ParseMAC(w.port.MAC)
	ip := netip.MustParsePrefix(w.port.IP).Addr()
	svc := netip.MustParseAddr(svcIP)
	ll := eui64(mac)
	targets := append([]netip.Addr{eui64(w.hostEnd)}, linkLocals...)
	frames := [][]byte{
		ethernet(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, mac, unix.ETH_P_IPV6, routerAdvertisement(ll, mac)),
		ethernet(broadcastMAC, mac, unix.ETH_P_ARP, arpRequest(mac, ip, svc)),
		ethernet(w.hostEnd, mac, unix.ETH_P_IP, ipv4(ip, svc, unix.IPPROTO_TCP, tcpSYN(ip, svc))),
	}
	for _, dst := range targets {
		frames = append(frames, ethernet(w.hostEnd, mac, unix.ETH_P_IPV6, ipv6(ll, dst, unix.IPPROTO_TCP, 64, tcpSYN(ll, dst))))
	}
	rx := linkIn(t, hostNS, w.port.HostIfname).Attrs().Statistics.RxPackets
	discards := ip6InDiscards(t, hostNS, w.port.HostIfname)
	for _, f := range frames {
		if _, err := w.f.Write(f); err != nil {
			t.Fatalf("%s: write a frame: %v", w.name, err)
		}
	}
	waitFor(t, fmt.Sprintf("%s: the host end receives the %d frames", w.name, len(frames)), func() bool {
		return linkIn(t, hostNS, w.port.HostIfname).Attrs().Statistics.RxPackets >= rx+uint64(len(frames))
	})
	if kind != "ovs" {
		return
	}
	// On the userspace datapath the host's IPv6 saw them — and dropped them
	// (an error, not the end: what the host did with them is checked next).
	want := discards + 1 + len(targets)
	for deadline := time.Now().Add(10 * time.Second); ip6InDiscards(t, hostNS, w.port.HostIfname) < want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%s: Ip6InDiscards of %s did not reach %d: the host's IPv6 took the frames", w.name, w.port.HostIfname, want)
			return
		}
	}
}

// checkNothingFromHost: nothing the host's stack sent reached the workload:
// no frame from the host end's MAC, no IPv6, no ARP or IPv4 from the
// host's own address.
func (w *wire) checkNothingFromHost(t *testing.T) {
	t.Helper()
	// Whatever the host answered went out while it took the probes, before
	// their witnesses moved; a second drains what is queued.
	_ = w.f.SetReadDeadline(time.Now().Add(time.Second))
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	svc := netip.MustParseAddr(svcIP).As4()
	for _, f := range w.got {
		if len(f) < 14 {
			continue
		}
		etype := binary.BigEndian.Uint16(f[12:14])
		fromHost := slices.Equal(f[6:12], w.hostEnd) || etype == unix.ETH_P_IPV6 ||
			etype == unix.ETH_P_ARP && len(f) >= 42 && [4]byte(f[28:32]) == svc ||
			etype == unix.ETH_P_IP && len(f) >= 34 && [4]byte(f[26:30]) == svc
		if fromHost {
			t.Errorf("%s: the host answered: frame type %#04x from %s: % x", w.name, etype, net.HardwareAddr(f[6:12]), f[:min(len(f), 64)])
		}
	}
}

// connectFromPort: real connects from the veth port's namespace to the
// host's service fail — over IPv4 to the host's address, pointed at the host
// end's MAC by a neighbour entry, and over IPv6 to every host link-local
// address through the port's interface.
func connectFromPort(t *testing.T, hostNS, ns string, p portView) {
	t.Helper()
	hostEnd := linkIn(t, hostNS, p.HostIfname).Attrs().HardwareAddr
	testbed.Run(t, "ip", "-n", ns, "route", "add", svcIP+"/32", "dev", p.Ifname)
	testbed.Run(t, "ip", "-n", ns, "neigh", "replace", svcIP, "lladdr", hostEnd.String(), "dev", p.Ifname, "nud", "permanent")
	// A connect from a tentative address would fail for the wrong reason.
	waitFor(t, "the port's link-local address is usable", func() bool {
		out := testbed.Run(t, "ip", "-n", ns, "-6", "addr", "show", "dev", p.Ifname, "scope", "link")
		return strings.Contains(out, "inet6 fe80") && !strings.Contains(out, "tentative")
	})
	// The gateway answers ping only: the host's service is not behind it.
	targets := []string{fmt.Sprintf("%s:%d", svcIP, svcPort), fmt.Sprintf("%s:%d", p.Gateway, svcPort)}
	for _, a := range append([]netip.Addr{eui64(hostEnd)}, hostLinkLocals(t, hostNS)...) {
		targets = append(targets, netip.AddrPortFrom(a.WithZone(p.Ifname), svcPort).String())
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, target := range targets {
		wg.Go(func() {
			errs[i] = testbed.InNetns(ns, func() error {
				c, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err == nil {
					c.Close()
				}
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Errorf("port %s connected to the host's service at %s", p.Name, targets[i])
		} else if !errors.Is(err, unix.EHOSTUNREACH) && !errors.Is(err, unix.ETIMEDOUT) && !os.IsTimeout(err) {
			t.Logf("connect to %s: %v", targets[i], err)
		}
	}
}

func ip6InDiscards(t *testing.T, ns, ifname string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/dev_snmp6/"+ifname).CombinedOutput()
	if err != nil {
		return 0 // no IPv6 on this kernel or link
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Ip6InDiscards" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
