package controller_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// vethSpec is a veth port's spec in network blue.
func vethSpec(netns, ifname, ip string, release bool) string {
	s := `{"network":"blue","netns":"` + netns + `","ifname":"` + ifname + `"`
	if ip != "" {
		s += `,"ip":"` + ip + `"`
	}
	return s + fmt.Sprintf(`,"release_with_netns":%v}`, release)
}

// TestReplaceWhenNetnsGone: a PUT asking for release_with_netns replaces
// a port of its name whose namespace is gone — also one that did not ask
// for it, as an older plugin's — in one request, answering 201, and frees
// the old port's address; without the flag it is still 409. The flag is
// shown, and refused for a tap. A PUT that is refused — its own
// namespace, an address or interface another port has — replaces nothing;
// one asking for the old port's address has it.
func TestReplaceWhenNetnsGone(t *testing.T) {
	f := newFixture(t)
	f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	gone, fresh := filepath.Join(t.TempDir(), "ns1"), t.TempDir()
	if err := os.Mkdir(gone, 0o700); err != nil {
		t.Fatal(err)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(gone, "eth0", "10.0.0.9", false)); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(fresh, "eth0", "", false)); code != 409 {
		t.Fatalf("PUT without release_with_netns over a port whose netns is gone: %d %v, want 409", code, body)
	}
	// A new port that cannot be made replaces nothing.
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(gone, "eth1", "", true)); code != 400 {
		t.Fatalf("PUT with release_with_netns into a missing netns: %d %v, want 400", code, body)
	}
	// Nor does one refused for what another port has: an address, an
	// interface.
	if code, body := f.Do(t, "PUT", "/v1/ports/other", vethSpec(fresh, "eth5", "10.0.0.5", false)); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
	for _, spec := range []string{vethSpec(fresh, "eth0", "10.0.0.5", true), vethSpec(fresh, "eth5", "", true)} {
		if code, body := f.Do(t, "PUT", "/v1/ports/c", spec); code != 409 {
			t.Fatalf("PUT %s with release_with_netns over a port whose netns is gone: %d %v, want 409", spec, code, body)
		}
	}
	if code, body := f.Do(t, "GET", "/v1/ports/c", ""); code != 200 || body["ip"] != "10.0.0.9/24" {
		t.Fatalf("the old port after a refused replace: %d %v", code, body)
	}
	f.Do(t, "DELETE", "/v1/ports/other", "")
	code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(fresh, "eth0", "", true))
	if code != 201 || body["netns"] != fresh || body["release_with_netns"] != true || body["ip"] == "10.0.0.9/24" {
		t.Fatalf("PUT with release_with_netns over a port whose netns is gone: %d %v, want 201 with a new port", code, body)
	}
	if ports, err := controllertest.StoredPorts(t, f.St); err != nil || len(ports) != 1 || ports[0].Netns != fresh || !ports[0].ReleaseWithNetns {
		t.Fatalf("stored %+v (%v), want the new port only", ports, err)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(fresh, "eth0", "", true)); code != 200 {
		t.Fatalf("identical PUT: %d %v, want 200", code, body)
	}
	// The old port's address is free.
	if code, body := f.Do(t, "PUT", "/v1/ports/d", vethSpec(fresh, "eth1", "10.0.0.9", false)); code != 201 {
		t.Fatalf("PUT of the replaced port's address: %d %v", code, body)
	}
	// A new port that asks for the old one's address (fresh, a directory,
	// is no namespace: c has left it) has it, and it stays held.
	again, ip := t.TempDir(), body["ip"].(string)
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(again, "eth0", strings.TrimSuffix(ip, "/24"), true)); code != 201 || body["netns"] != again || body["ip"] != ip {
		t.Fatalf("replace asking for the old port's address %s: %d %v, want 201 with it", ip, code, body)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/e", vethSpec(again, "eth1", strings.TrimSuffix(ip, "/24"), false)); code != 409 {
		t.Fatalf("PUT of the new port's address: %d %v, want 409", code, body)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/t", `{"network":"blue","type":"tap","release_with_netns":true}`); code != 400 {
		t.Fatalf("tap with release_with_netns: %d %v, want 400", code, body)
	}
}

