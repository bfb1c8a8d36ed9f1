package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestDHCP is issue 22's acceptance on each backend, with busybox udhcpc
// as the client (docs/DHCP.md): a configure:false port gets its address,
// gateway, DNS, domain and MTU, pings the gateway and another port, renews,
// keeps its address through a RELEASE and a daemon restart, never gets an
// answer meant for another port's MAC, and the network's DHCP fields and
// the port's configure change in place. The subtests share one daemon and
// run in order, each from where the last left the client.
func TestDHCP(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			needStaticBusybox(t)
			hostNS := newNetns(t, "vnt-dh-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			const network = `{"subnet":"10.81.0.0/24","mtu":1400,"dns":["10.81.0.53","9.9.9.9"],"domain":"lab.example"}`
			d.must("PUT", "/v1/networks/dh-a", network, 201, nil)
			nsA, nsB := newNetns(t, "vnt-dha-"), newNetns(t, "vnt-dhb-")
			var a, b portView
			d.must("PUT", "/v1/ports/a", map[string]any{"network": "dh-a", "netns": nsA, "configure": false}, 201, &a)
			d.must("PUT", "/v1/ports/b", map[string]any{"network": "dh-a", "netns": nsB}, 201, &b)
			aIP, _, _ := strings.Cut(a.IP, "/")
			bIP, _, _ := strings.Cut(b.IP, "/")
			if a.Configure == nil || *a.Configure {
				t.Fatalf("port a shows configure %v, want false", a.Configure)
			}
			// step runs a subtest on the shared daemon, whose must then
			// fails the subtest, not its parent.
			outer := t
			step := func(name string, f func(t *testing.T)) {
				outer.Run(name, func(t *testing.T) {
					d.t = t
					defer func() { d.t = outer }()
					f(t)
				})
			}
			step("lease", func(t *testing.T) {
				if addrs := ipv4Addrs(t, nsA); len(addrs) != 0 {
					t.Fatalf("the configure:false port's eth0 has addresses before DHCP: %v", addrs)
				}
				if mtu := linkMTU(t, nsA, "eth0"); mtu != 1400 {
					t.Errorf("the configure:false port's eth0 has MTU %d, want the network's 1400 before DHCP", mtu)
				}
				ok, events, log := runUdhcpc(t, nsA, "-f", "-q", "-n", "-t", "3", "-T", "1")
				if !ok {
					t.Fatalf("udhcpc got no lease; events %v; log:\n%s", events, log)
				}
				got := lastEvent(t, events, "bound").Fields
				want := map[string]string{"ip": aIP, "mask": "24", "router": "10.81.0.1", "dns": "10.81.0.53 9.9.9.9",
					"domain": "lab.example", "mtu": "1400", "lease": "86400", "serverid": "10.81.0.1"}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("bound: %s=%q, want %q (all: %v)", k, got[k], v, got)
					}
				}
				if addrs := ipv4Addrs(t, nsA); !slices.Equal(addrs, []string{a.IP}) {
					t.Errorf("eth0's addresses after the lease: %v, want %s", addrs, a.IP)
				}
			})

			step("ping", func(t *testing.T) {
				ping(t, nsA, "10.81.0.1", true)
				ping(t, nsA, bIP, true)
				ping(t, nsB, aIP, true)
			})

			// The client that keeps running from here on, the daemon's
			// restart included.
			client := startUdhcpc(t, nsA, "-f", "-t", "3", "-T", "1")

			step("renew", func(t *testing.T) {
				client.waitEvent(t, 0, "bound")
				before := dhcpCounters(t, d)
				e := client.signal(t, syscall.SIGUSR1, "renew")
				if e.Fields["ip"] != aIP || e.Fields["lease"] != "86400" {
					t.Errorf("renew: %v, want ip %s and lease 86400", e, aIP)
				}
				// One REQUEST, unless udhcpc missed the ACK of its unicast
				// one and broadcast it again after -T 1. On Linux, where
				// the answer comes within a millisecond, it does in about
				// one renewal of ten: a packet socket in the namespace saw
				// the ACK reach eth0 1 ms after the REQUEST and udhcpc
				// still time out: the client's miss, not the server's.
				// Every REQUEST must be ACKed.
				after := dhcpCounters(t, d)
				requests := after["requests{request}"] - before["requests{request}"]
				if acks := after["answers{ack}"] - before["answers{ack}"]; requests < 1 || acks != requests {
					t.Errorf("renew: %v REQUESTs and %v ACKs counted, want at least one, each ACKed", requests, acks)
				}
			})

			step("release", func(t *testing.T) {
				before := dhcpCounters(t, d)
				client.signal(t, syscall.SIGUSR2, "deconfig")
				waitFor(t, "the release to be counted", func() bool {
					return dhcpCounters(t, d)["requests{release}"]-before["requests{release}"] >= 1
				})
				checkCounted(t, "release", before, dhcpCounters(t, d), map[string]float64{"requests{release}": 1}, true)
				var again portView
				d.must("GET", "/v1/ports/a", nil, 200, &again)
				if again.IP != a.IP {
					t.Fatalf("port a after its RELEASE: %s, want %s still", again.IP, a.IP)
				}
				nsC := newNetns(t, "vnt-dhc-")
				conflict(t, d, "c", fmt.Sprintf(`{"network":"dh-a","netns":%q,"ip":%q}`, nsC, aIP))
				// From RELEASED, SIGUSR1 starts over: the same address again.
				if e := client.signal(t, syscall.SIGUSR1, "bound"); e.Fields["ip"] != aIP {
					t.Fatalf("bound again after the release: %v, want ip %s", e, aIP)
				}
			})

			step("restart", func(t *testing.T) {
				flowsBefore, metersBefore := ourFlows(t, box), ourMeters(t, box)
				d.kill()
				d.start()
				if e := client.signal(t, syscall.SIGUSR1, "renew"); e.Fields["ip"] != aIP {
					t.Fatalf("renew after the restart: %v, want ip %s", e, aIP)
				}
				if box == nil {
					return
				}
				flowsAfter := ourFlows(t, box)
				for k, before := range flowsBefore {
					if after, ok := flowsAfter[k]; !ok || after.duration < before.duration {
						t.Errorf("the restart replaced flow %s: before %+v, after %+v", k, before, after)
					}
				}
				if len(flowsAfter) != len(flowsBefore) {
					t.Errorf("%d flows before the restart, %d after", len(flowsBefore), len(flowsAfter))
				}
				metersAfter := ourMeters(t, box)
				for id, before := range metersBefore {
					if after, ok := metersAfter[id]; !ok || after.config != before.config || after.duration < before.duration {
						t.Errorf("the restart replaced meter %d: before %+v, after %+v", id, before, after)
					}
				}
				if len(metersBefore) == 0 || len(metersAfter) != len(metersBefore) {
					t.Errorf("%d meters before the restart, %d after", len(metersBefore), len(metersAfter))
				}
				if _, body := d.do("GET", "/metrics", nil); !strings.Contains(string(body), `ovs_vnet_openflow_flow_mods_total{op="add"} 0`) {
					t.Errorf("the restarted daemon sent flow mods")
				}
			})

			step("spoofed", func(t *testing.T) {
				order := dhcpOrder{Ifname: "eth0", Type: "discover", EthSrc: a.MAC, Chaddr: b.MAC, Wait: 2 * time.Second}
				before := dhcpCounters(t, d)
				if r := dhcpSend(t, nsA, order); len(r.Replies) != 0 {
					t.Errorf("a DISCOVER for b's MAC from a got %v", r.Replies)
				}
				checkCounted(t, "chaddr b's", before, dhcpCounters(t, d), map[string]float64{"refused{unknown_mac}": 1}, true)

				order.EthSrc = b.MAC
				before = dhcpCounters(t, d)
				if r := dhcpSend(t, nsA, order); len(r.Replies) != 0 {
					t.Errorf("a DISCOVER from a with b's MAC as the source got %v", r.Replies)
				}
				if bc.kind == "ovs" {
					// Not a's MAC: spoof_guard drops it before the intercept.
					checkCounted(t, "source b's", before, dhcpCounters(t, d), map[string]float64{"drop{spoofed}": 1}, false)
				} else {
					checkCounted(t, "source b's", before, dhcpCounters(t, d), map[string]float64{"refused{unknown_mac}": 1}, true)
				}

				order = dhcpOrder{Ifname: "eth0", Type: "request", EthSrc: a.MAC, Chaddr: a.MAC, Requested: bIP, Wait: 2 * time.Second}
				before = dhcpCounters(t, d)
				r := dhcpSend(t, nsA, order)
				if len(r.Replies) != 1 || r.Replies[0].Type != "nak" {
					t.Errorf("a REQUEST for b's address from a got %v, want one NAK", r.Replies)
				}
				checkCounted(t, "b's address", before, dhcpCounters(t, d), map[string]float64{"refused{wrong_address}": 1, "answers{nak}": 1}, true)

				// A client renewing, from that address, a lease of an address
				// that is no longer the port's: a NAK (RFC 2131 §4.3.2).
				order = dhcpOrder{Ifname: "eth0", Type: "request", EthSrc: a.MAC, Chaddr: a.MAC, Ciaddr: "10.81.0.200", Wait: 2 * time.Second}
				before = dhcpCounters(t, d)
				r = dhcpSend(t, nsA, order)
				if len(r.Replies) != 1 || r.Replies[0].Type != "nak" {
					t.Errorf("a renewal of a stale address from a got %v, want one NAK", r.Replies)
				}
				checkCounted(t, "stale renewal", before, dhcpCounters(t, d), map[string]float64{"refused{wrong_address}": 1, "answers{nak}": 1}, true)
			})

			step("configure_in_place", func(t *testing.T) {
				nsH := newNetns(t, "vnt-dhh-")
				var h portView
				d.must("PUT", "/v1/ports/h", map[string]any{"network": "dh-a", "netns": nsH}, 201, &h)
				hIP, _, _ := strings.Cut(h.IP, "/")
				index := linkIndex(t, nsH)
				pinger := startPing(t, nsB, hIP)
				time.Sleep(500 * time.Millisecond)
				var off portView
				d.must("PUT", "/v1/ports/h", map[string]any{"network": "dh-a", "netns": nsH, "configure": false}, 200, &off)
				if off.Configure == nil || *off.Configure {
					t.Errorf("port h after configure:false shows configure %v", off.Configure)
				}
				if got := linkIndex(t, nsH); got != index {
					t.Errorf("configure:false made eth0 anew: index %d, was %d", got, index)
				}
				if addrs := ipv4Addrs(t, nsH); !slices.Equal(addrs, []string{h.IP}) {
					t.Errorf("eth0's addresses after configure:false: %v, want %s kept", addrs, h.IP)
				}
				time.Sleep(500 * time.Millisecond)
				var on portView // not off: a field the answer leaves out would stay as it was
				d.must("PUT", "/v1/ports/h", map[string]any{"network": "dh-a", "netns": nsH}, 200, &on)
				if on.Configure != nil || linkIndex(t, nsH) != index {
					t.Errorf("port h after configure:true: configure %v, index %d (was %d)", on.Configure, linkIndex(t, nsH), index)
				}
				time.Sleep(500 * time.Millisecond)
				if r := pinger.stop(t); r.lost() != 0 || r.received == 0 {
					t.Errorf("ping to h while configure flipped: %s", r)
				}
				d.must("DELETE", "/v1/ports/h", nil, 204, nil)
			})

			step("network_in_place", func(t *testing.T) {
				d.must("PUT", "/v1/networks/dh-a", `{"subnet":"10.81.0.0/24","mtu":1400,"dns":["10.81.0.54"],"domain":"lab.example"}`, 200, nil)
				if e := client.signal(t, syscall.SIGUSR1, "renew"); e.Fields["dns"] != "10.81.0.54" || e.Fields["ip"] != aIP {
					t.Errorf("renew after the DNS change: %v, want dns 10.81.0.54", e)
				}
				client.stop(t)

				d.must("PUT", "/v1/networks/dh-a", `{"subnet":"10.81.0.0/24","mtu":1400,"dns":["10.81.0.54"],"domain":"lab.example","dhcp":false}`, 200, nil)
				before := dhcpCounters(t, d)
				if ok, events, log := runUdhcpc(t, nsA, "-f", "-q", "-n", "-t", "1", "-T", "1"); ok {
					t.Errorf("udhcpc got a lease with dhcp false; events %v; log:\n%s", events, log)
				}
				reason := "refused{dhcp_off}"
				if bc.kind == "ovs" {
					reason = "drop{dhcp_off}" // table 12 drops it; the daemon never sees it
				}
				checkCounted(t, "dhcp off", before, dhcpCounters(t, d), map[string]float64{reason: 1}, false)

				d.must("PUT", "/v1/networks/dh-a", `{"subnet":"10.81.0.0/24","mtu":1400,"dns":["10.81.0.54"],"domain":"lab.example","dhcp":true}`, 200, nil)
				if ok, events, log := runUdhcpc(t, nsA, "-f", "-q", "-n", "-t", "3", "-T", "1"); !ok || lastEvent(t, events, "bound").Fields["ip"] != aIP {
					t.Errorf("udhcpc with dhcp on again: ok %v; events %v; log:\n%s", ok, events, log)
				}
				code, body := d.do("PUT", "/v1/networks/dh-a", `{"subnet":"10.81.1.0/24","mtu":1400}`)
				if code != http.StatusConflict {
					t.Errorf("a subnet change: %d %s, want 409", code, body)
				}
			})
		})
	}
}

