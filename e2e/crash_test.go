package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/fault"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// Crash consistency (issue 6, Must 3): a daemon built with -tags faultinject
// kills itself with SIGKILL at a named step of an attach or a detach; the
// normal daemon then restarts on the same state and must converge to the
// port fully present or fully absent, with nothing orphaned.

type outcome string

const (
	present outcome = "present" // API lists it, link up, OVS port with ofport, flows, ping
	absent  outcome = "absent"  // 404, no link, no OVS port, no flows, no rules, IP reusable
)

// crashPoint is one fault.Point in the daemon, the request that reaches it,
// and where a restart leaves the port.
type crashPoint struct {
	name     string
	detach   bool   // reached by DELETE of an attached port, else by PUT
	on       string // the kinds whose path has the point: ovs, ovs-spares (--spare-ports: a spare is claimed), linux
	converge outcome
}

const allKinds = "ovs ovs-spares linux"

var crashPoints = []crashPoint{
	// PutPort (controller/ports.go): the address is held only in memory, the store has nothing.
	{"attach-after-ipam", false, allKinds, absent},
	// The store holds the intent; the restart's reconcile attaches the port in full.
	{"attach-after-store-intent", false, allKinds, present},
	{"attach-after-port-rules", false, "linux", present},               // linux: nft rules, no link yet
	{"attach-after-link-created", false, "ovs linux", present},         // link.createVeth: veth made, not yet tagged
	{"attach-after-link-tagged", false, "ovs linux", present},          // veth tagged ovs-vnet:port=NAME
	{"attach-after-spare-moved", false, "ovs-spares", present},         // flows on their way; free end in the namespace, host end still the spare's
	{"attach-after-spare-claimed", false, "ovs-spares", present},       // host end tagged as the port's; free end not yet renamed
	{"attach-after-netns-config", false, allKinds, present},            // namespace end addressed, up, routed
	{"attach-after-host-link", false, allKinds, present},               // host end up (slow paths: in no bridge yet)
	{"attach-after-bridge-master", false, "linux", present},            // linux: enslaved to the bridge
	{"attach-after-ovs-port", false, "ovs", present},                   // OVSDB row committed, no ofport seen
	{"attach-after-ofport", false, "ovs", present},                     // ofport assigned, no flows
	{"attach-after-flows", false, "ovs-spares ovs", present},           // flows installed, API not answered
	{"attach-before-store-ofport", false, allKinds, present},           // backend done, host link and ofport not stored
	{"detach-after-flows-removed", true, "ovs-spares ovs", present},    // flows gone, OVS port and link remain
	{"detach-after-ovs-port-removed", true, "ovs-spares ovs", present}, // OVSDB row gone, link remains
	{"detach-after-link-removed", true, allKinds, present},             // link gone (ovs: last step; linux: rules remain)
	{"detach-after-rules-removed", true, "linux", present},             // linux: everything gone but the record
	{"detach-before-store-delete", true, allKinds, present},            // backend done, record still stored
	{"detach-after-store-delete", true, allKinds, absent},              // record gone, address not yet released
}

// crashKinds are the backends, and the OVS backend once more with spare
// ports, whose attach takes another path.
func crashKinds() []backendCase {
	out := backendKinds()
	for _, bc := range backends {
		if bc.name == "ovs" {
			out = append(out, backendCase{"ovs-spares", "ovs", func(t *testing.T, hostNS string) ([]string, *testbed.Sandbox) {
				args, box := bc.setup(t, hostNS)
				return append(args, "--spare-ports", "64"), box
			}})
		}
	}
	return out
}

var (
	faultBinOnce sync.Once
	faultBin     string
	faultBinErr  error
)

// buildFaultDaemon builds the daemon with the crash hook, once per run, next
// to the normal binary (TestMain removes that directory).
func buildFaultDaemon(t *testing.T) string {
	t.Helper()
	faultBinOnce.Do(func() {
		faultBin = filepath.Join(filepath.Dir(daemonBin), "ovs-vnet-faultinject")
		build := exec.Command("go", "build", "-race", "-tags", "faultinject", "-o", faultBin, "./cmd/ovs-vnet")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			faultBinErr = fmt.Errorf("build fault-injection daemon: %v\n%s", err, out)
		}
	})
	if faultBinErr != nil {
		t.Fatal(faultBinErr)
	}
	return faultBin
}

