package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// The reachability test is the acceptance of the pipeline (issue 4): three
// networks, a router joining two of them, masquerade on one, and an "outside"
// namespace behind the host. Every expectation is checked both ways — what
// must get through and what must not — on both backends.

const (
	hostOutsideIP = "198.51.100.1" // the host's end of the uplink: masquerade's source
	outsideIP     = "198.51.100.2"
	spoofIP       = "10.61.0.77" // an unused blue address b2 pretends to own
	spoofMAC      = "02:00:00:00:00:99"
	unusedBlueIP  = "10.61.0.250" // nobody answers: the kernel keeps broadcasting ARP
)

type netSpec struct {
	name, subnet, gateway string
	masquerade            bool
}

var reachNets = []netSpec{
	{"blue", "10.61.0.0/24", "10.61.0.1", true},
	{"red", "10.62.0.0/24", "10.62.0.1", false},
	{"green", "10.63.0.0/24", "10.63.0.1", false},
}

// routed names the networks router r1 joins.
var routed = map[string]bool{"blue": true, "red": true}

// reachable is the whole routing policy in one line: same network, or both on
// the router.
func reachable(a, b string) bool { return a == b || (routed[a] && routed[b]) }

// wPort is a port under test with the workload namespace it lives in.
type wPort struct {
	name, network, ip, ns string
	view                  portView
}

// probeRules count, on a namespace's eth0 ingress, exactly the packets the
// assertions are about, so that unrelated noise (IPv6 neighbour discovery,
// the host's own chatter) cannot make a check pass or fail.
const probeRules = `table netdev vntprobe {
	counter arp250 {}
	counter spoofmac {}
	counter spoofip {}
	counter outside {}
	counter private {}
	chain in {
		type filter hook ingress device "eth0" priority 0; policy accept;
		arp operation request arp daddr ip ` + unusedBlueIP + ` counter name "arp250"
		ether saddr ` + spoofMAC + ` counter name "spoofmac"
		ip saddr ` + spoofIP + ` counter name "spoofip"
		arp saddr ip ` + spoofIP + ` counter name "spoofip"
		ip saddr 198.51.100.0/24 icmp type echo-request counter name "outside"
		ip saddr 10.60.0.0/14 counter name "private"
	}
}
`

func TestReachability(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) { runReachability(t, bc) })
	}
}

func runReachability(t *testing.T, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	outNS := newOutside(t, hostNS)
	d := startDaemon(t, hostNS, args...)

	for _, n := range reachNets {
		d.must("PUT", "/v1/networks/"+n.name, map[string]any{"subnet": n.subnet, "masquerade": n.masquerade}, 201, nil)
	}
	// A router that cannot be made is a failure, not the end: the matrix
	// below then shows exactly what is missing.
	routerOK := true
	if code, body := d.do("PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`); code != 201 {
		t.Errorf("PUT /v1/routers/r1: status %d, want 201: %s", code, body)
		routerOK = false
	}

	ports := []*wPort{
		{name: "b1", network: "blue", ip: "10.61.0.11"},
		{name: "b2", network: "blue", ip: "10.61.0.12"},
		{name: "r1p", network: "red", ip: "10.62.0.11"},
		{name: "g1", network: "green", ip: "10.63.0.11"},
	}
	byName := map[string]*wPort{}
	var workloads []string
	for _, p := range ports {
		p.ns = newNetns(t, "vnt-"+p.name+"-")
		d.must("PUT", "/v1/ports/"+p.name, map[string]string{"network": p.network, "netns": p.ns, "ifname": "eth0", "ip": p.ip}, 201, &p.view)
		installProbe(t, p.ns)
		byName[p.name] = p
		workloads = append(workloads, p.ns)
	}
	b1, b2 := byName["b1"], byName["b2"]

	checkMatrix(t, ports)
	checkOutside(t, hostNS, outNS, ports)
	checkBroadcast(t, b1, ports)
	checkSpoofing(t, bc.kind, hostNS, box, b1, b2)

	if bc.kind == "ovs" {
		// The routed path rewrites MACs and decrements the TTL; TCP must
		// still take the userspace TSO path and arrive intact. A subtest,
		// as transferTCP stops at its first failure and the delete checks
		// below must still run.
		t.Run("tcp-across-router", func(t *testing.T) {
			testbed.TransferTCP(t, b1.ns, byName["r1p"].ns, byName["r1p"].ip, 10<<20)
		})
	}

	// Whatever crossed the uplink must carry the host's address: a private
	// source reaching the outside means masquerade leaked.
	if c := probeCounters(t, outNS); c["private"] != 0 {
		t.Errorf("the outside received %d packets with a 10.6x source (unmasqueraded)", c["private"])
	}

	for _, p := range ports {
		d.must("DELETE", "/v1/ports/"+p.name, nil, 204, nil)
	}
	if routerOK {
		d.must("DELETE", "/v1/routers/r1", nil, 204, nil)
	}
	for _, n := range reachNets {
		d.must("DELETE", "/v1/networks/"+n.name, nil, 204, nil)
	}
	var routers struct{ Routers []json.RawMessage }
	if code, body := d.do("GET", "/v1/routers", nil); code != 200 || json.Unmarshal(body, &routers) != nil || len(routers.Routers) != 0 {
		t.Errorf("GET /v1/routers after deleting everything: %d %s", code, body)
	}
	d.stop()
	assertNothingLeft(t, hostNS, box, d.stateDir, workloads...)
}

