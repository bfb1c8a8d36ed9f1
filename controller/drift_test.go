package controller_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/nsfile"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// checkFake is the fake with a PortChecker: CheckPort says what broke
// reports of a port until an attach repairs it; a gone namespace no attach
// repairs. The real checks are proven in datapath/ and e2e/drift_test.go.
type checkFake struct {
	*controllertest.Fake
	changed  chan struct{}
	cmu      sync.Mutex
	broken   map[string]error
	attaches map[string]int
	// sticky ports stay broken whatever an attach does.
	sticky map[string]bool
	// stale is what a CheckHost look reports of a port that a full look
	// finds whole: a dump of links that predates the port.
	stale map[string]error
}

func newCheckFake() *checkFake {
	return &checkFake{Fake: controllertest.NewFake(), changed: make(chan struct{}, 1),
		broken: map[string]error{}, attaches: map[string]int{}, sticky: map[string]bool{}, stale: map[string]error{}}
}

func (f *checkFake) Capabilities() datapath.Capabilities {
	c := f.Fake.Capabilities()
	c.PortChecker = f
	return c
}

func (f *checkFake) Changed() <-chan struct{} { return f.changed }

func (f *checkFake) CheckPort(_ context.Context, _ model.Network, p model.Port, depth datapath.CheckDepth) error {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	if err := f.stale[p.Name]; err != nil && depth == datapath.CheckHost {
		return err
	}
	return f.broken[p.Name]
}

func (f *checkFake) AttachPort(ctx context.Context, n model.Network, p model.Port) (model.Port, error) {
	f.cmu.Lock()
	f.attaches[p.Name]++
	gone := f.broken[p.Name]
	f.cmu.Unlock()
	if errors.Is(gone, datapath.ErrNoNetns) {
		return p, gone
	}
	got, err := f.Fake.AttachPort(ctx, n, p)
	if err == nil {
		f.cmu.Lock()
		if !f.sticky[p.Name] {
			delete(f.broken, p.Name)
		}
		f.cmu.Unlock()
	}
	return got, err
}

// breakPort makes CheckPort report err for port name, and signals it.
func (f *checkFake) breakPort(name string, err error) {
	f.cmu.Lock()
	f.broken[name] = err
	f.cmu.Unlock()
	f.signal()
}

func (f *checkFake) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *checkFake) attachCount(name string) int {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return f.attaches[name]
}

// attachesUnderSignals waits for port name's second attach (a first
// repair failed), signals a hundred times over a second, and returns how
// many attaches there were: a second without backoff is a hundred; with
// it, a few.
func (f *checkFake) attachesUnderSignals(name string) int {
	for f.attachCount(name) < 2 {
		time.Sleep(time.Millisecond)
	}
	for range 100 {
		f.signal()
		time.Sleep(10 * time.Millisecond)
	}
	return f.attachCount(name)
}

