package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// backendCase is one backend under test, started in its own host namespace.
type backendCase struct {
	name  string
	kind  string // what GET /v1/info must say
	setup func(t *testing.T, hostNS string) (args []string, box *testbed.Sandbox)
}

var backends = []backendCase{
	{"ovs", "ovs", func(t *testing.T, hostNS string) ([]string, *testbed.Sandbox) {
		box := testbed.StartSandbox(t, repoRoot, hostNS)
		return []string{"--backend", "ovs", "--ovsdb", "unix:" + box.DBSock, "--bridge", "br-vnet"}, box
	}},
	// A stock OVS without userspace TSO: TCP works only if the daemon turns TX
	// checksum offload off on the namespace ends (docs/DESIGN.md §6).
	{"ovs-no-tso", "ovs", func(t *testing.T, hostNS string) ([]string, *testbed.Sandbox) {
		box := testbed.StartSandbox(t, repoRoot, hostNS, "--no-tso")
		return []string{"--backend", "auto", "--ovsdb", "unix:" + box.DBSock, "--bridge", "br-vnet"}, box
	}},
	{"linux", "linux", func(t *testing.T, hostNS string) ([]string, *testbed.Sandbox) {
		return []string{"--backend", "linux", "--bridge", "vnbr"}, nil
	}},
}

// backendKinds is one case per backend: ovs-no-tso differs from ovs only in
// TCP offload, which TestAttach covers, so other tests skip it.
func backendKinds() []backendCase {
	var out []backendCase
	for _, bc := range backends {
		if bc.name != "ovs-no-tso" {
			out = append(out, bc)
		}
	}
	return out
}

type portView = v1.Port