// TestDHCPRogueServer: a port is never heard as a DHCP server (docs/DHCP.md).
// Port r sends OFFERs that would make r the router and DNS server of port
// v, broadcast and to v's MAC, from its own MAC and address (so
// anti-spoofing passes them); a capture on v's eth0 hears none of them,
// while the same frames from UDP port 1067 instead of 67, sent alongside,
// reach it through the same capture.
func TestDHCPRogueServer(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-rg-")
			args, _ := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/rg", `{"subnet":"10.82.0.0/24"}`, 201, nil)
			nsR, nsV := newNetns(t, "vnt-rgr-"), newNetns(t, "vnt-rgv-")
			var r, v portView
			d.must("PUT", "/v1/ports/r", map[string]any{"network": "rg", "netns": nsR}, 201, &r)
			d.must("PUT", "/v1/ports/v", map[string]any{"network": "rg", "netns": nsV}, 201, &v)
			rIP, _, _ := strings.Cut(r.IP, "/")
			vIP, _, _ := strings.Cut(v.IP, "/")
			type probe struct {
				name    string
				srcPort uint16
				dstMAC  string
				dstIP   string
				xid     uint32
			}
			probes := []probe{
				{"rogue broadcast", dhcp.ServerPort, "ff:ff:ff:ff:ff:ff", "255.255.255.255", 0x76000001},
				{"rogue unicast", dhcp.ServerPort, v.MAC, vIP, 0x76000002},
				{"control broadcast", 1067, "ff:ff:ff:ff:ff:ff", "255.255.255.255", 0x76000003},
				{"control unicast", 1067, v.MAC, vIP, 0x76000004},
			}
			stopCapture := startCapture(t, nsV, "eth0")
			before := dhcpCounters(t, d)
			var frames [][]byte
			for _, p := range probes {
				frames = append(frames, rogueOffer(t, r.MAC, rIP, v.MAC, vIP, p.srcPort, p.dstMAC, p.dstIP, p.xid))
			}
			sendFrames(t, nsR, "eth0", frames)
			time.Sleep(time.Second)
			heard := stopCapture()
			for _, p := range probes {
				got, want := heard[p.xid], p.srcPort != dhcp.ServerPort
				if got != want {
					t.Errorf("%s from r (UDP %d→68): heard on v %v, want %v", p.name, p.srcPort, got, want)
				}
			}
			waitFor(t, "the rogue OFFERs to be counted", func() bool {
				return dhcpCounters(t, d)["drop{dhcp_server}"]-before["drop{dhcp_server}"] >= 2
			})
			checkCounted(t, "rogue OFFERs", before, dhcpCounters(t, d), map[string]float64{"drop{dhcp_server}": 2}, true)
		})
	}
}