// driftFixture is a running controller on a checkFake with network blue
// and port a.
func driftFixture(t *testing.T) (*fixture, *checkFake) {
	t.Helper()
	cf := newCheckFake()
	st := openStore(t)
	f := startFixtureOn(t, st, cf.Fake, cf)
	if code, body := f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`); code != 201 {
		t.Fatalf("network: %d %v", code, body)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/a", portA); code != 201 {
		t.Fatalf("port: %d %v", code, body)
	}
	return f, cf
}

const portA = `{"network":"blue","type":"tap","ifname":"tapa"}`

// waitStatus waits, bounded, until GET shows port name with status and
// reason, and returns its view.
func (f *fixture) waitStatus(t *testing.T, name, status, reason string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := f.Do(t, "GET", "/v1/ports/"+name, "")
		if code == 200 && body["status"] == status && (reason == "" && body["status_reason"] == nil || body["status_reason"] == reason) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %s: %d %v; want status %s, reason %q", name, code, body, status, reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fixture) metric(t *testing.T, name, want string) {
	t.Helper()
	if err := testutil.GatherAndCompare(f.Reg, strings.NewReader(want), name); err != nil {
		t.Error(err)
	}
}

func downMetric(linkGone, netnsGone, notBound, attachFailed int) string {
	return fmt.Sprintf(`# HELP ovs_vnet_ports_down This host's ports that do not forward now, by reason (the status_reason of GET /v1/ports).
# TYPE ovs_vnet_ports_down gauge
ovs_vnet_ports_down{reason="attach_failed"} %d
ovs_vnet_ports_down{reason="link_gone"} %d
ovs_vnet_ports_down{reason="netns_gone"} %d
ovs_vnet_ports_down{reason="not_bound"} %d
`, attachFailed, linkGone, netnsGone, notBound)
}

func repairsMetric(repaired, failed int) string {
	return fmt.Sprintf(`# HELP ovs_vnet_port_repairs_total Attaches of a port found not forwarding (by the watcher or an identical PUT), by result: repaired or failed.
# TYPE ovs_vnet_port_repairs_total counter
ovs_vnet_port_repairs_total{result="failed"} %d
ovs_vnet_port_repairs_total{result="repaired"} %d
`, failed, repaired)
}

// TestDriftRepairedOnSignal: a port the backend finds broken is attached
// again without a request, and its new ofport is recorded.
func TestDriftRepairedOnSignal(t *testing.T) {
	f, cf := driftFixture(t)
	f.waitStatus(t, "a", v1.PortForwarding, "")
	cf.breakPort("a", fmt.Errorf("tap tapa: %w", datapath.ErrLinkGone))
	for cf.attachCount("a") < 2 {
		time.Sleep(time.Millisecond)
	}
	view := f.waitStatus(t, "a", v1.PortForwarding, "")
	ports, err := controllertest.StoredPorts(t, f.St)
	if err != nil || len(ports) != 1 || float64(ports[0].Ofport) != view["ofport"] {
		t.Fatalf("stored %v (%v), shown %v", ports, err, view)
	}
	f.metric(t, "ovs_vnet_port_repairs_total", repairsMetric(1, 0))
	f.metric(t, "ovs_vnet_ports_down", downMetric(0, 0, 0, 0))
}

// TestDriftStaleHostLookIsConfirmed: a fault that only the cheap look
// (CheckHost) reports — its dump of links predates the port — is looked at
// in full first, and the port, whole, is neither shown down nor attached
// again (TestConcurrentPuts saw both under load).
func TestDriftStaleHostLookIsConfirmed(t *testing.T) {
	f, cf := driftFixture(t)
	if code, body := f.Do(t, "PUT", "/v1/ports/b", `{"network":"blue","type":"tap","ifname":"tapb"}`); code != 201 {
		t.Fatalf("port b: %d %v", code, body)
	}
	f.waitStatus(t, "a", v1.PortForwarding, "")
	cf.cmu.Lock()
	cf.stale["a"] = fmt.Errorf("host link tapa is missing: %w", datapath.ErrLinkGone)
	cf.cmu.Unlock()
	// Port b, really broken, is the witness of the rounds that looked at
	// a: its second repair is in a round that began after the first ended.
	for want := 2; want <= 3; want++ {
		cf.breakPort("b", fmt.Errorf("tap tapb: %w", datapath.ErrLinkGone))
		for cf.attachCount("b") < want {
			time.Sleep(time.Millisecond)
		}
	}
	f.waitStatus(t, "b", v1.PortForwarding, "")
	if n := cf.attachCount("a"); n != 1 {
		t.Errorf("port a attached %d times; want 1 (its PUT)", n)
	}
	f.waitStatus(t, "a", v1.PortForwarding, "")
	f.metric(t, "ovs_vnet_port_repairs_total", repairsMetric(2, 0))
}

// TestDriftNetnsGone: a port whose namespace is gone shows down, is not
// attached while it is gone, refuses an identical PUT with the attach's
// 400 and stays; it comes back with its namespace, with no signal.
func TestDriftNetnsGone(t *testing.T) {
	f, cf := driftFixture(t)
	cf.breakPort("a", fmt.Errorf("netns /var/run/netns/x: %w", datapath.ErrNoNetns))
	view := f.waitStatus(t, "a", v1.PortDown, controller.ReasonNetnsGone)
	if d, _ := view["status_detail"].(string); !strings.Contains(d, "network namespace does not exist") {
		t.Errorf("status_detail %q", d)
	}
	f.metric(t, "ovs_vnet_ports_down", downMetric(0, 1, 0, 0))
	if code, body := f.Do(t, "PUT", "/v1/ports/a", portA); code != 400 {
		t.Fatalf("identical PUT of a port whose netns is gone: %d %v", code, body)
	}
	if n := cf.attachCount("a"); n != 1 {
		t.Errorf("%d attaches: a port whose namespace is gone was attached again", n)
	}
	f.waitStatus(t, "a", v1.PortDown, controller.ReasonNetnsGone)
	// The namespace is back, without the port's end: no event says so.
	cf.cmu.Lock()
	cf.broken["a"] = fmt.Errorf("veth end: %w", datapath.ErrLinkGone)
	cf.cmu.Unlock()
	f.waitStatus(t, "a", v1.PortForwarding, "")
	f.metric(t, "ovs_vnet_ports_down", downMetric(0, 0, 0, 0))
}

// TestInPlaceChangeRepairs: a PUT that changes only a broken port's
// groups repairs it before the answer, as an identical PUT does — a CNI
// re-ADD with changed groups and a new namespace at the old path must
// not answer 200 with no interface.
func TestInPlaceChangeRepairs(t *testing.T) {
	f, cf := driftFixture(t)
	f.waitStatus(t, "a", v1.PortForwarding, "")
	if code, body := f.Do(t, "PUT", "/v1/security-groups/web", webRules); code != 201 {
		t.Fatalf("group: %d %v", code, body)
	}
	cf.cmu.Lock()
	cf.broken["a"] = fmt.Errorf("tap tapa: %w", datapath.ErrLinkGone) // no signal: only the PUT looks
	cf.cmu.Unlock()
	code, body := f.Do(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ifname":"tapa","security_groups":["web"]}`)
	if code != 200 || body["status"] != v1.PortForwarding {
		t.Fatalf("in-place PUT of a broken port: %d %v", code, body)
	}
	if n := cf.attachCount("a"); n != 2 {
		t.Errorf("%d attaches before the answer, want 2: the broken port was not repaired", n)
	}
	if p := policyText(cf.LastPolicy()); !strings.Contains(p, "ports a=web") {
		t.Errorf("policy %s", p)
	}
}

