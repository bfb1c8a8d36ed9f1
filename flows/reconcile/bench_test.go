package reconcile

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset/flowsettest"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

var benchFlows = flag.String("flows", "1000,10000,30000,100000", "flow counts BenchmarkInstall installs, comma-separated")

// BenchmarkInstall installs each count of -flows flows into an empty table
// of a real bridge, through our session and reconciler (one atomic bundle),
// and through `ovs-ofctl --bundle add-flows` with the same flows: the C
// tool's figure is the baseline, measured in the same run on the same
// bridge. Ours also reports this process's resident memory after the
// install ("rss-MB": the flows as the daemon holds them, plus the dump the
// reconciler compares them with).
func BenchmarkInstall(b *testing.B) {
	box := testbed.StartSandbox(b, "../..", "")
	box.Vsctl(b, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail_mode=secure",
		"protocols=OpenFlow13,OpenFlow14")
	clear := func() {
		b.StopTimer()
		box.Ofctl(b, "del-flows", "br0")
		b.StartTimer()
	}
	count := func() int { return strings.Count(box.Ofctl(b, "dump-flows", "br0"), "cookie=0x7600000000000001") }
	for _, field := range strings.Split(*benchFlows, ",") {
		n, err := strconv.Atoi(field)
		if err != nil || n < 1 {
			b.Fatalf("-flows: %q is not a count", field)
		}
		flows := flowsettest.Flows(n, space.Value|1)
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			b.Run("ovs-vnet", func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				conn, err := ofconn.Dial(ctx, box.Mgmt("br0"), ofconn.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				br := New(conn, space, NewMetrics(prometheus.NewRegistry()))
				var cpu time.Duration
				for i := 0; i < b.N; i++ {
					clear()
					start := testbed.CPUTime(b, os.Getpid())
					if _, err := br.Sync(ctx, flowset.Desired{Flows: flows}); err != nil {
						b.Fatal(err)
					}
					cpu += testbed.CPUTime(b, os.Getpid()) - start
				}
				b.StopTimer()
				b.ReportMetric(testbed.ProcStatus(b, os.Getpid())["VmRSS"]/1024, "rss-MB")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/1000, "cpu-ms/op")
				if got := count(); got != n {
					b.Fatalf("%d flows installed, want %d", got, n)
				}
			})
			b.Run("ovs-ofctl-bundle", func(b *testing.B) {
				var text strings.Builder
				for _, f := range flows {
					fmt.Fprintf(&text, "cookie=%#x,priority=%d,dl_src=%s,actions=output:1\n",
						f.Cookie, f.Priority, netMAC(f.Match.Fields[0].Value))
				}
				file := filepath.Join(b.TempDir(), "flows.txt")
				if err := os.WriteFile(file, []byte(text.String()), 0o644); err != nil {
					b.Fatal(err)
				}
				for i := 0; i < b.N; i++ {
					clear()
					if out, err := exec.Command("ovs-ofctl", "-O", "OpenFlow14", "--bundle", "add-flows", box.Mgmt("br0"), file).CombinedOutput(); err != nil {
						b.Fatalf("ovs-ofctl: %v\n%s", err, out)
					}
				}
				b.StopTimer()
				if got := count(); got != n {
					b.Fatalf("%d flows installed, want %d", got, n)
				}
			})
		})
	}
}

func netMAC(b []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}