// TestAttach is the walking skeleton's acceptance: two networks, three ports,
// ping inside a network, isolation between networks, 10 MB over TCP, a
// restart that keeps everything, and a delete that leaves nothing behind.
func TestAttach(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)

			var info map[string]any
			d.must("GET", "/v1/info", nil, 200, &info)
			if info["backend"] != bc.kind || info["openflow_connected"] != (bc.kind == "ovs") {
				t.Fatalf("info: %v, want backend %s", info, bc.kind)
			}
			if box != nil {
				if mode := box.Vsctl(t, "get", "bridge", "br-vnet", "fail_mode"); mode != "secure" {
					t.Fatalf("fail_mode %s", mode)
				}
			}

			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.61.0.0/24"}`, 201, nil)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.61.0.0/24","mtu":1500}`, 200, nil)
			d.must("PUT", "/v1/networks/red", `{"subnet":"10.62.0.0/24","gateway":"10.62.0.254"}`, 201, nil)

			nsA, nsB, nsC := newNetns(t, "vnt-a-"), newNetns(t, "vnt-b-"), newNetns(t, "vnt-c-")
			var a, b, c portView
			d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA}, 201, &a)
			d.must("PUT", "/v1/ports/b", map[string]string{"network": "blue", "netns": "/var/run/netns/" + nsB, "ip": "10.61.0.20", "ifname": "net0"}, 201, &b)
			d.must("PUT", "/v1/ports/c", map[string]string{"network": "red", "netns": nsC}, 201, &c)
			if a.IP != "10.61.0.2/24" || b.IP != "10.61.0.20/24" || c.IP != "10.62.0.1/24" || c.Gateway != "10.62.0.254" {
				t.Fatalf("addresses: a %s, b %s, c %s gw %s", a.IP, b.IP, c.IP, c.Gateway)
			}
			if bc.kind == "ovs" && (a.Ofport <= 0 || b.Ofport <= 0 || c.Ofport <= 0) {
				t.Fatalf("ofports: %d %d %d", a.Ofport, b.Ofport, c.Ofport)
			}
			// Same spec again: 200 and the same port.
			var again portView
			d.must("PUT", "/v1/ports/a", map[string]string{"network": "blue", "netns": nsA}, 200, &again)
			if !reflect.DeepEqual(again, a) {
				t.Fatalf("second PUT changed the port: %+v vs %+v", again, a)
			}
			checkNamespaceEnd(t, nsB, "net0", b)
			var vm portView
			d.must("PUT", "/v1/ports/vm", `{"network":"blue","type":"tap","ifname":"vnt-tap0"}`, 201, &vm)
			if vm.HostIfname != "vnt-tap0" || vm.IP != "10.61.0.3/24" {
				t.Fatalf("tap port: %+v", vm)
			}
			if out := testbed.Run(t, "ip", "-n", hostNS, "-d", "link", "show", "vnt-tap0"); !strings.Contains(out, "tun type tap") || !strings.Contains(out, "ovs-vnet:port=vm") {
				t.Fatalf("tap device: %s", out)
			}

			checkMetrics(t, d, bc.kind)

			// The port answered only once it forwards: ping at once, no warm-up.
			ping(t, nsA, "10.61.0.20", true)
			ping(t, nsB, "10.61.0.2", true)
			ping(t, nsC, "10.61.0.2", false)
			ping(t, nsA, "10.62.0.1", false)
			testbed.TransferTCP(t, nsA, nsB, "10.61.0.20", 10<<20)

			if box != nil {
				ports := box.Vsctl(t, "list-ports", "br-vnet")
				for _, p := range []portView{a, b, c, vm} {
					if !strings.Contains(ports, p.HostIfname) {
						t.Fatalf("ovs-vsctl list-ports br-vnet = %q, missing %s", ports, p.HostIfname)
					}
				}
				if got := box.Vsctl(t, "get", "Port", a.HostIfname, "external_ids:ovs-vnet-owner"); got != `"ovs-vnet"` && got != "ovs-vnet" {
					t.Fatalf("port %s owner %s", a.HostIfname, got)
				}
			}

			// Restart: same state from the store, and the namespaces kept forwarding.
			var before, after struct{ Ports []portView }
			d.must("GET", "/v1/ports", nil, 200, &before)
			flowsBefore := ourFlows(t, box)
			d.stop()
			ping(t, nsA, "10.61.0.20", true) // the dataplane does not need the daemon
			d.start()
			d.must("GET", "/v1/ports", nil, 200, &after)
			flowsAfter := ourFlows(t, box)
			for k, before := range flowsBefore {
				if after, ok := flowsAfter[k]; !ok || after.packets < before.packets || after.duration < before.duration {
					t.Errorf("the restart replaced flow %s: before %+v, after %+v", k, before, after)
				}
			}
			if len(flowsAfter) != len(flowsBefore) {
				t.Errorf("%d flows before the restart, %d after", len(flowsBefore), len(flowsAfter))
			}
			if _, body := d.do("GET", "/metrics", nil); bc.kind == "ovs" && !strings.Contains(string(body), `ovs_vnet_openflow_flow_mods_total{op="add"} 0`) {
				t.Errorf("the restarted daemon sent flow mods")
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("ports changed across restart:\n%+v\n%+v", before, after)
			}
			var nets struct{ Networks []model.Network }
			d.must("GET", "/v1/networks", nil, 200, &nets)
			if len(nets.Networks) != 2 {
				t.Fatalf("networks after restart: %+v", nets)
			}
			ping(t, nsA, "10.61.0.20", true)
			ping(t, nsC, "10.61.0.20", false)

			for _, p := range []string{"a", "b", "c", "vm"} {
				d.must("DELETE", "/v1/ports/"+p, nil, 204, nil)
			}
			d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
			d.must("DELETE", "/v1/networks/red", nil, 204, nil)
			d.must("GET", "/v1/ports/a", nil, 404, nil)
			d.stop()

			assertNothingLeft(t, hostNS, box, d.stateDir, nsA, nsB, nsC)
		})
	}
}

// checkMetrics scrapes /metrics and has promtool judge the exposition.
func checkMetrics(t *testing.T, d *daemon, kind string) {
	t.Helper()
	code, body := d.do("GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{"ovs_vnet_ports 4", "ovs_vnet_networks 2", "ovs_vnet_ready 1", "ovs_vnet_port_attach_duration_seconds_count 4"} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if kind == "ovs" && !strings.Contains(string(body), `ovs_vnet_openflow_connected{datapath="`) {
		t.Errorf("/metrics lacks ovs_vnet_openflow_connected")
	}
}

type flowCounters struct {
	packets  int
	duration float64
}

// ourFlows reads the flows ovs-vnet installs, as ovs-ofctl shows them, by
// table, priority and match (none on the Linux backend).
func ourFlows(t *testing.T, box *testbed.Sandbox) map[string]flowCounters {
	t.Helper()
	flows := map[string]flowCounters{}
	if box == nil {
		return flows
	}
	for _, line := range strings.Split(box.Ofctl(t, "dump-flows", "br-vnet"), "\n") {
		if !strings.Contains(line, "cookie=0x76") {
			continue
		}
		var f flowCounters
		var key []string
		for _, kv := range strings.Split(strings.TrimSpace(line), ", ") {
			switch k, v, _ := strings.Cut(kv, "="); k {
			case "n_packets":
				f.packets, _ = strconv.Atoi(v)
			case "duration":
				f.duration, _ = strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64)
			case "cookie", "n_bytes", "idle_age", "hard_age":
			default:
				key = append(key, kv)
			}
		}
		flows[strings.Join(key, ", ")] = f
	}
	if len(flows) == 0 {
		t.Fatal("ovs-ofctl shows no flow with ovs-vnet's cookie")
	}
	return flows
}

