package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// fakeBackend records what the controller asks of a datapath. It is for the
// controller's logic only; the real backends are proven in e2e/.
type fakeBackend struct {
	mu        sync.Mutex
	networks  map[string]bool
	ports     map[string]bool
	failPorts map[string]error
	routers   map[string]model.Router
	// failRouters makes the next EnsureRouter of a name fail, once, so that
	// the rollback's own EnsureRouter of the old router succeeds.
	failRouters   map[string]error
	ensureRouters int            // EnsureRouter calls
	pruned        datapath.State // the last Prune's argument
	// gate, when set, holds every AttachPort until it is closed;
	// attaching counts the ones held.
	gate      chan struct{}
	attaching atomic.Int32
	flowsErr  error // what ovsFake's Flows fails with
}

func newFake() *fakeBackend {
	return &fakeBackend{
		networks: map[string]bool{}, ports: map[string]bool{}, failPorts: map[string]error{},
		routers: map[string]model.Router{}, failRouters: map[string]error{},
	}
}

func (f *fakeBackend) Info() datapath.Info { return datapath.Info{Backend: "fake"} }

// Capabilities: the fake traces. A fake made of it with more (or other)
// roles reports its own.
func (f *fakeBackend) Capabilities() datapath.Capabilities {
	return datapath.Capabilities{Tracer: f}
}

// errFakeDatapath is the fake's failure of a trace to brokenTrace.
var errFakeDatapath = errors.New("fake datapath failed")

var brokenTrace = netip.MustParseAddr("192.0.2.255")

// Trace answers every query as delivered to the sender itself, except one to
// brokenTrace, which fails as a datapath would.
func (f *fakeBackend) Trace(_ context.Context, _ datapath.State, q v1.Query) (v1.Result, error) {
	if q.To == brokenTrace {
		return v1.Result{}, errFakeDatapath
	}
	return v1.Result{Backend: "ovs", Packet: "icmp", Steps: []v1.Step{{Table: 0, Stage: "classify"}},
		Verdict: v1.Delivered, Ports: []string{q.From}, Summary: "delivered"}, nil
}

// ovsFake is the fake with flows, as the OVS backend has: one per port.
type ovsFake struct{ *fakeBackend }

func (f ovsFake) Capabilities() datapath.Capabilities {
	c := f.fakeBackend.Capabilities()
	c.FlowLister = f
	return c
}

func (f ovsFake) Flows(_ context.Context, s datapath.State) ([]v1.Flow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.flowsErr != nil {
		return nil, f.flowsErr
	}
	var out []v1.Flow
	for _, p := range s.Ports {
		out = append(out, v1.Flow{OwnerKind: "port", Owner: p.Name, TableName: "classify", Cookie: "0x7604000000010000", Text: "cookie=0x7604000000010000, table=0"})
	}
	return out, nil
}
func (f *fakeBackend) Ready() error { return nil }
func (f *fakeBackend) Close() error { return nil }
func (f *fakeBackend) EnsureNetwork(_ context.Context, n model.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.networks[n.Name] = true
	return nil
}
func (f *fakeBackend) DeleteNetwork(_ context.Context, n model.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.networks, n.Name)
	return nil
}
func (f *fakeBackend) AttachPort(_ context.Context, _ model.Network, p model.Port) (model.Port, error) {
	if f.gate != nil {
		f.attaching.Add(1)
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ports[p.Name] = true // a failure can leave half a port: rollback must clear it
	if err := f.failPorts[p.Name]; err != nil {
		return p, err
	}
	p.Ofport = len(f.ports)
	return p, nil
}
func (f *fakeBackend) PortStats(context.Context) ([]datapath.PortStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var stats []datapath.PortStats
	for name := range f.ports {
		stats = append(stats, datapath.PortStats{Port: name, RxPackets: 1})
	}
	return stats, nil
}
func (f *fakeBackend) DetachPort(_ context.Context, _ model.Network, p model.Port) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ports, p.Name)
	return nil
}
func (f *fakeBackend) Held(context.Context) (datapath.Held, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return datapath.Held{Ports: slices.Sorted(maps.Keys(f.ports)), Networks: slices.Sorted(maps.Keys(f.networks))}, nil
}
func (f *fakeBackend) Prune(_ context.Context, s datapath.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruned = s
	return nil
}
func (f *fakeBackend) EnsureRouter(_ context.Context, r model.Router) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensureRouters++
	f.routers[r.Name] = r // a failure can leave half a router: rollback must clear it
	if err := f.failRouters[r.Name]; err != nil {
		delete(f.failRouters, r.Name)
		return err
	}
	return nil
}
func (f *fakeBackend) DeleteRouter(_ context.Context, r model.Router) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.routers, r.Name)
	return nil
}

