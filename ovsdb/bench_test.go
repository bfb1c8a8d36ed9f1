package ovsdb

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkAddPortWaitOfport adds b.N veth ports to a netdev bridge one by
// one and times each AddPort + WaitOfport: the attach path's OVSDB floor,
// which grows with the bridge (docs/DESIGN.md §7). Run it with a fixed count, e.g.
// -benchtime=200x, so that N is the bridge size asked for.
func BenchmarkAddPortWaitOfport(b *testing.B) {
	s := sb
	c := dial(b, s)
	const br = "br-bench"
	names := make([]string, b.N)
	for i := range names {
		names[i] = fmt.Sprintf("vnb%d", i)
	}
	// One ip -batch for all pairs keeps b.N subprocesses out of the run.
	ipBatch(b, s, names, "link add %[1]s type veth peer name %[1]sp\nlink set %[1]s up\n")
	b.Cleanup(func() { ipBatch(b, s, names, "link del %s\n") })
	// After the veths, so that its cleanup runs first: ovs-vswitchd then
	// drops the ports at once instead of one vanished device at a time.
	ensureTestBridge(b, s, c, br)

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		err := c.AddPort(ctx, br, PortSpec{Name: name})
		if err == nil {
			_, err = c.WaitOfport(ctx, name)
		}
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(quantileMs(lat, 0.50), "p50-ms")
	b.ReportMetric(quantileMs(lat, 0.99), "p99-ms")
}

func ipBatch(b *testing.B, s *sandbox, names []string, format string) {
	b.Helper()
	var cmds strings.Builder
	for _, n := range names {
		fmt.Fprintf(&cmds, format, n)
	}
	f := s.path("ip.batch")
	if err := os.WriteFile(f, []byte(cmds.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	if _, err := s.ip("-batch", f); err != nil {
		b.Fatal(err)
	}
}

// quantileMs is the nearest-rank quantile of sorted durations, in ms.
func quantileMs(sorted []time.Duration, q float64) float64 {
	i := int(q*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}