// rogueOffer is the OFFER a rogue DHCP server on port r would send port v:
// v's address, with r as its router and DNS server.
func rogueOffer(t *testing.T, rMAC, rIP, vMAC, vIP string, srcPort uint16, dstMAC, dstIP string, xid uint32) []byte {
	t.Helper()
	chaddr, src, dst := mustMAC(t, vMAC), mustMAC(t, rMAC), mustMAC(t, dstMAC)
	server := netip.MustParseAddr(rIP)
	var id dhcpv4.TransactionID
	binary.BigEndian.PutUint32(id[:], xid)
	m, err := dhcpv4.New(dhcpv4.WithTransactionID(id), dhcpv4.WithHwAddr(chaddr), dhcpv4.WithYourIP(netip.MustParseAddr(vIP).AsSlice()),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer), dhcpv4.WithServerIP(server.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server.AsSlice())),
		dhcpv4.WithRouter(server.AsSlice()), dhcpv4.WithDNS(server.AsSlice()))
	if err != nil {
		t.Fatal(err)
	}
	m.OpCode = dhcpv4.OpcodeBootReply
	return dhcp.Frame(dhcp.Header{SrcMAC: src, DstMAC: dst, SrcIP: server, DstIP: netip.MustParseAddr(dstIP),
		SrcPort: srcPort, DstPort: dhcp.ClientPort}, m.ToBytes())
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	mac, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// sendFrames writes frames, whole, on ifname in ns.
func sendFrames(t *testing.T, ns, ifname string, frames [][]byte) {
	t.Helper()
	err := testbed.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, f := range frames {
			to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index, Halen: 6}
			copy(to.Addr[:], f[0:6])
			if err := unix.Sendto(fd, f, 0, to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send frames on %s in %s: %v", ifname, ns, err)
	}
}