// newOutside makes the "outside" namespace joined to the host namespace by a
// veth pair. It has no route to the networks: only masquerade can bring its
// replies back.
func newOutside(t *testing.T, hostNS string) string {
	t.Helper()
	outNS := newNetns(t, "vnt-out-")
	testbed.Run(t, "ip", "-n", hostNS, "link", "add", "vnt-up0", "type", "veth", "peer", "name", "eth0", "netns", outNS)
	testbed.Run(t, "ip", "-n", hostNS, "addr", "add", hostOutsideIP+"/24", "dev", "vnt-up0")
	testbed.Run(t, "ip", "-n", hostNS, "link", "set", "vnt-up0", "up")
	testbed.Run(t, "ip", "-n", outNS, "addr", "add", outsideIP+"/24", "dev", "eth0")
	testbed.Run(t, "ip", "-n", outNS, "link", "set", "eth0", "up")
	installProbe(t, outNS)
	return outNS
}

// probe is one yes/no expectation and what happened.
type probe struct {
	from, to     string
	want, got    bool
	wantTTL, ttl int // 0: TTL not checked
	out          string
}

func (p probe) ok() bool { return p.got == p.want && (p.wantTTL == 0 || !p.got || p.ttl == p.wantTTL) }

var ttlRE = regexp.MustCompile(`ttl=(\d+)`)

