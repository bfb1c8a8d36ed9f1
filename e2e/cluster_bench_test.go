package e2e

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// clusterRounds is how many ports BenchmarkCluster times on each side of the
// propagation figure; never more than -ports, so the smoke run (-ports=8)
// takes 8.
var clusterRounds = flag.Int("cluster-rounds", 20, "ports BenchmarkCluster times per side (at most -ports)")

// BenchmarkCluster is issue 9's speed section, on three hosts made by
// hack/cluster.sh (a 3-member etcd, VXLAN between the hosts), per backend:
//
//   - propagate: the time from sending PUT /v1/ports of a veth port on h1
//     until a port on h2 gets an ICMP echo answer from it. The baseline,
//     same-host, is the same with the new port on h2 itself, so nothing
//     has to travel through etcd. The two alternate port by port, so drift
//     of the machine hits both alike.
//   - flows: with 0, -ports/4, -ports/2 and -ports tap ports on h1 in
//     network blue, what h2 (a port in blue: it must hold all of them) and h3
//     (a port only in green: it must hold none) hold. Two figures per host:
//     ovs_vnet_remote_ports, the remote ports the daemon handed its datapath
//     (the same on both backends), and what the datapath holds for them —
//     on OVS every flow of ours on the bridge (GET /v1/flows: the fixed
//     pipeline, the local ports' and the remote ports'), on Linux the
//     overlay's kernel entries (VXLAN FDB, static bridge FDB, permanent
//     neighbours on our devices: the rest of the Linux backend is per
//     network or per local port and does not grow with other hosts' ports).
//
// The measuring runs once per backend, before the sub-benchmarks, which
// only report (as BenchmarkAtScale's).
func BenchmarkCluster(b *testing.B) {
	testbed.Need(b, lookPath("etcd"), "etcd (apt-get install etcd-server)")
	for _, backend := range []string{"ovs", "linux"} {
		b.Run(backend, func(b *testing.B) {
			c := startCluster(b, backend, 3, "--log-level", "warn")
			h1, h2, h3 := c.hosts["h1"], c.hosts["h2"], c.hosts["h3"]
			h1.must("PUT", "/v1/networks/blue", `{"subnet":"10.62.0.0/16"}`, http.StatusCreated, nil)
			h1.must("PUT", "/v1/networks/green", `{"subnet":"10.63.0.0/24"}`, http.StatusCreated, nil)
			for _, h := range []*daemon{h2, h3} {
				benchWait(b, "both networks on "+h.hostNS, func() bool {
					var l struct{ Networks []struct{ Name string } }
					h.must("GET", "/v1/networks", nil, http.StatusOK, &l)
					return len(l.Networks) == 2
				})
			}
			// h3's only port is in green, where nobody else has one.
			h3.must("PUT", "/v1/ports/g3", `{"network":"green","type":"tap"}`, http.StatusCreated, nil)
			// The prober's port: on h2, in blue.
			probeNS := newNetns(b, "vnt-cp-")
			h2.must("PUT", "/v1/ports/a2", map[string]string{"network": "blue", "netns": probeNS, "ifname": "eth0"}, http.StatusCreated, nil)
			probe := newProber(b, probeNS)

			prop, same := measurePropagation(b, c, probe)
			for _, s := range []struct {
				name string
				lat  propagation
			}{{"propagate", prop}, {"same-host", same}} {
				b.Run(s.name, func(b *testing.B) {
					p50, p99 := percentiles(s.lat.ping)
					put50, _ := percentiles(s.lat.put)
					b.ReportMetric(float64(len(s.lat.ping)), "samples")
					b.ReportMetric(p50, "p50-ms")
					b.ReportMetric(p99, "p99-ms")
					b.ReportMetric(put50, "put-p50-ms")
					b.ReportMetric(0, "ns/op")
				})
			}

			state := measureHostState(b, c, backend)
			b.Run("flows", func(b *testing.B) {
				unit := dpUnit(backend)
				for _, s := range state {
					for h, v := range map[string]hostState{"h2": s.h2, "h3": s.h3} {
						b.ReportMetric(float64(v.remote), fmt.Sprintf("remote-ports-%s@%d", h, s.ports))
						b.ReportMetric(float64(v.dp), fmt.Sprintf("%s-%s@%d", unit, h, s.ports))
					}
				}
				b.ReportMetric(float64(state[len(state)-1].ports), "ports")
				b.ReportMetric(0, "ns/op")
			})
		})
	}
}

