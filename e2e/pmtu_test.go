package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestPMTU: a router between a network of MTU 9000 and one of 1500. A
// packet too big for the smaller network, sent with DF, must draw ICMP
// "fragmentation needed" with the next-hop MTU from the gateway of the
// sender's network — without it path MTU discovery has nothing to learn
// from and TCP stalls (a PMTU black hole). Frames of 9000 bytes must cross
// the larger network intact.
//
// All three backend cases: with userspace TSO the switch sees TCP
// super-packets whole, which path_mtu must let through.
func TestPMTU(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) { runPMTU(t, bc) })
	}
}

func runPMTU(t *testing.T, bc backendCase) {
	hostNS := newNetns(t, "vnt-host-")
	args, box := bc.setup(t, hostNS)
	d := startDaemon(t, hostNS, args...)
	d.must("PUT", "/v1/networks/jumbo", `{"subnet":"10.91.0.0/24","mtu":9000}`, 201, nil)
	d.must("PUT", "/v1/networks/small", `{"subnet":"10.92.0.0/24","mtu":1500}`, 201, nil)
	d.must("PUT", "/v1/routers/r1", `{"networks":["jumbo","small"]}`, 201, nil)
	nsJ1, nsJ2, nsS1 := newNetns(t, "vnt-j1-"), newNetns(t, "vnt-j2-"), newNetns(t, "vnt-s1-")
	var j1, s1 portView
	d.must("PUT", "/v1/ports/j1", map[string]string{"network": "jumbo", "netns": nsJ1, "ip": "10.91.0.11"}, 201, &j1)
	d.must("PUT", "/v1/ports/j2", map[string]string{"network": "jumbo", "netns": nsJ2, "ip": "10.91.0.12"}, 201, nil)
	d.must("PUT", "/v1/ports/s1", map[string]string{"network": "small", "netns": nsS1, "ip": "10.92.0.11"}, 201, &s1)

	d.must("PUT", "/v1/ports/jt", `{"network":"jumbo","type":"tap","ifname":"vnt-jtap0"}`, 201, nil)

	// Both ends of a port's link, and a tap, carry the network's MTU.
	for _, l := range []struct{ ns, dev string }{{nsJ1, "eth0"}, {hostNS, j1.HostIfname}, {hostNS, "vnt-jtap0"}, {nsS1, "eth0"}} {
		want := 9000
		if l.ns == nsS1 {
			want = 1500
		}
		if got := linkMTU(t, l.ns, l.dev); got != want {
			t.Errorf("MTU of %s in %s: %d, want %d", l.dev, l.ns, got, want)
		}
	}
	// The datapath carries whole 9000-byte frames between two ports.
	if out, err := exec.Command("ip", "netns", "exec", nsJ1, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2",
		"-M", "do", "-s", "8972", "10.91.0.12").CombinedOutput(); err != nil {
		t.Errorf("9000-byte frames in the jumbo network: %v\n%s", err, out)
	}

	// TCP's MSS would hide the path MTU between two networks a router
	// joins directly (each end announces what its own link carries), so
	// the small network's end announces a jumbo MSS, as a host beyond a
	// larger link would: the transfer then completes only if the ICMP
	// reaches the sender and it lowers its segments. Without the ICMP it
	// stalls until TransferTCP's deadline.
	testbed.Run(t, "ip", "-n", nsS1, "route", "replace", "10.91.0.0/24", "via", s1.Gateway, "dev", "eth0", "advmss", "8960")
	testbed.TransferTCP(t, nsJ1, nsS1, "10.92.0.11", 1<<20)
	if out := testbed.Run(t, "ip", "-n", nsJ1, "route", "get", "10.92.0.11"); !strings.Contains(out, "mtu 1500") {
		t.Errorf("the sender learnt no path MTU for 10.92.0.11: %s", out)
	}

	// The ICMP itself: from the sender's gateway, with the next hop's MTU.
	checkFragNeeded(t, nsJ1, j1.Gateway)
	// Within the MTU the router forwards as before.
	ping(t, nsJ1, "10.92.0.11", true)

	// A restarted daemon finds its meter on the bridge and answers again.
	d.stop()
	d.start()
	checkFragNeeded(t, nsJ1, j1.Gateway)

	if box != nil {
		// The meter is the pipeline's, reconciled as flows are: the
		// switch itself shows it after the restart.
		if meters := box.Ofctl(t, "dump-meters", "br-vnet"); !strings.Contains(meters, "meter=1979711489 ") {
			t.Errorf("no path-MTU meter 0x76000001 on the bridge:\n%s", meters)
		}
		if flows := box.Ofctl(t, "dump-flows", "br-vnet"); !strings.Contains(flows, "check_pkt_larger(1514)") {
			t.Errorf("no check_pkt_larger(1514) on the bridge:\n%s", flows)
		}
		// The copies to the controller pass the meter in the datapath
		// itself (the ping's megaflow is still cached).
		if dp := box.Appctl(t, "dpctl/dump-flows"); !strings.Contains(dp, "check_pkt_len(size=1514,gt(sample(sample=100.0%,actions(meter(") {
			t.Errorf("no metered check_pkt_len in the datapath:\n%s", dp)
		}
		// The restarted daemon's own count: the last ping's ICMP.
		waitMetricAtLeast(t, d, "ovs_vnet_pmtu_icmp_sent_total", 1)
	}
}

// checkFragNeeded pings 10.92.0.11 from ns with DF and 4,000 bytes, with
// the path MTU forgotten: the answer must be the ICMP from gw. A few tries,
// each waiting generously: on a loaded machine the daemon's answer may be
// late, and a reply that is not the ICMP fails at once.
func checkFragNeeded(t *testing.T, ns, gw string) {
	t.Helper()
	var out []byte
	for range 5 {
		testbed.Run(t, "ip", "-n", ns, "route", "flush", "cache")
		out, _ = exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "5",
			"-M", "do", "-s", "4000", "10.92.0.11").CombinedOutput()
		if strings.Contains(string(out), "From "+gw) && strings.Contains(string(out), "mtu = 1500") {
			return
		}
		if strings.Contains(string(out), "bytes from") {
			break // the packet was delivered whole: no router in the way
		}
	}
	t.Errorf("ping -M do -s 4000 across the router: want frag needed (mtu = 1500) from %s, got\n%s", gw, out)
}

func linkMTU(t *testing.T, ns, dev string) int {
	t.Helper()
	f := strings.Fields(testbed.Run(t, "ip", "-n", ns, "-o", "link", "show", "dev", dev))
	for i, w := range f {
		if w == "mtu" && i+1 < len(f) {
			mtu, _ := strconv.Atoi(f[i+1])
			return mtu
		}
	}
	t.Fatalf("no MTU for %s in %s", dev, ns)
	return 0
}

// waitMetricAtLeast waits for an unlabelled counter to reach min: the
// daemon counts after the packet-out it sent.
func waitMetricAtLeast(t *testing.T, d *daemon, name string, min float64) {
	t.Helper()
	var v float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v, _ = strconv.ParseFloat(metricValue(t, d, name), 64); v >= min {
			return
		}
	}
	t.Errorf("%s = %v, want at least %v", name, v, min)
}
