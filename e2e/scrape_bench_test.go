package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// BenchmarkScrape times GET /metrics with -ports ports attached (tap
// devices: the exporter's cost does not depend on the port type) and reports
// the daemon's CPU time per scrape, from /proc. Attaching is not timed.
func BenchmarkScrape(b *testing.B) {
	for _, bc := range []struct {
		name string
		args func(b *testing.B, hostNS string) []string
	}{
		{"ovs", func(b *testing.B, hostNS string) []string {
			box := testbed.StartSandbox(b, repoRoot, hostNS)
			return []string{"--backend", "ovs", "--ovsdb", "unix:" + box.DBSock, "--bridge", "br-vnet"}
		}},
		{"linux", func(*testing.B, string) []string { return []string{"--backend", "linux", "--bridge", "vnbr"} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hostNS := newNetns(b, "vnt-host-")
			d := startDaemon(b, hostNS, append(bc.args(b, hostNS), "--log-level", "warn")...)
			d.must("PUT", "/v1/networks/bench", `{"subnet":"10.84.0.0/20"}`, 201, nil)
			for i := range *benchPorts {
				d.must("PUT", fmt.Sprintf("/v1/ports/t%d", i), fmt.Sprintf(`{"network":"bench","type":"tap","ifname":"vt%d"}`, i), 201, nil)
			}
			d.do("GET", "/metrics", nil) // warm: the first scrape allocates the caches
			cpu := testbed.CPUTime(b, d.cmd.Process.Pid)
			b.ResetTimer()
			for range b.N {
				if code, body := d.do("GET", "/metrics", nil); code != 200 || !strings.Contains(string(body), fmt.Sprintf(`port="t%d"`, *benchPorts-1)) {
					b.Fatalf("/metrics: %d", code)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(*benchPorts), "ports")
			b.ReportMetric(float64((testbed.CPUTime(b, d.cmd.Process.Pid)-cpu).Microseconds())/float64(b.N)/1000, "cpu-ms/scrape")
		})
	}
}