// TestUpgradeOlderPluginsPort: the record of a port an older CNI plugin
// made (neither release_with_netns nor, for a secondary interface,
// default_route false) is the same port to the new plugin's request: 200,
// the record upgraded in place, the datapath not touched. Nothing else is
// relaxed, nor is an upgrade undone.
func TestUpgradeOlderPluginsPort(t *testing.T) {
	f := newFixture(t)
	f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	dir := t.TempDir()
	old := `{"network":"blue","netns":"` + dir + `","ifname":"eth1"}`
	code, before := f.Do(t, "PUT", "/v1/ports/c", old)
	if code != 201 {
		t.Fatalf("%d %v", code, before)
	}
	// An attach from here on fails: the upgrade must make none.
	f.Fake.Mu.Lock()
	f.Fake.FailPorts["c"] = errors.New("re-attached")
	f.Fake.Mu.Unlock()
	upgrade := `{"network":"blue","netns":"` + dir + `","ifname":"eth1","release_with_netns":true,"default_route":false}`
	for i := range 2 {
		code, body := f.Do(t, "PUT", "/v1/ports/c", upgrade)
		if code != 200 || body["release_with_netns"] != true || body["default_route"] != false || body["ip"] != before["ip"] || body["host_ifname"] != before["host_ifname"] {
			t.Fatalf("PUT %d of the new plugin's request: %d %v, want 200 with the port upgraded", i, code, body)
		}
	}
	ports, err := controllertest.StoredPorts(t, f.St)
	if err != nil || len(ports) != 1 || !ports[0].ReleaseWithNetns || !ports[0].NoDefaultRoute {
		t.Fatalf("stored %+v (%v), want the port upgraded", ports, err)
	}
	// Without release_with_netns, which would replace a port in a
	// directory (no namespace: it has left).
	for _, spec := range []string{old, // an upgrade is not undone
		`{"network":"blue","netns":"` + dir + `","ifname":"eth1","default_route":false}`,
		`{"network":"blue","netns":"` + dir + `","ifname":"eth1","default_route":true}`} {
		if code, body := f.Do(t, "PUT", "/v1/ports/c", spec); code != 409 {
			t.Fatalf("PUT %s: %d %v, want 409", spec, code, body)
		}
	}
}

// TestReplaceWhenProcNetnsIsAnothers: a port whose namespace is a
// process's path, alive and the one it was seen in, is not replaced (409,
// here for another address); once the path names another namespace (the
// process gone, its PID reused) a PUT with release_with_netns replaces it.
func TestReplaceWhenProcNetnsIsAnothers(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, for network namespaces")
	ns1, ns2 := testbed.Netns(t, "vrl"), testbed.Netns(t, "vrl")
	proc := testbed.StartNetnsProcess(t, ns1, "read x; exec nsenter --net=/var/run/netns/"+ns2+" sleep 600")
	f := newFixture(t)
	f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(proc.Path, "eth0", "10.0.0.9", true)); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
	if _, seen := f.C.NetnsID("c"); !seen {
		t.Fatal("port c's namespace not remembered at its attach")
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(proc.Path, "eth0", "10.0.0.10", true)); code != 409 {
		t.Fatalf("another address for a port whose netns is alive: %d %v, want 409", code, body)
	}
	other := "/var/run/netns/" + ns2
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(other, "eth0", "", true)); code != 409 {
		t.Fatalf("another netns for a port whose netns is alive: %d %v, want 409", code, body)
	}
	if _, err := proc.Move.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	proc.WaitIn(t, ns2, true)
	if code, body := f.Do(t, "PUT", "/v1/ports/c", vethSpec(other, "eth0", "", true)); code != 201 || body["netns"] != other {
		t.Fatalf("PUT over a port whose /proc path names another netns: %d %v, want 201", code, body)
	}
}