// failRouter makes the next EnsureRouter of name fail with err.
func (f *fakeBackend) failRouter(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failRouters[name] = err
}

// router returns what the datapath has for the router name.
func (f *fakeBackend) router(name string) (model.Router, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.routers[name]
	return r, ok
}

type fixture struct {
	c    *Controller
	fake *fakeBackend
	srv  *httptest.Server
	st   store.Store
	reg  *prometheus.Registry
	stop func() // ends Run; the test's cleanup calls it too
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return startFixture(t, st)
}

// startFixture runs a controller on st with a fresh fake backend and serves its
// API; a second call on the same store is a daemon restart.
func startFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	fake := newFake()
	return startFixtureOn(t, st, fake, fake)
}

// startFixtureOn is startFixture with the backend b, which is fake or wraps it.
func startFixtureOn(t *testing.T, st store.Store, fake *fakeBackend, b datapath.Backend) *fixture {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(st, "h1", log, NewMetrics(reg, "test"))
	if err != nil {
		t.Fatal(err)
	}
	c.checkNetns = fakeCheckNetns
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(context.Context) (datapath.Backend, error) { return b, nil }) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	for c.Ready() != nil {
		time.Sleep(time.Millisecond)
	}
	srv := httptest.NewServer(NewHandler(c, reg, "test", "s3cret"))
	t.Cleanup(srv.Close)
	return &fixture{c: c, fake: fake, srv: srv, st: st, reg: reg, stop: stop}
}

func (f *fixture) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestAuth(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/v1/networks", "", 401},
		{"/v1/networks", "Bearer wrong", 401},
		{"/metrics", "", 401},
		{"/v1/networks", "Bearer s3cret", 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
	} {
		req, _ := http.NewRequest("GET", f.srv.URL+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.auth, resp.StatusCode, c.want)
		}
	}
}