func checkNamespaceEnd(t *testing.T, ns, ifname string, p portView) {
	t.Helper()
	out := testbed.Run(t, "ip", "-n", ns, "-o", "addr", "show", "dev", ifname)
	if !strings.Contains(out, "inet "+p.IP) {
		t.Fatalf("netns %s %s: want %s, got %s", ns, ifname, p.IP, out)
	}
	if out := testbed.Run(t, "ip", "-n", ns, "link", "show", ifname); !strings.Contains(out, p.MAC) || !strings.Contains(out, "state UP") {
		t.Fatalf("netns %s %s: want mac %s and UP, got %s", ns, ifname, p.MAC, out)
	}
	if out := testbed.Run(t, "ip", "-n", ns, "route", "show", "default"); !strings.Contains(out, "via "+p.Gateway+" dev "+ifname) {
		t.Fatalf("netns %s default route: %s", ns, out)
	}
}

func ping(t *testing.T, ns, ip string, want bool) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", ip).CombinedOutput()
	if got := err == nil; got != want {
		t.Fatalf("ping from %s to %s: success=%v, want %v\n%s", ns, ip, got, want, out)
	}
}

// assertNothingLeft checks the host namespace, the workload namespaces, OVS,
// nftables and the store hold nothing of ours.
func assertNothingLeft(t *testing.T, hostNS string, box *testbed.Sandbox, stateDir string, workloads ...string) {
	t.Helper()
	for _, l := range linksIn(t, hostNS) {
		if strings.HasPrefix(l.Attrs().Alias, "ovs-vnet:") || strings.HasPrefix(l.Attrs().Name, "vnet") {
			t.Errorf("host netns still has %s (%s, alias %q)", l.Attrs().Name, l.Type(), l.Attrs().Alias)
		}
	}
	for _, ns := range workloads {
		for _, l := range linksIn(t, ns) {
			if l.Attrs().Name != "lo" {
				t.Errorf("netns %s still has %s", ns, l.Attrs().Name)
			}
		}
	}
	if box != nil {
		if ports := box.Vsctl(t, "list-ports", "br-vnet"); ports != "" {
			t.Errorf("OVS ports left on br-vnet: %q", ports)
		}
	}
	if out := testbed.Run(t, "ip", "netns", "exec", hostNS, "nft", "list", "tables"); strings.Contains(out, "ovs_vnet") {
		t.Errorf("nftables table left: %s", out)
	}
	st, err := store.Open(filepath.Join(stateDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Load(context.Background())
	if err != nil || len(s.Networks) != 0 || len(s.Ports) != 0 {
		t.Errorf("store not empty: networks %v ports %v (%v)", s.Networks, s.Ports, err)
	}
}

// netlinkIn is a netlink handle on the named namespace, closed at cleanup.
func netlinkIn(t *testing.T, ns string) *netlink.Handle {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

func linksIn(t *testing.T, ns string) []netlink.Link {
	t.Helper()
	nh := netlinkIn(t, ns)
	links, err := link.List(nh)
	if err != nil {
		t.Fatal(fmt.Errorf("list links in %s: %w", ns, err))
	}
	return links
}

// TestDeleteAfterNetnsGone deletes a port whose namespace was removed under it,
// across a daemon restart: the restart must not fail on it, and the delete must
// succeed and leave nothing behind.
func TestDeleteAfterNetnsGone(t *testing.T) {
	for _, bc := range backendKinds() {
		t.Run(bc.name, func(t *testing.T) {
			hostNS := newNetns(t, "vnt-host-")
			args, box := bc.setup(t, hostNS)
			d := startDaemon(t, hostNS, args...)
			d.must("PUT", "/v1/networks/blue", `{"subnet":"10.63.0.0/24"}`, 201, nil)
			ns := newNetns(t, "vnt-gone-")
			d.must("PUT", "/v1/ports/gone", map[string]string{"network": "blue", "netns": ns}, 201, nil)
			testbed.Run(t, "ip", "netns", "del", ns)
			d.stop()
			d.start() // reconcile meets the missing namespace and carries on
			d.must("GET", "/v1/ports/gone", nil, 200, nil)
			d.must("DELETE", "/v1/ports/gone", nil, 204, nil)
			d.must("DELETE", "/v1/networks/blue", nil, 204, nil)
			d.stop()
			assertNothingLeft(t, hostNS, box, d.stateDir)
		})
	}
}
