package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// BenchmarkAtScale attaches -ports veth ports with -clients concurrent API
// clients, each into its own namespace, and then measures what a host of
// that size costs and how the daemon restarts on it:
//
//   - concurrent: total time of the attaches, and p50/p99 of one;
//   - rss: the daemon's resident memory now and at its peak, and the CPU
//     time it spent on the attaches;
//   - restart: SIGTERM, then a new daemon on the same state: the time from
//     its start until /readyz answers 200, and (OVS) the flows and groups
//     the switch saw change meanwhile — a flow monitor on the bridge and its
//     group table, not the daemon's own metrics; anything but 0 fails, as
//     nothing changed.
//
// The attaches run once per backend, before the sub-benchmarks, which only
// report; each sub-benchmark can still be picked alone with -bench.
func BenchmarkAtScale(b *testing.B) {
	for _, k := range []struct {
		name, backend string
		extra         []string
	}{
		{"ovs", "ovs", nil},
		{"ovs-spares", "ovs", []string{"--spare-ports", "64"}},
		{"linux", "linux", nil},
	} {
		b.Run(k.name, func(b *testing.B) {
			hostNS := newNetns(b, "vnt-host-")
			d, box := startBenchDaemon(b, hostNS, k.backend, k.extra...)
			d.must("PUT", "/v1/networks/bench", `{"subnet":"10.80.0.0/16"}`, 201, nil)
			if k.extra != nil {
				waitSpares(b, d)
			}
			namespaces := make([]string, *benchPorts)
			for i := range namespaces {
				namespaces[i] = newNetns(b, "vnt-c-")
			}
			cpu := testbed.CPUTime(b, d.cmd.Process.Pid)
			start := time.Now()
			lat := attachConcurrently(b, d, 0, namespaces, *benchClients)
			total := time.Since(start)
			cpu = testbed.CPUTime(b, d.cmd.Process.Pid) - cpu

			b.Run("concurrent", func(b *testing.B) {
				p50, p99 := percentiles(lat)
				b.ReportMetric(float64(len(lat)), "ports")
				b.ReportMetric(total.Seconds(), "total-s")
				b.ReportMetric(p50, "p50-ms")
				b.ReportMetric(p99, "p99-ms")
				b.ReportMetric(0, "ns/op")
			})
			b.Run("rss", func(b *testing.B) {
				status := testbed.ProcStatus(b, d.cmd.Process.Pid)
				b.ReportMetric(status["VmRSS"]/1024, "rss-MB")
				b.ReportMetric(status["VmHWM"]/1024, "peak-rss-MB")
				b.ReportMetric(cpu.Seconds(), "attach-cpu-s")
				b.ReportMetric(0, "ns/op")
			})
			b.Run("restart", func(b *testing.B) {
				// Passive witnesses only: a snoop (TestLiveChanges) would
				// decode the restart's flow dumps on the same CPUs as the
				// restart being timed.
				var flows *flowWatch
				var groups map[string]string
				if box != nil {
					flows = watchFlows(b, box, "br-vnet")
					groups = groupTable(b, box, "br-vnet")
				}
				d.stop()
				start := time.Now()
				d.launch()
				for {
					if code, _ := d.do("GET", "/readyz", nil); code == http.StatusOK {
						break
					}
					if time.Since(start) > time.Minute {
						b.Fatalf("not ready after a minute:\n%s", d.log)
					}
					time.Sleep(5 * time.Millisecond)
				}
				b.ReportMetric(time.Since(start).Seconds()*1000, "ready-ms")
				m := scrapeSamples(b, d)
				b.ReportMetric(m["ovs_vnet_reconcile_duration_seconds_sum"]*1000, "reconcile-ms")
				if box != nil {
					changes := 0
					for _, c := range []map[string]int{flows.changes(), groupChanges(groups, groupTable(b, box, "br-vnet"))} {
						for _, n := range c {
							changes += n
						}
					}
					b.ReportMetric(float64(changes), "flow-mods")
					if changes != 0 {
						b.Errorf("restart: the switch saw %d flow and group changes, want none", changes)
					}
				}
				b.ReportMetric(0, "ns/op")
			})
		})
	}
}

// attachConcurrently attaches port c<first+i> into namespaces[i], in the
// security groups listed, from clients goroutines and returns each attach's
// latency.
func attachConcurrently(b *testing.B, d *daemon, first int, namespaces []string, clients int, groups ...string) []time.Duration {
	lat := make([]time.Duration, len(namespaces))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for range clients {
		wg.Go(func() {
			for i := range next {
				start := time.Now()
				code, body := d.do("PUT", fmt.Sprintf("/v1/ports/c%d", first+i), benchPortSpec(namespaces[i], groups))
				lat[i] = time.Since(start)
				if code != 201 {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("c%d: %d %s", first+i, code, body))
					mu.Unlock()
				}
			}
		})
	}
	for i := range namespaces {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(failed) > 0 {
		b.Fatalf("%d of %d attaches failed, first: %s", len(failed), len(namespaces), failed[0])
	}
	return lat
}

// scrapeSamples returns the daemon's metric samples by their full name with
// labels, as the exposition writes them.
func scrapeSamples(b *testing.B, d *daemon) map[string]float64 {
	b.Helper()
	code, body := d.do("GET", "/metrics", nil)
	if code != 200 {
		b.Fatalf("GET /metrics: %d", code)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}