// pingFrom reports whether any echo reply came back, and the TTL of the first.
func pingFrom(ns, ip string, extra ...string) (ok bool, ttl int, out string) {
	args := append([]string{"netns", "exec", ns, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1"}, extra...)
	b, err := exec.Command("ip", append(args, ip)...).CombinedOutput()
	if m := ttlRE.FindSubmatch(b); m != nil {
		ttl, _ = strconv.Atoi(string(m[1]))
	}
	return err == nil, ttl, string(b)
}

// runProbes pings all at once (the "no" cases each wait out their timeout)
// and reports every mismatch in one table.
func runProbes(t *testing.T, what string, probes []probe, nsOf map[string]string, ipOf map[string]string) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range probes {
		wg.Add(1)
		go func(p *probe) {
			defer wg.Done()
			p.got, p.ttl, p.out = pingFrom(nsOf[p.from], ipOf[p.to])
		}(&probes[i])
	}
	wg.Wait()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tWANT\tGOT\tTTL (WANT)\t")
	bad := 0
	for _, p := range probes {
		mark := ""
		if !p.ok() {
			mark, bad = "<-- WRONG", bad+1
		}
		ttl := "-"
		if p.wantTTL != 0 {
			ttl = fmt.Sprintf("%d (%d)", p.ttl, p.wantTTL)
			if p.ttl == 0 {
				ttl = fmt.Sprintf("none (%d)", p.wantTTL)
			}
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\n", p.from, p.to, ipOf[p.to], yn(p.want), yn(p.got), ttl, mark)
	}
	tw.Flush()
	if bad > 0 {
		t.Errorf("%s: %d of %d expectations broken:\n%s", what, bad, len(probes), b.String())
		for _, p := range probes {
			if !p.ok() {
				t.Logf("%s → %s:\n%s", p.from, p.to, p.out)
			}
		}
	} else {
		t.Logf("%s:\n%s", what, b.String())
	}
}

func yn(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// checkMatrix: every port to every other port and to every gateway.
func checkMatrix(t *testing.T, ports []*wPort) {
	t.Helper()
	nsOf, ipOf := map[string]string{}, map[string]string{}
	for _, p := range ports {
		nsOf[p.name], ipOf[p.name] = p.ns, p.ip
	}
	for _, n := range reachNets {
		ipOf["gw-"+n.name] = n.gateway
	}
	var pp, gw []probe
	for _, a := range ports {
		for _, b := range ports {
			if a == b {
				continue
			}
			pr := probe{from: a.name, to: b.name, want: reachable(a.network, b.network)}
			switch {
			case !pr.want:
			case a.network == b.network:
				pr.wantTTL = 64
			default:
				pr.wantTTL = 63 // one routed hop
			}
			pp = append(pp, pr)
		}
		for _, n := range reachNets {
			gw = append(gw, probe{from: a.name, to: "gw-" + n.name, want: reachable(a.network, n.name)})
		}
	}
	runProbes(t, "port → port", pp, nsOf, ipOf)
	runProbes(t, "port → gateway", gw, nsOf, ipOf)
}

// checkOutside: egress through masquerade, and no way in from outside.
func checkOutside(t *testing.T, hostNS, outNS string, ports []*wPort) {
	t.Helper()
	nsOf, ipOf := map[string]string{"outside": outNS}, map[string]string{"outside": outsideIP}
	var out, in []probe
	for _, p := range ports {
		nsOf[p.name], ipOf[p.name] = p.ns, p.ip
		out = append(out, probe{from: p.name, to: "outside", want: p.network == "blue"})
	}
	runProbes(t, "port → outside", out, nsOf, ipOf)

	checkMasqueradeSource(t, outNS, ports[0])

	// Even an outside that knows the way (a route via the host) must not
	// open anything into a network: masquerade is egress only.
	testbed.Run(t, "ip", "-n", outNS, "route", "add", "10.60.0.0/14", "via", hostOutsideIP)
	before := map[string]int{}
	for _, p := range ports {
		before[p.name] = probeCounters(t, p.ns)["outside"]
		in = append(in, probe{from: "outside", to: p.name, want: false})
	}
	runProbes(t, "outside → port (with a route via the host)", in, nsOf, ipOf)
	for _, p := range ports {
		if got := probeCounters(t, p.ns)["outside"] - before[p.name]; got != 0 {
			t.Errorf("outside → %s: %d packets from the outside reached the port", p.name, got)
		}
	}
	testbed.Run(t, "ip", "-n", outNS, "route", "del", "10.60.0.0/14", "via", hostOutsideIP)
}

// checkMasqueradeSource connects from a blue port to a listener in the
// outside namespace: the outside must see the host's address, and its answer
// must find the way back.
func checkMasqueradeSource(t *testing.T, outNS string, p *wPort) {
	t.Helper()
	if p.network != "blue" {
		t.Fatalf("checkMasqueradeSource wants a blue port, got %s", p.name)
	}
	var ln net.Listener
	if err := testbed.InNetns(outNS, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(outsideIP, "0"))
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", outNS, err)
	}
	defer ln.Close()
	type accepted struct {
		remote string
		err    error
	}
	got := make(chan accepted, 1)
	go func() {
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			got <- accepted{err: err}
			return
		}
		defer c.Close()
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		_, err = fmt.Fprintf(c, "hello %s\n", host)
		got <- accepted{remote: host, err: err}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// bash's /dev/tcp is the smallest client present everywhere; timeout(1)
	// bounds a SYN that is silently dropped.
	script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%s && read -r line <&3 && echo "$line"`, outsideIP, port)
	out, err := exec.Command("ip", "netns", "exec", p.ns, "timeout", "10", "bash", "-c", script).CombinedOutput()
	a := <-got
	if a.err != nil || a.remote != hostOutsideIP {
		t.Errorf("masquerade: the outside accepted from %q (err %v), want the host's %s", a.remote, a.err, hostOutsideIP)
	}
	if want := "hello " + hostOutsideIP; err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("masquerade: %s read %q (err %v), want %q: the reply did not come back", p.name, strings.TrimSpace(string(out)), err, want)
	}
}

// checkBroadcast: b1's ARP requests for an unused blue address reach b2 and
// no port of another network.
func checkBroadcast(t *testing.T, from *wPort, ports []*wPort) {
	t.Helper()
	before := map[string]int{}
	for _, p := range ports {
		before[p.name] = probeCounters(t, p.ns)["arp250"]
	}
	// -c 4 spans four ARP retransmit periods: at least three requests leave.
	out, err := exec.Command("ip", "netns", "exec", from.ns, "ping", "-n", "-c", "4", "-W", "1", unusedBlueIP).CombinedOutput()
	if err == nil {
		t.Errorf("ping %s from %s answered, want no one there:\n%s", unusedBlueIP, from.name, out)
	}
	var b strings.Builder
	bad := false
	for _, p := range ports {
		if p == from {
			continue
		}
		n := probeCounters(t, p.ns)["arp250"] - before[p.name]
		want := "0"
		ok := n == 0
		if p.network == from.network {
			want, ok = ">= 3", n >= 3
		}
		mark := ""
		if !ok {
			mark, bad = "  <-- WRONG", true
		}
		fmt.Fprintf(&b, "  %s (%s): %d ARP requests for %s, want %s%s\n", p.name, p.network, n, unusedBlueIP, want, mark)
	}
	if bad {
		t.Errorf("broadcast from %s:\n%s", from.name, b.String())
	} else {
		t.Logf("broadcast from %s:\n%s", from.name, b.String())
	}
}

// checkSpoofing: b2 sends with a foreign IP, then with a foreign MAC; b1
// must see none of it, and b2's spoof drop counter must rise each time.
func checkSpoofing(t *testing.T, kind, hostNS string, box *testbed.Sandbox, b1, b2 *wPort) {
	t.Helper()
	counted := true
	drops := func() int {
		n, found := spoofDrops(t, kind, hostNS, box, b2.view)
		counted = counted && found
		return n
	}
	start := drops()
	c0 := probeCounters(t, b1.ns)

	testbed.Run(t, "ip", "-n", b2.ns, "addr", "add", spoofIP+"/24", "dev", "eth0")
	if ok, _, out := pingFrom(b2.ns, b1.ip, "-I", spoofIP); ok {
		t.Errorf("spoofing: %s pinged %s from foreign address %s, want nothing through:\n%s", b2.name, b1.name, spoofIP, out)
	}
	testbed.Run(t, "ip", "-n", b2.ns, "addr", "del", spoofIP+"/24", "dev", "eth0")
	afterIP := drops()
	if counted && afterIP <= start {
		t.Errorf("spoofing: %s's spoof drop counter %d → %d after sending from %s, want it to rise", b2.name, start, afterIP, spoofIP)
	}

	testbed.Run(t, "ip", "-n", b2.ns, "link", "set", "dev", "eth0", "address", spoofMAC)
	if ok, _, out := pingFrom(b2.ns, b1.ip); ok {
		t.Errorf("spoofing: %s pinged %s with foreign MAC %s, want nothing through:\n%s", b2.name, b1.name, spoofMAC, out)
	}
	testbed.Run(t, "ip", "-n", b2.ns, "link", "set", "dev", "eth0", "address", b2.view.MAC)
	afterMAC := drops()
	if !counted {
		t.Errorf("spoofing: no spoof drop counter found for port %s (host_ifname %s, ofport %d)", b2.name, b2.view.HostIfname, b2.view.Ofport)
	} else if afterMAC <= afterIP {
		t.Errorf("spoofing: %s's spoof drop counter %d → %d after sending with MAC %s, want it to rise", b2.name, afterIP, afterMAC, spoofMAC)
	}

	c1 := probeCounters(t, b1.ns)
	for _, k := range []string{"spoofip", "spoofmac"} {
		if c1[k] != c0[k] {
			t.Errorf("spoofing: %d packets (%s) from %s reached %s", c1[k]-c0[k], k, b2.name, b1.name)
		}
	}
	// The real identity works again at once: the drop was for the lie only.
	if ok, _, out := pingFrom(b2.ns, b1.ip); !ok {
		t.Errorf("spoofing: %s with its own MAC and IP again cannot reach %s:\n%s", b2.name, b1.name, out)
	}
	t.Logf("spoof drop counter of %s: %d → %d (IP) → %d (MAC)", b2.name, start, afterIP, afterMAC)
}

// spoofDrops returns the packets the backend dropped as spoofed from port p,
// and whether it found a counter for them at all.
func spoofDrops(t *testing.T, kind, hostNS string, box *testbed.Sandbox, p portView) (int, bool) {
	t.Helper()
	if kind == "ovs" {
		return ovsSpoofDrops(t, box, p)
	}
	return nftSpoofDrops(t, hostNS, p)
}

var nPacketsRE = regexp.MustCompile(`n_packets=(\d+)`)

// ovsSpoofDrops reads the port's spoof drop flow: table 10 (port security),
// priority 100, in_port=<ofport>, actions=drop.
func ovsSpoofDrops(t *testing.T, box *testbed.Sandbox, p portView) (int, bool) {
	t.Helper()
	total, found := 0, false
	for _, line := range strings.Split(box.Ofctl(t, "dump-flows", "br-vnet", fmt.Sprintf("table=10,in_port=%d", p.Ofport)), "\n") {
		if !strings.Contains(line, "priority=100,") || !strings.HasSuffix(strings.TrimSpace(line), "actions=drop") {
			continue
		}
		if m := nPacketsRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			total, found = total+n, true
		}
	}
	return total, found
}

// nftSpoofDrops reads the port's spoof drop counter on the Linux backend: the
// named counter `spoof_<port name>` in table `bridge ovs_vnet` (see
// datapath/linux/ports.go). Read by hand, not through the package, so that
// the test stays an independent witness.
func nftSpoofDrops(t *testing.T, hostNS string, p portView) (int, bool) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", hostNS, "nft", "-j", "list", "counter", "bridge", "ovs_vnet", "spoof_"+p.Name).CombinedOutput()
	if err != nil {
		t.Logf("nft list counter bridge ovs_vnet spoof_%s: %v: %s", p.Name, err, out)
		return 0, false
	}
	var v struct {
		Nftables []struct {
			Counter *struct {
				Name    string
				Packets int
			}
		}
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("nft -j list counter: %v\n%s", err, out)
	}
	for _, o := range v.Nftables {
		if o.Counter != nil && o.Counter.Name == "spoof_"+p.Name {
			return o.Counter.Packets, true
		}
	}
	return 0, false
}

// installProbe loads the counting table into a namespace the test made.
func installProbe(t *testing.T, ns string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(probeRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("probe table in %s: %v\n%s", ns, err, out)
	}
}

// probeCounters reads the probe table's counters by name.
func probeCounters(t *testing.T, ns string) map[string]int {
	t.Helper()
	out := testbed.Run(t, "ip", "netns", "exec", ns, "nft", "-j", "list", "counters", "table", "netdev", "vntprobe")
	var v struct {
		Nftables []struct {
			Counter *struct {
				Name    string
				Packets int
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("probe counters in %s: %v\n%s", ns, err, out)
	}
	m := map[string]int{}
	for _, o := range v.Nftables {
		if o.Counter != nil {
			m[o.Counter.Name] = o.Counter.Packets
		}
	}
	return m
}