func TestAttachFailureRollsBack(t *testing.T) {
	f := newFixture(t)
	if code, body := f.do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/29"}`); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
	dir := t.TempDir() // any existing path will do as the namespace for the fake
	f.fake.failPorts["bad"] = fmt.Errorf("boom: %w", datapath.ErrConflict)
	code, body := f.do(t, "PUT", "/v1/ports/bad", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.2"}`)
	if code != 409 || body["error"] == nil {
		t.Fatalf("%d %v", code, body)
	}
	if f.fake.ports["bad"] {
		t.Fatal("failed port left in the datapath")
	}
	if ports, _ := storedPorts(t, f.st); len(ports) != 0 {
		t.Fatalf("failed port left in the store: %v", ports)
	}
	// Its address is free again.
	if code, body := f.do(t, "PUT", "/v1/ports/good", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.2"}`); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
}

func TestConcurrentPutsOneWinner(t *testing.T) {
	f := newFixture(t)
	f.do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	dir := t.TempDir()
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for i := range 20 {
		wg.Add(2)
		go func() { // same IP, different names
			defer wg.Done()
			code, _ := f.do(t, "PUT", fmt.Sprintf("/v1/ports/p%d", i), `{"network":"blue","netns":"`+dir+`","ifname":"e`+fmt.Sprint(i)+`","ip":"10.0.0.9"}`)
			codes <- code
		}()
		go func() { // same name, different IPs
			defer wg.Done()
			code, _ := f.do(t, "PUT", "/v1/ports/same", `{"network":"blue","netns":"`+dir+`","ifname":"s0","ip":"10.0.0.`+fmt.Sprint(100+i)+`"}`)
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[201] != 2 || count[409] != 38 {
		t.Fatalf("status counts %v: want exactly one winner per IP and per name", count)
	}
	ports, _ := storedPorts(t, f.st)
	if len(ports) != 2 {
		t.Fatalf("store has %d ports", len(ports))
	}
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := model.NewNetwork("blue", v1.NetworkSpec{Subnet: "10.0.0.0/24"})
	n.ID = 1
	p, _ := model.NewPort("a", v1.PortSpec{Network: "blue", Netns: "x", IP: "10.0.0.7"})
	p.MAC = model.PortMAC("a")
	if err := errors.Join(createNetwork(st, n), st.CreatePort(context.Background(), p)); err != nil {
		t.Fatal(err)
	}
	c, err := New(st, "h1", slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry(), "t"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.pools["blue"].Reserve(p.IP, "other"); err == nil {
		t.Fatal("address of a stored port is free after load")
	}
	st.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsLint(t *testing.T) {
	f := newFixture(t)
	f.do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	want := `# HELP ovs_vnet_networks Networks in the desired state.
# TYPE ovs_vnet_networks gauge
ovs_vnet_networks 1
`
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(want), "ovs_vnet_networks"); err != nil {
		t.Fatal(err)
	}
}

// TestReadersDoNotWait: probes, metrics and stats read what the controller
// published, so a change that holds the lock (an attach waiting on OVS) does
// not stall them.
func TestReadersDoNotWait(t *testing.T) {
	f := newFixture(t)
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		if err := f.c.Ready(); err != nil {
			done <- err
			return
		}
		if _, err := f.reg.Gather(); err != nil {
			done <- err
			return
		}
		_, err := f.c.PortStats(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reader waited for the controller's lock")
	}
}

// TestAttachesRunAtOnce: port attaches do not wait for each other, a second
// request for a port under way is refused, and a network change waits until
// they are done.
func TestAttachesRunAtOnce(t *testing.T) {
	f := newFixture(t)
	if code, body := f.do(t, "PUT", "/v1/networks/n", `{"subnet":"10.9.0.0/24"}`); code != 201 {
		t.Fatalf("network: %d %v", code, body)
	}
	f.fake.gate = make(chan struct{})
	const ports = 4
	codes := make(chan int, ports)
	for i := range ports {
		go func() {
			code, _ := f.do(t, "PUT", fmt.Sprintf("/v1/ports/p%d", i), `{"network":"n","type":"tap"}`)
			codes <- code
		}()
	}
	for f.fake.attaching.Load() < ports {
		time.Sleep(time.Millisecond)
	}
	if code, body := f.do(t, "PUT", "/v1/ports/p0", `{"network":"n","type":"tap"}`); code != 409 {
		t.Fatalf("a second PUT of a port being attached: %d %v", code, body)
	}
	netDone := make(chan int, 1)
	go func() {
		code, _ := f.do(t, "PUT", "/v1/networks/m", `{"subnet":"10.8.0.0/24"}`)
		netDone <- code
	}()
	select {
	case code := <-netDone:
		t.Fatalf("a network change went on during port attaches: %d", code)
	case <-time.After(50 * time.Millisecond):
	}
	close(f.fake.gate)
	for range ports {
		if code := <-codes; code != 201 {
			t.Fatalf("attach: %d", code)
		}
	}
	if code := <-netDone; code != 201 {
		t.Fatalf("network after the attaches: %d", code)
	}
	ips := map[string]bool{}
	for i := range ports {
		code, body := f.do(t, "GET", fmt.Sprintf("/v1/ports/p%d", i), "")
		if code != 200 || ips[body["ip"].(string)] {
			t.Fatalf("port p%d: %d %v (ips so far %v)", i, code, body, ips)
		}
		ips[body["ip"].(string)] = true
	}
}

// storedPorts is what a restarted daemon would load.
func storedPorts(t *testing.T, st store.Store) ([]model.Port, error) {
	t.Helper()
	s, err := st.Load(context.Background())
	return s.Ports, err
}

// createNetwork stores n as a test's earlier run would have.
func createNetwork(st store.Store, n model.Network) error {
	_, err := st.CreateNetwork(context.Background(), n)
	return err
}

// putRouter stores r as a test's earlier run would have.
func putRouter(st store.Store, r model.Router) error {
	_, err := st.PutRouter(context.Background(), r)
	return err
}
