package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// benchPorts is how many ports one iteration attaches, one after another.
const benchPorts = 100

// BenchmarkAttach measures PUT /v1/ports until the port forwards, on OVS (netdev
// datapath), and the by-hand sequence it replaces — ip netns add, veth, address,
// ovs-vsctl add-port — on an identical sandbox in the same run. Each iteration
// attaches benchPorts ports; run with -benchtime 1x for one pass.
func BenchmarkAttach(b *testing.B) {
	b.Run("ovs-vnet", func(b *testing.B) {
		hostNS := newNetns(b, "vnt-host-")
		box := testbed.StartSandbox(b, repoRoot, hostNS)
		d := startDaemon(b, hostNS, "--backend", "ovs", "--ovsdb", "unix:"+box.DBSock, "--bridge", "br-vnet", "--log-level", "info")
		d.must("PUT", "/v1/networks/bench", `{"subnet":"10.80.0.0/16"}`, 201, nil)
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			for j := range benchPorts {
				b.StopTimer()
				ns := newNetns(b, "vnt-p-")
				b.StartTimer()
				start := time.Now()
				d.must("PUT", fmt.Sprintf("/v1/ports/p%d-%d", i, j), map[string]string{"network": "bench", "netns": ns}, 201, nil)
				lat = append(lat, time.Since(start))
			}
		}
		report(b, lat)
	})
	b.Run("by-hand", func(b *testing.B) {
		hostNS := newNetns(b, "vnt-host-")
		box := testbed.StartSandbox(b, repoRoot, hostNS)
		box.Vsctl(b, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			for j := range benchPorts {
				ns := testbed.UniqueName("vnt-h-")
				b.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
				host := fmt.Sprintf("vh%d-%d", i, j)
				ip := fmt.Sprintf("10.81.%d.%d/16", j/250, j%250+2)
				start := time.Now()
				script := strings.Join([]string{
					"ip netns add " + ns,
					"ip -n " + hostNS + " link add " + host + " type veth peer name eth0 netns " + ns,
					"ip -n " + ns + " addr add " + ip + " dev eth0",
					"ip -n " + ns + " link set eth0 up",
					"ip -n " + ns + " link set lo up",
					"ip -n " + hostNS + " link set " + host + " up",
					"ovs-vsctl --db=unix:" + box.DBSock + " add-port br0 " + host + " tag=1",
				}, " && ")
				if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
					b.Fatalf("%s: %v\n%s", script, err, out)
				}
				lat = append(lat, time.Since(start))
			}
		}
		report(b, lat)
	})
}

func report(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // the per-iteration time of a batch says nothing
}