// startCapture listens on ifname in ns, with a packet socket, for DHCP
// answers (UDP to port 68) until the function it returns is called, which
// returns the transaction IDs heard.
func startCapture(t *testing.T, ns, ifname string) func() map[uint32]bool {
	t.Helper()
	var fd int
	err := testbed.InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP))); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", ifname, ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	heard := map[uint32]bool{}
	stop := receive(fd, func(frame []byte) {
		h, payload, err := dhcp.ParseFrame(frame)
		if err != nil || h.DstPort != dhcp.ClientPort {
			return
		}
		if m, err := dhcpv4.FromBytes(payload); err == nil {
			heard[binary.BigEndian.Uint32(m.TransactionID[:])] = true
		}
	})
	return func() map[uint32]bool {
		stop()
		return heard
	}
}

// ipv4Addrs are the IPv4 addresses of eth0 in ns, with their prefixes.
func ipv4Addrs(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(testbed.Run(t, "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"), "\n") {
		f := strings.Fields(line)
		if i := slices.Index(f, "inet"); i >= 0 && i+1 < len(f) {
			out = append(out, f[i+1])
		}
	}
	return out
}

func linkIndex(t *testing.T, ns string) int {
	t.Helper()
	return linkIn(t, ns, "eth0").Attrs().Index
}