// releaseFixture is a controller on a checkFake that releases after grace,
// with network blue.
func releaseFixture(t *testing.T, grace time.Duration) (*fixture, *checkFake) {
	t.Helper()
	cf := newCheckFake()
	f := startFixtureOn(t, openStore(t), cf.Fake, cf, controller.WithNetnsGrace(grace))
	if code, body := f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`); code != 201 {
		t.Fatalf("network: %d %v", code, body)
	}
	return f, cf
}

// waitGone waits, bounded, until port name is gone, and returns when.
func (f *fixture) waitGone(t *testing.T, name string) time.Time {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if code, _ := f.Do(t, "GET", "/v1/ports/"+name, ""); code == 404 {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %s not released", name)
		}
	}
}

func releasedMetric(n int) string {
	return fmt.Sprintf(`# HELP ovs_vnet_ports_released_total Ports the daemon released on its own, by reason: netns_gone, a release_with_netns port whose namespace was gone for --netns-grace.
# TYPE ovs_vnet_ports_released_total counter
ovs_vnet_ports_released_total{reason="netns_gone"} %d
`, n)
}

// TestReleaseAfterGrace: the watcher releases a release_with_netns port
// whose namespace has been gone for the grace period, and frees its
// address; a port without the flag stays, down; a port whose namespace
// came back has its clock reset: gone again, it goes only a grace period
// later.
func TestReleaseAfterGrace(t *testing.T) {
	const grace = 3 * time.Second
	f, cf := releaseFixture(t, grace)
	dir := t.TempDir()
	for _, c := range []struct {
		name, ifname, ip string
		release          bool
	}{{"flagged", "eth0", "10.0.0.9", true}, {"plain", "eth1", "", false}, {"back", "eth2", "", true}} {
		if code, body := f.Do(t, "PUT", "/v1/ports/"+c.name, vethSpec(dir, c.ifname, c.ip, c.release)); code != 201 {
			t.Fatalf("%s: %d %v", c.name, code, body)
		}
	}
	noNetns := fmt.Errorf("netns %s: %w", dir, datapath.ErrNoNetns)
	cf.breakPort("back", noNetns)
	f.waitStatus(t, "back", v1.PortDown, controller.ReasonNetnsGone)
	// Its namespace is back, without the port's end: it is made again.
	cf.breakPort("back", fmt.Errorf("veth end: %w", datapath.ErrLinkGone))
	f.waitStatus(t, "back", v1.PortForwarding, "")

	cf.breakPort("flagged", noNetns)
	cf.breakPort("plain", noNetns)
	f.waitGone(t, "flagged")
	f.metric(t, "ovs_vnet_ports_released_total", releasedMetric(1))
	if code, body := f.Do(t, "PUT", "/v1/ports/new", vethSpec(dir, "eth3", "10.0.0.9", false)); code != 201 {
		t.Fatalf("PUT of the released port's address: %d %v", code, body)
	}
	f.waitStatus(t, "back", v1.PortForwarding, "")

	// Gone again: its clock starts anew, not at its first loss.
	broken := time.Now()
	cf.breakPort("back", noNetns)
	if took := f.waitGone(t, "back").Sub(broken); took < grace {
		t.Errorf("port back released %s after its namespace went again, before the grace of %s", took, grace)
	}
	f.waitStatus(t, "plain", v1.PortDown, controller.ReasonNetnsGone)
	f.metric(t, "ovs_vnet_ports_released_total", releasedMetric(2))
}

// TestReleaseAfterRestart: a release_with_netns port whose namespace went
// while the daemon was down is released one grace period after the start.
func TestReleaseAfterRestart(t *testing.T) {
	st := openStore(t)
	n, _ := model.NewNetwork("blue", v1.NetworkSpec{Subnet: "10.0.0.0/24"})
	n.ID = 1
	p, err := model.NewPort("c", v1.PortSpec{Network: "blue", Netns: "/var/run/netns/vrl-gone", ReleaseWithNetns: true})
	if err != nil {
		t.Fatal(err)
	}
	p.MAC, p.IP = model.PortMAC("c"), netip.MustParseAddr("10.0.0.9")
	if err := errors.Join(controllertest.CreateNetwork(st, n), st.CreatePort(context.Background(), p)); err != nil {
		t.Fatal(err)
	}
	cf := newCheckFake()
	cf.broken["c"] = fmt.Errorf("netns %s: %w", p.Netns, datapath.ErrNoNetns)
	f := startFixtureOn(t, st, cf.Fake, cf, controller.WithNetnsGrace(time.Second))
	f.waitGone(t, "c")
	f.metric(t, "ovs_vnet_ports_released_total", releasedMetric(1))
	if ports, err := controllertest.StoredPorts(t, st); err != nil || len(ports) != 0 {
		t.Fatalf("stored %+v (%v), want none", ports, err)
	}
}
