package controller_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// fixture is controllertest's, with the helpers of this package's tests.
type fixture struct{ *controllertest.Fixture }

func newFixture(t *testing.T) *fixture { return &fixture{controllertest.NewFixture(t)} }

func startFixture(t *testing.T, st store.Store) *fixture {
	return &fixture{controllertest.StartFixture(t, st)}
}

func startFixtureOn(t *testing.T, st store.Store, fake *controllertest.Fake, b datapath.Backend, opts ...controller.Option) *fixture {
	return &fixture{controllertest.StartFixtureOn(t, st, fake, b, opts...)}
}

func TestAttachFailureRollsBack(t *testing.T) {
	f := newFixture(t)
	if code, body := f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/29"}`); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
	dir := t.TempDir() // any existing path will do as the namespace for the fake
	f.Fake.FailPorts["bad"] = fmt.Errorf("boom: %w", datapath.ErrConflict)
	code, body := f.Do(t, "PUT", "/v1/ports/bad", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.2"}`)
	if code != 409 || body["error"] == nil {
		t.Fatalf("%d %v", code, body)
	}
	if f.Fake.Ports["bad"] {
		t.Fatal("failed port left in the datapath")
	}
	if ports, _ := controllertest.StoredPorts(t, f.St); len(ports) != 0 {
		t.Fatalf("failed port left in the store: %v", ports)
	}
	// Its address is free again.
	if code, body := f.Do(t, "PUT", "/v1/ports/good", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.2"}`); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
}

func TestConcurrentPutsOneWinner(t *testing.T) {
	f := newFixture(t)
	f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	dir := t.TempDir()
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for i := range 20 {
		wg.Add(2)
		go func() { // same IP, different names
			defer wg.Done()
			code, _ := f.Do(t, "PUT", fmt.Sprintf("/v1/ports/p%d", i), `{"network":"blue","netns":"`+dir+`","ifname":"e`+fmt.Sprint(i)+`","ip":"10.0.0.9"}`)
			codes <- code
		}()
		go func() { // same name, different IPs
			defer wg.Done()
			code, _ := f.Do(t, "PUT", "/v1/ports/same", `{"network":"blue","netns":"`+dir+`","ifname":"s0","ip":"10.0.0.`+fmt.Sprint(100+i)+`"}`)
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
	ports, _ := controllertest.StoredPorts(t, f.St)
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
	if err := errors.Join(controllertest.CreateNetwork(st, n), st.CreatePort(context.Background(), p)); err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(st, "h1", slog.New(slog.NewTextHandler(io.Discard, nil)), controller.NewMetrics(prometheus.NewRegistry(), "t"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Reserve("blue", p.IP, "other"); err == nil {
		t.Fatal("address of a stored port is free after load")
	}
	st.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsLint(t *testing.T) {
	f := newFixture(t)
	f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	problems, err := testutil.GatherAndLint(f.Reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	want := `# HELP ovs_vnet_networks Networks in the desired state.
# TYPE ovs_vnet_networks gauge
ovs_vnet_networks 1
`
	if err := testutil.GatherAndCompare(f.Reg, strings.NewReader(want), "ovs_vnet_networks"); err != nil {
		t.Fatal(err)
	}
}

// TestReadersDoNotWait: probes, metrics and stats read what the controller
// published, so a change that holds the lock (an attach waiting on OVS) does
// not stall them.
func TestReadersDoNotWait(t *testing.T) {
	f := newFixture(t)
	defer f.C.HoldLock()()
	done := make(chan error, 1)
	go func() {
		if err := f.C.Ready(); err != nil {
			done <- err
			return
		}
		if _, err := f.Reg.Gather(); err != nil {
			done <- err
			return
		}
		_, err := f.C.PortStats(context.Background())
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
	if code, body := f.Do(t, "PUT", "/v1/networks/n", `{"subnet":"10.9.0.0/24"}`); code != 201 {
		t.Fatalf("network: %d %v", code, body)
	}
	f.Fake.Gate = make(chan struct{})
	const ports = 4
	codes := make(chan int, ports)
	for i := range ports {
		go func() {
			code, _ := f.Do(t, "PUT", fmt.Sprintf("/v1/ports/p%d", i), `{"network":"n","type":"tap"}`)
			codes <- code
		}()
	}
	for f.Fake.Attaching.Load() < ports {
		time.Sleep(time.Millisecond)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/p0", `{"network":"n","type":"tap"}`); code != 409 {
		t.Fatalf("a second PUT of a port being attached: %d %v", code, body)
	}
	netDone := make(chan int, 1)
	go func() {
		code, _ := f.Do(t, "PUT", "/v1/networks/m", `{"subnet":"10.8.0.0/24"}`)
		netDone <- code
	}()
	select {
	case code := <-netDone:
		t.Fatalf("a network change went on during port attaches: %d", code)
	case <-time.After(50 * time.Millisecond):
	}
	close(f.Fake.Gate)
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
		code, body := f.Do(t, "GET", fmt.Sprintf("/v1/ports/p%d", i), "")
		if code != 200 || ips[body["ip"].(string)] {
			t.Fatalf("port p%d: %d %v (ips so far %v)", i, code, body, ips)
		}
		ips[body["ip"].(string)] = true
	}
}
