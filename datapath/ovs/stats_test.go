package ovs

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/ovs/unixctl"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/flows/reconcile"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
	"github.com/ovs-vnet/ovs-vnet/ovsdb"
)

var (
	_ datapath.Backend           = (*Backend)(nil)
	_ datapath.SwitchStatsSource = (*Backend)(nil)
)

func TestFindVswitchdCtl(t *testing.T) {
	dir := t.TempDir()
	if _, err := FindVswitchdCtl("tcp:127.0.0.1:6640"); err == nil || !strings.Contains(err.Error(), "not unix:PATH") {
		t.Fatalf("tcp endpoint: err = %v", err)
	}
	ep := "unix:" + filepath.Join(dir, "db.sock")
	if _, err := FindVswitchdCtl(ep); err == nil || !strings.Contains(err.Error(), "ovs-vswitchd.pid") {
		t.Fatalf("no pid file: err = %v", err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ovs-vswitchd.pid", "garbage\n")
	if _, err := FindVswitchdCtl(ep); err == nil || !strings.Contains(err.Error(), "does not hold a pid") {
		t.Fatalf("bad pid file: err = %v", err)
	}
	write("ovs-vswitchd.pid", "4242\n")
	if _, err := FindVswitchdCtl(ep); err == nil || !strings.Contains(err.Error(), "ovs-vswitchd.4242.ctl") {
		t.Fatalf("no socket: err = %v", err)
	}
	write("ovs-vswitchd.4242.ctl", "")
	if got, err := FindVswitchdCtl(ep); err != nil || got != filepath.Join(dir, "ovs-vswitchd.4242.ctl") {
		t.Fatalf("FindVswitchdCtl = %q, %v", got, err)
	}
}

// TestStatsNotConnected: without a session to the bridge, a statistics
// request fails at once rather than waiting for one.
func TestStatsNotConnected(t *testing.T) {
	b := &Backend{dpid: 0xb0}
	b.flows = reconcile.NewManager(cookieSpace, (*flowSource)(b), reconcile.NewMetrics(prometheus.NewRegistry()), slog.Default())
	if _, err := b.tableStats(context.Background()); err == nil || !strings.Contains(err.Error(), "00000000000000b0 is not connected") {
		t.Fatalf("table stats without a session: err = %v", err)
	}
}

// TestSandboxStats runs the backend against a real ovs-vswitchd: two ports
// ping each other, one sends with a forged source, and the backend's port
// and switch statistics show it all.
func TestSandboxStats(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root: the test creates network namespaces")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	box := testbed.StartSandbox(t, root, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The control socket by the default lookup, as the daemon does with
	// no --vswitchd-ctl, and it survives a vswitchd restart.
	ctl, err := FindVswitchdCtl("unix:" + box.DBSock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unixctl.Call(ctx, ctl, "version"); err != nil {
		t.Fatal(err)
	}

	db, err := ovsdb.Dial(ctx, "unix:"+box.DBSock, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close) // b.Close closes it too; Close is idempotent
	var b *Backend
	// The daemon's host is the sandbox's namespace: the OpenFlow listener
	// (on a fixed port: the namespace is the test's own) and the ports'
	// host ends live there.
	inBox := func(f func() error) {
		t.Helper()
		if err := testbed.InNetns(box.Netns, f); err != nil {
			t.Fatal(err)
		}
	}
	inBox(func() (err error) {
		b, err = New(ctx, db, Config{Bridge: "br-vnet", DatapathType: "netdev", OpenFlowListen: "tcp:127.0.0.1:6653", Log: log,
			Registerer: prometheus.NewRegistry()})
		return err
	})
	t.Cleanup(func() { b.Close() })

	n := model.Network{Name: "blue", ID: 1, Subnet: netip.MustParsePrefix("10.95.0.0/24"), Gateway: netip.MustParseAddr("10.95.0.1"), MTU: 1500}
	var ports []model.Port
	for i, name := range []string{"pa", "pb"} {
		ns := testbed.UniqueName("vnt-ps-")
		testbed.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		ports = append(ports, model.Port{
			Name: name, Network: n.Name, Type: v1.PortVeth, Netns: ns, Ifname: "eth0",
			IP: netip.AddrFrom4([4]byte{10, 95, 0, byte(10 + i)}), MAC: model.PortMAC(name), HostIfname: model.HostIfname(name),
		})
	}
	inBox(func() error {
		if err := b.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		for i := range ports {
			p, err := b.AttachPort(ctx, n, ports[i])
			if err != nil {
				return err
			}
			ports[i] = p
		}
		return b.Prune(ctx, datapath.State{Networks: []model.Network{n}, Ports: ports})
	})

	before, err := b.PortStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const pings = 5
	testbed.Run(t, "ip", "netns", "exec", ports[0].Netns, "ping", "-c", fmt.Sprint(pings), "-i", "0.1", "-W", "1", ports[1].IP.String())
	// Forged: pb sends with an address that is not its own; the
	// anti-spoofing flow drops what it sends.
	testbed.Run(t, "ip", "-n", ports[1].Netns, "addr", "add", "10.95.0.99/24", "dev", "eth0")
	_ = exec.Command("ip", "netns", "exec", ports[1].Netns, "ping", "-c", "3", "-i", "0.1", "-W", "1", "-I", "10.95.0.99", ports[0].IP.String()).Run()

	get := func(stats []datapath.PortStats, name string) datapath.PortStats {
		for _, s := range stats {
			if s.Port == name {
				return s
			}
		}
		t.Fatalf("no stats for port %s in %+v", name, stats)
		return datapath.PortStats{}
	}
	deadline := time.Now().Add(7 * time.Second)
	for {
		now, err := b.PortStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a, bb := get(now, "pa"), get(now, "pb")
		if a.RxPackets-get(before, "pa").RxPackets >= pings && bb.TxPackets-get(before, "pb").TxPackets >= pings && bb.SpoofedPackets >= 3 {
			if a.Network != "blue" || a.SpoofedPackets != 0 {
				t.Errorf("pa = %+v", a)
			}
			t.Logf("pa %+v\npb %+v", a, bb)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 7 s: pa %+v, pb %+v", a, bb)
		}
		time.Sleep(200 * time.Millisecond)
	}

	s, err := b.SwitchStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switch stats %+v", s)
	if len(s.Datapaths) != 1 || s.Datapaths[0].Name != "netdev@ovs-netdev" || s.Datapaths[0].Hit+s.Datapaths[0].Missed == 0 {
		t.Errorf("datapaths = %+v", s.Datapaths)
	}
	if len(s.Tables) != len(pipeline.Stages()) {
		t.Errorf("tables = %+v, want one per stage", s.Tables)
	}
	for _, tb := range s.Tables {
		if tb.Name == "spoof_guard" && (tb.ActiveFlows == 0 || tb.Lookups == 0) {
			t.Errorf("spoof_guard table = %+v", tb)
		}
	}
	var spoofed datapath.DropStats
	for _, d := range s.Drops {
		if d.Reason == v1.DropSpoofed {
			spoofed = d
		}
	}
	if spoofed.Packets < 3 || spoofed.Bytes == 0 {
		t.Errorf("drops = %+v, want >= 3 spoofed", s.Drops)
	}

	// A restarted vswitchd has a new pid and socket: the backend finds it.
	box.RestartVswitchd(t)
	if _, err := b.datapathStats(ctx); err != nil {
		t.Fatalf("datapath stats after a vswitchd restart: %v", err)
	}
}

// TestDropReasonsTable: the lookup table the scrape uses says what
// pipeline.DropReason says, for every table and every priority in use.
func TestDropReasonsTable(t *testing.T) {
	prios := map[uint16]bool{0: true, 1: true, 65535: true}
	for _, st := range pipeline.Stages() {
		for p := range st.Drops {
			prios[p], prios[p+1] = true, true
		}
	}
	reasons := newDropReasonTable()
	for table := range 256 {
		for p := range prios {
			wantR, wantOK := pipeline.DropReason(uint8(table), p)
			gotR, gotOK := reasons.of(uint8(table), p)
			if gotR != wantR || gotOK != wantOK {
				t.Errorf("table %d priority %d: %q %v, want %q %v", table, p, gotR, gotOK, wantR, wantOK)
			}
		}
	}
}