// TestDriftFailedRepairBacksOff: a repair that fails leaves the port down
// with the check's reason, the attach's words, and a backoff that signals
// do not cut short; an identical PUT answers the attach's error and keeps
// the port, and repairs it once the attach can.
func TestDriftFailedRepairBacksOff(t *testing.T) {
	f, cf := driftFixture(t)
	cf.Mu.Lock()
	cf.FailPorts["a"] = errors.New("boom")
	cf.Mu.Unlock()
	cf.breakPort("a", fmt.Errorf("interface vnetx: %w", datapath.ErrNotBound))
	view := f.waitStatus(t, "a", v1.PortDown, controller.ReasonNotBound)
	if n := cf.attachesUnderSignals("a"); n > 5 {
		t.Errorf("%d attaches in a second of signals: the repair does not back off", n)
	}
	view = f.waitStatus(t, "a", v1.PortDown, controller.ReasonNotBound)
	if d, _ := view["status_detail"].(string); !strings.Contains(d, "boom") {
		t.Errorf("status_detail %q", d)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/a", portA); code != 500 || !strings.Contains(fmt.Sprint(body["error"]), "boom") {
		t.Fatalf("identical PUT of a port that cannot be repaired: %d %v", code, body)
	}
	f.waitStatus(t, "a", v1.PortDown, controller.ReasonNotBound)
	cf.Mu.Lock()
	delete(cf.FailPorts, "a")
	cf.Mu.Unlock()
	if code, body := f.Do(t, "PUT", "/v1/ports/a", portA); code != 200 || body["status"] != v1.PortForwarding {
		t.Fatalf("identical PUT of a port that can be repaired: %d %v", code, body)
	}
	f.metric(t, "ovs_vnet_ports_down", downMetric(0, 0, 0, 0))
}