// newDaemonOn is a daemon on a fresh state dir that is not started yet.
func newDaemonOn(t *testing.T, hostNS string, args ...string) *daemon {
	d := &daemon{t: t, hostNS: hostNS, stateDir: t.TempDir(), args: args, base: "http://127.0.0.1:9476", log: &testbed.SyncBuffer{}}
	d.client = newDaemonClient(hostNS)
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	return d
}

// startArmed starts the fault-injection binary on d's state, armed to crash
// at point, and waits until it is ready.
func (d *daemon) startArmed(bin, point string) {
	d.t.Helper()
	args := append([]string{"netns", "exec", d.hostNS, bin, "--state-dir", d.stateDir, "--log-level", "debug"}, d.args...)
	d.cmd = exec.Command("ip", args...)
	d.cmd.Env = append(os.Environ(), fault.Env+"="+point)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start fault daemon: %v", err)
	}
	d.waitReady()
}

// waitCrash waits for the armed daemon to have killed itself at point.
func (d *daemon) waitCrash(point string) {
	d.t.Helper()
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		d.kill()
		d.t.Fatalf("daemon did not crash at %s within 30s", point)
	}
	ws, _ := d.cmd.ProcessState.Sys().(syscall.WaitStatus)
	d.ended()
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || !strings.Contains(d.log.String(), "fault: crash at "+point+"\n") {
		d.t.Fatalf("daemon did not die at %s by SIGKILL (status %v)", point, ws)
	}
}

func TestCrashConsistency(t *testing.T) {
	bin := buildFaultDaemon(t)
	for _, bc := range crashKinds() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			hostNS := newNetns(t, "vnt-crash-")
			args, box := bc.setup(t, hostNS)
			d := newDaemonOn(t, hostNS, args...)
			d.start()
			d.must("PUT", "/v1/networks/crash", `{"subnet":"10.71.0.0/24"}`, 201, nil)
			d.stop()
			var table []string
			for i, cp := range crashPoints {
				if !slices.Contains(strings.Fields(cp.on), bc.name) {
					continue
				}
				ok := t.Run(cp.name, func(t *testing.T) {
					d.t = t
					defer func() { d.t = t }()
					got := runCrashCase(t, d, bin, box, bc.name == "ovs-spares", cp, fmt.Sprintf("c%d", i), fmt.Sprintf("10.71.0.%d", 10+i))
					table = append(table, fmt.Sprintf("%-30s %s", cp.name, got))
				})
				if !ok {
					break // later cases would run on unknown state
				}
			}
			d.t = t
			t.Logf("crash points on %s:\n%s", bc.name, strings.Join(table, "\n"))
			d.start()
			d.must("DELETE", "/v1/networks/crash", nil, 204, nil)
			d.stop()
			assertNothingLeft(t, hostNS, box, d.stateDir)
		})
	}
}

// runCrashCase crashes the daemon at cp with port name (address ip) in
// flight (with spares: once the daemon has spare ports), restarts it, checks the outcome, and removes the port so that the
// next case starts from the network alone. d is stopped on entry and exit.
func runCrashCase(t *testing.T, d *daemon, bin string, box *testbed.Sandbox, spares bool, cp crashPoint, name, ip string) outcome {
	ns := newNetns(t, "vnt-cr-")
	spec := map[string]string{"network": "crash", "netns": ns, "ip": ip}
	var view portView
	if cp.detach {
		d.start()
		d.must("PUT", "/v1/ports/"+name, spec, 201, &view)
		d.stop()
		d.startArmed(bin, cp.name)
		if code, body := d.do("DELETE", "/v1/ports/"+name, nil); code != 0 {
			t.Fatalf("DELETE answered %d %s instead of crashing", code, body)
		}
	} else {
		d.startArmed(bin, cp.name)
		if spares {
			waitSpares(t, d) // so that the attach claims one
		}
		if code, body := d.do("PUT", "/v1/ports/"+name, spec); code != 0 {
			t.Fatalf("PUT answered %d %s instead of crashing", code, body)
		}
	}
	d.waitCrash(cp.name)
	d.start()
	defer d.stop()

	code, _ := d.do("GET", "/v1/ports/"+name, nil)
	got := absent
	if code == 200 {
		got = present
	}
	if got != cp.converge {
		t.Errorf("after a crash at %s the port is %s, want %s", cp.name, got, cp.converge)
	}
	if got == present {
		assertPortPresent(t, d, box, ns, name, ip)
		d.must("DELETE", "/v1/ports/"+name, nil, 204, nil)
	}
	assertPortAbsent(t, d, box, ns, name, ip)
	return got
}

