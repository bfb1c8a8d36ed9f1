package reconcile

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset/flowsettest"
	"github.com/ovs-vnet/ovs-vnet/flows/ofconn"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestManagerResyncsAfterVswitchdRestart runs the manager as br0's
// controller: it programs the flows when the switch connects, and when
// ovs-vswitchd restarts (losing every flow) and reconnects, it puts them back
// by resync.
func TestManagerResyncsAfterVswitchdRestart(t *testing.T) {
	box := ovsBridge(t)
	want := flowsettest.Flows(1000, space.Value|1)
	var log testbed.SyncBuffer
	reg := prometheus.NewPedanticRegistry()
	m := NewManager(space, fixedSource{Flows: want}, NewMetrics(reg), slog.New(slog.NewTextHandler(&log, nil)))

	var ln net.Listener
	if err := testbed.InNetns(box.Netns, func() (err error) { ln, err = ofconn.Listen("tcp:127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	go func() { _ = ofconn.Serve(ctx, ln, ofconn.Options{EchoInterval: time.Second}, m.Handle) }()
	box.Vsctl(t, "set-controller", "br0", "tcp:127.0.0.1:"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))

	waitFlows := func(what string) {
		t.Helper()
		for {
			if strings.Count(box.Ofctl(t, "dump-flows", "br0"), "cookie=0x7600000000000001") == len(want) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: flows not back", what)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitFlows("first connect")
	for !m.Synced(0xb0) {
		select {
		case <-ctx.Done():
			t.Fatal("manager never reports datapath b0 synced")
		case <-time.After(10 * time.Millisecond):
		}
	}

	box.RestartVswitchd(t)
	start := time.Now()
	waitFlows("after ovs-vswitchd restart")
	t.Logf("flows back %v after ovs-vswitchd restarted", time.Since(start).Round(time.Millisecond))
	if got := testutil.ToFloat64(m.metrics.connected.WithLabelValues("00000000000000b0")); got != 1 {
		t.Fatalf("ovs_vnet_openflow_connected = %v", got)
	}
	// Proof that they came back by a resync of an empty table, not by surviving.
	for strings.Count(log.String(), "added=1000") < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("no second sync that re-added the flows; log:\n%s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got := testutil.ToFloat64(m.metrics.flowMods.WithLabelValues("add")); got != 2000 {
		t.Fatalf("flow mods counted: %v adds, want 2000", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("metrics lint: %v %v", err, problems)
	}
}

// fixedSource wants the same flows on every switch.
type fixedSource flowset.Desired

func (s fixedSource) Desired(uint64) (flowset.Desired, bool) { return flowset.Desired(s), true }
func (fixedSource) Synced(uint64)                            {}