// TestDriftRepairThatDoesNotTakeBacksOff: an attach that succeeds while
// the check still fails is a failed repair: the port stays down and the
// repair backs off, rather than taking each signal (its own attach's
// events) for a new fault and attaching again at once.
func TestDriftRepairThatDoesNotTakeBacksOff(t *testing.T) {
	f, cf := driftFixture(t)
	cf.cmu.Lock()
	cf.sticky["a"] = true
	cf.cmu.Unlock()
	cf.breakPort("a", fmt.Errorf("interface vnetx: %w", datapath.ErrNotBound))
	if n := cf.attachesUnderSignals("a"); n > 5 {
		t.Errorf("%d attaches in a second of signals: a repair that does not take does not back off", n)
	}
	view := f.waitStatus(t, "a", v1.PortDown, controller.ReasonNotBound)
	if d, _ := view["status_detail"].(string); !strings.Contains(d, "did not take") {
		t.Errorf("status_detail %q", d)
	}
}

// TestDriftRepairIsAChange: a repair holds the port as a request does: a
// DELETE or a different PUT of it meanwhile is refused, an identical PUT
// waits for the repair and answers its outcome, and a DELETE after it
// clears the port's status.
func TestDriftRepairIsAChange(t *testing.T) {
	f, cf := driftFixture(t)
	f.Fake.Gate = make(chan struct{})
	cf.breakPort("a", fmt.Errorf("tap tapa: %w", datapath.ErrLinkGone))
	for f.Fake.Attaching.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	f.waitStatus(t, "a", v1.PortDown, controller.ReasonLinkGone)
	if code, body := f.Do(t, "DELETE", "/v1/ports/a", ""); code != 409 {
		t.Fatalf("DELETE during a repair: %d %v", code, body)
	}
	changed := `{"network":"blue","type":"tap","ifname":"tapb"}`
	if code, body := f.Do(t, "PUT", "/v1/ports/a", changed); code != 409 {
		t.Fatalf("different PUT during a repair: %d %v", code, body)
	}
	put := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("PUT", f.Srv.URL+"/v1/ports/a", strings.NewReader(portA))
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			put <- err.Error()
			return
		}
		resp.Body.Close()
		put <- resp.Status
	}()
	close(f.Fake.Gate)
	if got := <-put; got != "200 OK" {
		t.Fatalf("identical PUT during a repair: %s, want 200 once repaired", got)
	}
	f.waitStatus(t, "a", v1.PortForwarding, "")
	cf.breakPort("a", fmt.Errorf("netns x: %w", datapath.ErrNoNetns))
	f.waitStatus(t, "a", v1.PortDown, controller.ReasonNetnsGone)
	if code, body := f.Do(t, "DELETE", "/v1/ports/a", ""); code != 204 {
		t.Fatalf("DELETE of a down port: %d %v", code, body)
	}
	f.metric(t, "ovs_vnet_ports_down", downMetric(0, 0, 0, 0))
}

// TestDriftStartsDown: a port the start-up reconcile could not attach
// shows down with the attach's reason; with a backend that checks nothing,
// an identical PUT attaches it again.
func TestDriftStartsDown(t *testing.T) {
	st := openStore(t)
	n, _ := model.NewNetwork("blue", v1.NetworkSpec{Subnet: "10.0.0.0/24"})
	n.ID = 1
	p, _ := model.NewPort("a", v1.PortSpec{Network: "blue", Type: v1.PortTap, Ifname: "tapa"})
	p.MAC, p.IP = model.PortMAC("a"), n.Subnet.Addr().Next().Next()
	if err := errors.Join(controllertest.CreateNetwork(st, n), st.CreatePort(context.Background(), p)); err != nil {
		t.Fatal(err)
	}
	fake := controllertest.NewFake()
	fake.FailPorts["a"] = fmt.Errorf("create tap: %w", datapath.ErrConflict)
	f := startFixtureOn(t, st, fake, fake)
	view := f.waitStatus(t, "a", v1.PortDown, controller.ReasonAttachFailed)
	if d, _ := view["status_detail"].(string); !strings.Contains(d, "create tap") {
		t.Errorf("status_detail %q", d)
	}
	f.metric(t, "ovs_vnet_ports_down", downMetric(0, 0, 0, 1))
	if code, body := f.Do(t, "PUT", "/v1/ports/a", portA); code != 409 {
		t.Fatalf("identical PUT of a port that cannot be attached: %d %v", code, body)
	}
	fake.Mu.Lock()
	delete(fake.FailPorts, "a")
	fake.Mu.Unlock()
	if code, body := f.Do(t, "PUT", "/v1/ports/a", portA); code != 200 || body["status"] != v1.PortForwarding {
		t.Fatalf("identical PUT of a port that can be attached: %d %v", code, body)
	}
	f.metric(t, "ovs_vnet_port_repairs_total", repairsMetric(1, 1))
}