// assertPortPresent: the API has the port, and it forwards — host link up
// (in its bridge), OVS port with the ofport the API says and its flows, the
// namespace end configured, the gateway answering ping.
func assertPortPresent(t *testing.T, d *daemon, box *testbed.Sandbox, ns, name, ip string) {
	t.Helper()
	var view portView
	d.must("GET", "/v1/ports/"+name, nil, 200, &view)
	if view.IP != ip+"/24" {
		t.Fatalf("port %s has ip %s, want %s/24", name, view.IP, ip)
	}
	out := testbed.Run(t, "ip", "-n", d.hostNS, "-d", "link", "show", view.HostIfname)
	if !strings.Contains(out, ",UP") || !strings.Contains(out, "alias ovs-vnet:port="+name) {
		t.Fatalf("host link of %s: %s", name, out)
	}
	checkNamespaceEnd(t, ns, "eth0", view)
	if box != nil {
		if got := box.Vsctl(t, "get", "Interface", view.HostIfname, "ofport"); view.Ofport <= 0 || got != fmt.Sprint(view.Ofport) {
			t.Fatalf("port %s: API ofport %d, OVSDB %s", name, view.Ofport, got)
		}
		if !strings.Contains(box.Ofctl(t, "dump-flows", "br-vnet"), portCookie(view.Ofport)) {
			t.Fatalf("port %s: no flow with cookie %s", name, portCookie(view.Ofport))
		}
	} else {
		if !strings.Contains(out, "master vnbr-") {
			t.Fatalf("host link of %s is in no bridge: %s", name, out)
		}
		testbed.Run(t, "ip", "netns", "exec", d.hostNS, "nft", "list", "chain", "bridge", "ovs_vnet", "port_"+name)
	}
	ping(t, ns, "10.71.0.1", true)
}

// portCookie is how ovs-ofctl prints the cookie of a port's flows
// (flows/pipeline: KindPort, object = ofport).
func portCookie(ofport int) string {
	return fmt.Sprintf("cookie=%#x,", uint64(0x76)<<56|uint64(4)<<48|uint64(ofport)<<16)
}

// assertPortAbsent: nothing of the port anywhere, and its address can be
// given to a new port.
func assertPortAbsent(t *testing.T, d *daemon, box *testbed.Sandbox, ns, name, ip string) {
	t.Helper()
	d.must("GET", "/v1/ports/"+name, nil, 404, nil)
	for _, l := range linksIn(t, d.hostNS) {
		if a := l.Attrs(); strings.HasPrefix(a.Name, "vnet") || strings.HasPrefix(a.Alias, "ovs-vnet:port=") {
			t.Errorf("host link %s (alias %q) left", a.Name, a.Alias)
		}
	}
	for _, l := range linksIn(t, ns) {
		if l.Attrs().Name != "lo" {
			t.Errorf("netns %s still has %s", ns, l.Attrs().Name)
		}
	}
	if box != nil {
		if ports := bridgePorts(t, box, d.hostNS); len(ports) > 0 {
			t.Errorf("OVS ports left: %q", ports)
		}
		if flows := box.Ofctl(t, "dump-flows", "br-vnet"); strings.Contains(flows, "cookie=0x7604") {
			t.Errorf("port flows left:\n%s", flows)
		}
	} else if out, _ := exec.Command("ip", "netns", "exec", d.hostNS, "nft", "list", "table", "bridge", "ovs_vnet").CombinedOutput(); strings.Contains(string(out), "port_"+name) {
		t.Errorf("nft objects of %s left:\n%s", name, out)
	}
	reuse := name + "-reuse"
	d.must("PUT", "/v1/ports/"+reuse, map[string]string{"network": "crash", "type": "tap", "ip": ip}, 201, nil)
	d.must("DELETE", "/v1/ports/"+reuse, nil, 204, nil)
}

// newDaemonClient talks to a daemon's loopback listener inside hostNS.
func newDaemonClient(hostNS string) *http.Client {
	return &http.Client{
		Timeout:   90 * time.Second,
		Transport: &http.Transport{DialContext: dialInNetns("/var/run/netns/" + hostNS), DisableKeepAlives: true},
	}
}