// dpUnit names what a backend's datapath holds per host.
func dpUnit(backend string) string {
	if backend == "ovs" {
		return "flows"
	}
	return "entries"
}

// propagation is one side's latencies: PUT until its answer, and PUT until
// the first echo answer at the prober.
type propagation struct{ put, ping []time.Duration }

// measurePropagation attaches veth ports in blue alternately on h1
// (propagate) and on h2 (same-host), ABBA, and times each until the prober on
// h2 hears it. The first port of each side is a warm-up and not counted: on
// h1 it is the host's first port in blue, which also makes h1 take on
// blue's remote ports. Afterwards the ports are deleted again, and h2 back
// at no remote port.
func measurePropagation(b *testing.B, c *cluster, probe *prober) (prop, same propagation) {
	rounds := max(1, min(*clusterRounds, *benchPorts))
	var made []string // "host/port"
	for i := range rounds + 1 {
		for k := range 2 {
			onH1 := (k+i)%2 == 0
			host, into := "h2", &same
			if onH1 {
				host, into = "h1", &prop
			}
			name := fmt.Sprintf("p%s-%d", host, i)
			// An explicit address and MAC: the prober starts with the PUT,
			// before the answer could tell it the allocated ones.
			ip := netip.AddrFrom4([4]byte{10, 62, byte(1 + k + 2*(i/200)), byte(10 + i%200)})
			mac := fmt.Sprintf("02:62:00:%02x:%02x:%02x", k, i>>8&0xff, i&0xff)
			ns := newNetns(b, "vnt-cp-")
			put, ping := timeAttach(b, c.hosts[host], probe, name, ns, ip, mac)
			made = append(made, host+"/"+name)
			if i > 0 {
				into.put, into.ping = append(into.put, put), append(into.ping, ping)
			}
		}
	}
	for _, hp := range made {
		host, name, _ := strings.Cut(hp, "/")
		c.hosts[host].must("DELETE", "/v1/ports/"+name, nil, http.StatusNoContent, nil)
	}
	return prop, same
}

// timeAttach PUTs port name into ns on d with address ip and MAC mac, and
// returns the time until the answer and until the prober's first echo
// answer from ip, both from the moment the PUT was sent.
//
// The prober is given the port's MAC beforehand (a permanent neighbour
// entry), so that it sends its echo requests straight away: resolving it by
// ARP would put the kernel's retry timer (retrans_time_ms, 1 s, no less than
// 10 ms) between the moment the path works and the moment the prober learns
// it. The new port still resolves the prober's MAC by ARP, through the
// overlay, before it can answer.
func timeAttach(b *testing.B, d *daemon, probe *prober, name, ns string, ip netip.Addr, mac string) (put, ping time.Duration) {
	testbed.Run(b, "ip", "-n", probe.ns, "neigh", "replace", ip.String(), "lladdr", mac, "dev", "eth0", "nud", "permanent")
	type answer struct {
		code int
		body []byte
		at   time.Time
	}
	answered, failed := make(chan answer, 1), make(chan struct{})
	start := time.Now()
	go func() {
		code, body := d.do("PUT", "/v1/ports/"+name, map[string]string{"network": "blue", "netns": ns, "ifname": "eth0", "ip": ip.String(), "mac": mac})
		answered <- answer{code, body, time.Now()}
		if code != http.StatusCreated {
			close(failed) // no answer is coming: do not wait for the deadline
		}
	}()
	heard, err := probe.until(ip, start.Add(time.Minute), failed)
	a := <-answered
	if a.code != http.StatusCreated {
		b.Fatalf("PUT /v1/ports/%s on %s: %d %s", name, d.hostNS, a.code, a.body)
	}
	if err != nil {
		b.Fatalf("port %s (%s) on %s: %v", name, ip, d.hostNS, err)
	}
	return a.at.Sub(start), heard.Sub(start)
}