// meterState is one of our meters as ovs-ofctl shows it: its settings and
// how long it has existed.
type meterState struct {
	config   string
	duration float64
}

var (
	meterConfigRe = regexp.MustCompile(`^meter=(\d+) (.*)$`)
	meterStatsRe  = regexp.MustCompile(`meter:(\d+) .*duration:([\d.]+)s`)
)

// ourMeters are the bridge's meters with IDs in our space (0x76…).
func ourMeters(t *testing.T, box *testbed.Sandbox) map[uint64]meterState {
	t.Helper()
	out := map[uint64]meterState{}
	if box == nil {
		return out
	}
	for _, line := range strings.Split(box.Ofctl(t, "dump-meters", "br-vnet"), "\n") {
		if m := meterConfigRe.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			id, _ := strconv.ParseUint(m[1], 10, 32)
			if id>>24 == 0x76 {
				out[id] = meterState{config: m[2]}
			}
		}
	}
	for _, line := range strings.Split(box.Ofctl(t, "meter-stats", "br-vnet"), "\n") {
		if m := meterStatsRe.FindStringSubmatch(line); m != nil {
			id, _ := strconv.ParseUint(m[1], 10, 32)
			if s, ok := out[id]; ok {
				s.duration, _ = strconv.ParseFloat(m[2], 64)
				out[id] = s
			}
		}
	}
	return out
}
