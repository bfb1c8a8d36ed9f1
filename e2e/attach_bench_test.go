package e2e

import (
	"flag"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// The size of the scale benchmarks; `make bench` runs them at 1,000, the
// smoke run in `make test` at a few ports.
var (
	benchPorts   = flag.Int("ports", 1000, "ports the scale benchmarks (AttachSeq, AtScale, Scrape) attach")
	benchClients = flag.Int("clients", 16, "concurrent API clients of BenchmarkAtScale")
)

// attachKind is one way to attach ports: the daemon on a backend, or the
// by-hand sequence it replaces. setup prepares a host namespace and returns
// the attach of port i into namespace ns, which returns once the port
// forwards (for the daemon: its answer; by hand: the last command's exit).
type attachKind struct {
	name  string
	setup func(b *testing.B, hostNS string) (attach func(i int, ns string) error)
}

var attachKinds = []attachKind{
	{"ovs", daemonAttach("ovs")},
	{"ovs-spares", daemonAttach("ovs", "--spare-ports", "64")},
	{"linux", daemonAttach("linux")},
	{"by-hand-ovs", handAttachOVS},
	{"by-hand-linux", handAttachLinux},
}

// BenchmarkAttachSeq attaches -ports veth ports, one after another, each
// into a fresh namespace (made before the clock starts: it is the caller's),
// and reports p50 and p99 per step of a tenth of them ("p99-ms@300": ports
// 201–300), and the last step's p99 over the first's ("x-p99-growth").
// The by-hand sequences are the baseline, measured in the same run.
func BenchmarkAttachSeq(b *testing.B) {
	for _, k := range attachKinds {
		b.Run(k.name, func(b *testing.B) {
			b.StopTimer()
			hostNS := newNetns(b, "vnt-host-")
			attach := k.setup(b, hostNS)
			var lat []time.Duration
			for i := range *benchPorts {
				ns := newNetns(b, "vnt-s-")
				start := time.Now()
				if err := attach(i, ns); err != nil {
					b.Fatalf("port %d: %v", i, err)
				}
				lat = append(lat, time.Since(start))
			}
			reportSteps(b, lat)
		})
	}
}

// daemonAttach starts the daemon on backend with a /16 network and returns
// PUT /v1/ports of a veth. With spare ports it waits for them first, as a
// host that has been up for a while has them.
func daemonAttach(backend string, extra ...string) func(b *testing.B, hostNS string) func(int, string) error {
	return func(b *testing.B, hostNS string) func(int, string) error {
		d, _ := startBenchDaemon(b, hostNS, backend, extra...)
		d.must("PUT", "/v1/networks/bench", `{"subnet":"10.80.0.0/16"}`, 201, nil)
		if slices.Contains(extra, "--spare-ports") {
			waitSpares(b, d)
		}
		return func(i int, ns string) error {
			code, body := d.do("PUT", fmt.Sprintf("/v1/ports/p%d", i), map[string]string{"network": "bench", "netns": ns})
			if code != 201 {
				return fmt.Errorf("PUT: %d %s", code, body)
			}
			return nil
		}
	}
}

// startBenchDaemon runs the daemon on backend in hostNS (with its own OVS
// sandbox, returned; nil on Linux), logging only warnings: debug logs of
// thousands of flows would be part of what is measured.
func startBenchDaemon(b *testing.B, hostNS, backend string, extra ...string) (*daemon, *testbed.Sandbox) {
	var box *testbed.Sandbox
	args := []string{"--backend", "linux", "--bridge", "vnbr"}
	if backend == "ovs" {
		box = testbed.StartSandbox(b, repoRoot, hostNS)
		args = []string{"--backend", "ovs", "--ovsdb", "unix:" + box.DBSock, "--bridge", "br-vnet"}
	}
	return startDaemon(b, hostNS, append(append(args, extra...), "--log-level", "warn")...), box
}

// handAttachOVS is what a person types for an OVS port: a veth born with
// its end in the namespace, its address, both ends up, and ovs-vsctl
// add-port, which returns once ovs-vswitchd has added the port. tag=1 stands
// for the per-network isolation the daemon's flows provide.
func handAttachOVS(b *testing.B, hostNS string) func(int, string) error {
	box := testbed.StartSandbox(b, repoRoot, hostNS)
	box.Vsctl(b, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
	return handScript(hostNS, func(host string) string {
		return "ovs-vsctl --db=unix:" + box.DBSock + " add-port br0 " + host + " tag=1"
	})
}

// handAttachLinux is the same with a Linux bridge.
func handAttachLinux(b *testing.B, hostNS string) func(int, string) error {
	testbed.Run(b, "ip", "-n", hostNS, "link", "add", "hbr0", "type", "bridge")
	testbed.Run(b, "ip", "-n", hostNS, "link", "set", "hbr0", "up")
	return handScript(hostNS, func(host string) string {
		return "ip -n " + hostNS + " link set " + host + " master hbr0"
	})
}

// handScript runs the common part of a by-hand attach, then join, as one
// shell script, as a person's script would.
func handScript(hostNS string, join func(host string) string) func(int, string) error {
	return func(i int, ns string) error {
		host := fmt.Sprintf("vh%d", i)
		ip := fmt.Sprintf("10.81.%d.%d/16", i/250, i%250+2)
		script := strings.Join([]string{
			"ip -n " + hostNS + " link add " + host + " type veth peer name eth0 netns " + ns,
			"ip -n " + ns + " addr add " + ip + " dev eth0",
			"ip -n " + ns + " link set eth0 up",
			"ip -n " + hostNS + " link set " + host + " up",
			join(host),
		}, " && ")
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", script, err, out)
		}
		return nil
	}
}

// reportSteps reports p50 and p99 of each tenth of lat, and the growth of
// p99 from the first tenth to the last.
func reportSteps(b *testing.B, lat []time.Duration) {
	step := max(1, len(lat)/10)
	var first, last float64
	for end := step; end <= len(lat); end += step {
		p50, p99 := percentiles(lat[end-step : end])
		b.ReportMetric(p50, fmt.Sprintf("p50-ms@%d", end))
		b.ReportMetric(p99, fmt.Sprintf("p99-ms@%d", end))
		if end == step {
			first = p99
		}
		last = p99
	}
	if first > 0 {
		b.ReportMetric(last/first, "x-p99-growth")
	}
	b.ReportMetric(0, "ns/op") // the time of a batch says nothing
}

// percentiles returns p50 and p99 of lat in ms; lat is sorted in place.
func percentiles(lat []time.Duration) (p50, p99 float64) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	return pct(0.50), pct(0.99)
}

var sparePortsLine = regexp.MustCompile(`(?m)^ovs_vnet_spare_ports [1-9]`)

// waitSpares waits until the daemon has spare ports for an attach to claim.
func waitSpares(t testing.TB, d *daemon) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, body := d.do("GET", "/metrics", nil); sparePortsLine.Match(body) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no spare ports after 30s")
}