// hostState is what one host holds for other hosts' ports: the remote ports
// its daemon handed the datapath, and the datapath's flows or entries.
type hostState struct{ remote, dp int }

type stateStep struct {
	ports  int // tap ports on h1 in blue
	h2, h3 hostState
}

// measureHostState grows the tap ports on h1 in blue to -ports in four steps
// and reads h2's and h3's state at each, once h2 holds all of them.
func measureHostState(b *testing.B, c *cluster, backend string) []stateStep {
	n := *benchPorts
	steps := []int{0}
	for _, s := range []int{n / 4, n / 2, n} {
		if s > steps[len(steps)-1] {
			steps = append(steps, s)
		}
	}
	var out []stateStep
	have := 0
	for _, s := range steps {
		attachTaps(b, c.hosts["h1"], have, s)
		have = s
		benchWait(b, fmt.Sprintf("h2 holding %d remote ports", s), func() bool {
			return remotePortsOf(b, c.hosts["h2"]) == s
		})
		out = append(out, stateStep{ports: s, h2: readHostState(b, c.hosts["h2"], backend), h3: readHostState(b, c.hosts["h3"], backend)})
	}
	return out
}

// attachTaps attaches tap ports t<from>…t<to-1> in blue on d with
// -clients concurrent clients.
func attachTaps(b *testing.B, d *daemon, from, to int) {
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for range *benchClients {
		wg.Go(func() {
			for i := range next {
				if code, body := d.do("PUT", fmt.Sprintf("/v1/ports/t%d", i), `{"network":"blue","type":"tap"}`); code != http.StatusCreated {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("t%d: %d %s", i, code, body))
					mu.Unlock()
				}
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(failed) > 0 {
		b.Fatalf("%d of %d tap attaches failed, first: %s", len(failed), to-from, failed[0])
	}
}

func readHostState(b *testing.B, d *daemon, backend string) hostState {
	s := hostState{remote: remotePortsOf(b, d)}
	if backend == "ovs" {
		var l struct{ Flows []json.RawMessage }
		d.must("GET", "/v1/flows", nil, http.StatusOK, &l)
		s.dp = len(l.Flows)
	} else {
		s.dp = overlayEntryCount(b, d.hostNS)
	}
	return s
}

// remotePortsOf reads the daemon's ovs_vnet_remote_ports gauge (-1 before
// it was first set).
func remotePortsOf(b *testing.B, d *daemon) int {
	v, ok := scrapeSamples(b, d)["ovs_vnet_remote_ports"]
	if !ok {
		return -1
	}
	return int(v)
}

// overlayEntryCount counts the Linux backend's overlay entries in a host
// namespace, as datapath/linux/remote.go writes them: on our VXLAN devices
// the FDB entries of the device itself (a remote port's MAC → its host; the
// all-zero MAC → each host to flood to) and the bridge's static entries (a
// remote port's MAC → the VXLAN port), and the permanent neighbours on
// their bridges (a remote port's IP → its MAC).
func overlayEntryCount(b *testing.B, hostNS string) int {
	ns, err := netns.GetFromName(hostNS)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		b.Fatalf("links in %s: %v", hostNS, err)
	}
	vxlans, bridges := map[int]bool{}, map[int]bool{}
	for _, l := range links {
		if a := l.Attrs(); strings.HasPrefix(a.Alias, datapath.OwnerAlias+"vxlan=") {
			vxlans[a.Index] = true
			if a.MasterIndex != 0 {
				bridges[a.MasterIndex] = true
			}
		}
	}
	count := 0
	for _, n := range neighList(b, h, syscall.AF_BRIDGE) {
		switch {
		case !vxlans[n.LinkIndex]:
		case n.MasterIndex != 0 || n.Flags&netlink.NTF_MASTER != 0:
			// static: ours; permanent (the port's own MAC) and dynamic: the kernel's
			if n.State&netlink.NUD_NOARP != 0 && n.State&netlink.NUD_PERMANENT == 0 {
				count++
			}
		case n.Flags&netlink.NTF_SELF != 0 && n.IP != nil:
			count++
		}
	}
	for _, n := range neighList(b, h, syscall.AF_INET) {
		if bridges[n.LinkIndex] && n.State&netlink.NUD_PERMANENT != 0 {
			count++
		}
	}
	return count
}

func neighList(b *testing.B, h *netlink.Handle, family int) []netlink.Neigh {
	for range 5 {
		l, err := h.NeighList(0, family)
		if err == nil {
			return l
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			b.Fatalf("neighbours (family %d): %v", family, err)
		}
	}
	b.Fatalf("neighbours (family %d): dump interrupted 5 times", family)
	return nil
}

// benchWait polls cond every 20 ms for up to a minute.
func benchWait(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// prober sends ICMP echo requests from a namespace through a raw socket
// made there, and tells when the first answer arrives: a finer clock than
// ping(8) in a loop, whose failed tries each wait for their -W.
type prober struct {
	ns   string
	conn net.PacketConn
	id   uint16
}

// probeEvery is the prober's send interval: its resolution.
const probeEvery = 2 * time.Millisecond

func newProber(b *testing.B, ns string) *prober {
	var conn net.PacketConn
	if err := testbed.InNetns(ns, func() (err error) {
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		b.Fatalf("ICMP socket in %s: %v", ns, err)
	}
	b.Cleanup(func() { conn.Close() })
	return &prober{ns: ns, conn: conn, id: uint16(time.Now().UnixNano())}
}

// until probes ip every probeEvery and returns when the first answer
// arrives, or an error at deadline or once stop is closed.
func (p *prober) until(ip netip.Addr, deadline time.Time, stop <-chan struct{}) (time.Time, error) {
	p.id++ // a new identifier per target: late answers to earlier probes do not count
	id := p.id
	heard := make(chan time.Time, 1)
	if err := p.conn.SetReadDeadline(deadline); err != nil {
		return time.Time{}, err
	}
	defer func() {
		// The reader is done before the socket serves the next target.
		_ = p.conn.SetReadDeadline(time.Now())
		for range heard {
		}
	}()
	go func() {
		defer close(heard)
		buf := make([]byte, 1500)
		for {
			n, from, err := p.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			// The kernel strips the IPv4 header: an echo reply is type 0, code 0.
			if a, ok := from.(*net.IPAddr); ok && a.IP.Equal(ip.AsSlice()) && n >= 8 && buf[0] == 0 && buf[1] == 0 && binary.BigEndian.Uint16(buf[4:]) == id {
				heard <- time.Now()
				return
			}
		}
	}()
	dst := &net.IPAddr{IP: ip.AsSlice()}
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for seq := uint16(0); ; seq++ {
		// A failed send (no route yet, a full buffer) loses only that probe.
		_, _ = p.conn.WriteTo(echoRequest(id, seq), dst)
		select {
		case at, ok := <-heard:
			if !ok {
				return time.Time{}, fmt.Errorf("no echo answer from %s until %s", ip, deadline.Format(time.TimeOnly))
			}
			return at, nil
		case <-stop:
			return time.Time{}, fmt.Errorf("stopped probing %s", ip)
		case <-tick.C:
		}
	}
}

// echoRequest is an ICMP echo request with a checksum.
func echoRequest(id, seq uint16) []byte {
	m := make([]byte, 16) // 8 of header, 8 of payload
	m[0] = 8              // echo request
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	var sum uint32
	for i := 0; i < len(m); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(m[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(m[2:], ^uint16(sum))
	return m
}