// openStore opens a store of the test's own, closed when it ends.
func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestDriftNeverIntoAnotherProcessesNetns: a port whose namespace is a
// process's path (/proc/PID/ns/net) is not made again when the path has
// come to name another namespace — as when the process ended and its PID
// went to another container's. The process here moves itself from one
// namespace to another (an exec of nsenter), which is what a reused PID
// looks like from the path.
func TestDriftNeverIntoAnotherProcessesNetns(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, for network namespaces")
	ns1, ns2 := testbed.Netns(t, "vdr"), testbed.Netns(t, "vdr")
	proc := testbed.StartNetnsProcess(t, ns1, "read x; exec nsenter --net=/var/run/netns/"+ns2+" sleep 600")
	path := proc.Path

	f, cf := driftFixture(t)
	body := `{"network":"blue","type":"veth","ifname":"eth0","netns":"` + path + `"}`
	if code, resp := f.Do(t, "PUT", "/v1/ports/v", body); code != 201 {
		t.Fatalf("port: %d %v", code, resp)
	}
	// Seen forwarding in ns1 once, by a check.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		cf.signal()
		_, seen := f.C.NetnsID("v")
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher never recorded port v's namespace")
		}
	}
	attaches := cf.attachCount("v")

	if _, err := proc.Move.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	proc.WaitIn(t, ns2, true)
	cf.breakPort("v", fmt.Errorf("host link vnetv is missing: %w", datapath.ErrLinkGone))
	view := f.waitStatus(t, "v", v1.PortDown, controller.ReasonNetnsGone)
	if d, _ := view["status_detail"].(string); !strings.Contains(d, "its process has gone") {
		t.Errorf("status_detail %q", d)
	}
	if code, resp := f.Do(t, "PUT", "/v1/ports/v", body); code != 400 {
		t.Errorf("identical PUT into another process's namespace: %d %v", code, resp)
	}
	if n := cf.attachCount("v"); n != attaches {
		t.Errorf("port v attached %d more times, into a namespace that is not its own", n-attaches)
	}
}

// TestDriftStartNotIntoAnotherProcessesNetns: at start-up the daemon has
// seen no port forwarding yet; a port whose namespace is a process's path
// and whose interface is not in the namespace that path names now is left
// down (netns_gone), not made again there. One whose interface is there is
// attached, and its namespace remembered.
func TestDriftStartNotIntoAnotherProcessesNetns(t *testing.T) {
	testbed.Need(t, os.Geteuid() == 0, "root, for network namespaces")
	ns := testbed.Netns(t, "vdr")
	path := testbed.StartNetnsProcess(t, ns, "exec sleep 600").Path
	want, err := nsfile.Identify(context.Background(), "/var/run/netns/"+ns)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	n, _ := model.NewNetwork("blue", v1.NetworkSpec{Subnet: "10.0.0.0/24"})
	n.ID = 1
	if err := controllertest.CreateNetwork(st, n); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"gone", "there"} {
		p, err := model.NewPort(name, v1.PortSpec{Network: "blue", Type: v1.PortVeth, Netns: path, Ifname: "eth" + name})
		if err != nil {
			t.Fatal(err)
		}
		p.MAC, p.IP = model.PortMAC(name), netip.MustParseAddr(fmt.Sprintf("10.0.0.%d", 10+i))
		if err := st.CreatePort(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	cf := newCheckFake()
	cf.broken["gone"] = fmt.Errorf("ethgone is missing in netns %s: %w", path, datapath.ErrLinkGone)
	f := startFixtureOn(t, st, cf.Fake, cf)
	f.waitStatus(t, "gone", v1.PortDown, controller.ReasonNetnsGone)
	f.waitStatus(t, "there", v1.PortForwarding, "")
	if n := cf.attachCount("gone"); n != 0 {
		t.Errorf("port gone attached %d times into a namespace it was not seen in", n)
	}
	got, seen := f.C.NetnsID("there")
	if !seen || got != want {
		t.Errorf("port there's namespace not remembered: %v %v", got, seen)
	}
}
