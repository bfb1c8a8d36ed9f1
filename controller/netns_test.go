package controller_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestNetnsCheckedOutsideTheLocks holds a port's namespace check, as a
// hostile path could until the check's bound: meanwhile other ports,
// networks and deletes are served. The held port then fails with the
// check's verdict and leaves nothing behind.
func TestNetnsCheckedOutsideTheLocks(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	if code, body := f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	// No port request has run yet, and the first starts after this.
	f.CheckNetns = func(ctx context.Context, p model.Port) (model.Port, error) {
		if p.Name != "stuck" {
			return controllertest.CheckNetns(ctx, p)
		}
		close(entered)
		<-release
		return p, fmt.Errorf("%w: netns %s is a FIFO", v1.ErrInvalid, p.Netns)
	}
	stuck := make(chan int, 1)
	go func() {
		code, _ := f.Do(t, "PUT", "/v1/ports/stuck", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.9"}`)
		stuck <- code
	}()
	<-entered
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"PUT", "/v1/ports/other", `{"network":"blue","netns":"` + dir + `"}`, 201},
		{"PUT", "/v1/networks/red", `{"subnet":"10.1.0.0/24"}`, 201},
		{"DELETE", "/v1/ports/other", "", 204},
		{"DELETE", "/v1/networks/red", "", 204},
	} {
		if code, body := f.Do(t, c.method, c.path, c.body); code != c.want {
			t.Fatalf("%s %s while a netns check is held: %d %v, want %d", c.method, c.path, code, body, c.want)
		}
	}
	close(release)
	if code := <-stuck; code != 400 {
		t.Fatalf("PUT of the held port: %d, want 400", code)
	}
	if ports, err := controllertest.StoredPorts(t, f.St); err != nil || len(ports) != 0 {
		t.Fatalf("stored ports %v (%v), want none", ports, err)
	}
	// Its address was never taken.
	if code, body := f.Do(t, "PUT", "/v1/ports/again", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.9"}`); code != 201 {
		t.Fatalf("%d %v", code, body)
	}
}

// TestNetnsVerdictOnlyForNewPorts: an identical PUT of a port whose
// namespace has gone since is still answered 200, as before the check
// moved out of the locks; a different one is still a conflict.
func TestNetnsVerdictOnlyForNewPorts(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	spec := `{"network":"blue","netns":"` + dir + `","ip":"10.0.0.9","default_route":true}`
	if code, body := f.Do(t, "PUT", "/v1/ports/p", spec); code != 201 || body["default_route"] != true {
		t.Fatalf("%d %v", code, body)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/p", spec); code != 200 {
		t.Fatalf("identical PUT after the netns went: %d %v", code, body)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/p", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.9"}`); code != 409 {
		t.Fatalf("PUT without default_route: %d %v, want 409", code, body)
	}
	if code, body := f.Do(t, "PUT", "/v1/ports/q", `{"network":"blue","netns":"`+dir+`","ifname":"eth1"}`); code != 400 {
		t.Fatalf("new port in a missing netns: %d %v, want 400", code, body)
	}
}

// TestDefaultRouteRestoreCounted: a port that displaced a default route
// has it put back by the controller once the backend detached the port —
// on DELETE and on an attach's rollback; a route that cannot be put back
// (here: the "namespace" is a directory) fails neither, and is counted.
// e2e/netns_test.go puts real routes back.
func TestDefaultRouteRestoreCounted(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	f.Do(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`)
	f.CheckNetns = func(ctx context.Context, p model.Port) (model.Port, error) {
		p, err := controllertest.CheckNetns(ctx, p)
		if p.DefaultRoute {
			p.Displaced = model.Route{Gateway: netip.MustParseAddr("192.0.2.1"), Dev: "up0"}
		}
		return p, err
	}
	failures := func(want string) {
		t.Helper()
		exposition := "# HELP ovs_vnet_default_route_restore_failures_total Ports detached whose namespace could not be given back the default route the port had displaced (default_route).\n" +
			"# TYPE ovs_vnet_default_route_restore_failures_total counter\novs_vnet_default_route_restore_failures_total " + want + "\n"
		if err := testutil.GatherAndCompare(f.Reg, strings.NewReader(exposition), "ovs_vnet_default_route_restore_failures_total"); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"plain", "taker"} {
		spec := `{"network":"blue","netns":"` + dir + `","ifname":"` + name + `","default_route":` + fmt.Sprint(name == "taker") + `}`
		if code, body := f.Do(t, "PUT", "/v1/ports/"+name, spec); code != 201 {
			t.Fatalf("PUT %s: %d %v", name, code, body)
		}
		if code, body := f.Do(t, "DELETE", "/v1/ports/"+name, ""); code != 204 {
			t.Fatalf("DELETE %s: %d %v", name, code, body)
		}
	}
	failures("1")
	f.Fake.FailPorts["failed"] = errors.New("boom")
	if code, body := f.Do(t, "PUT", "/v1/ports/failed", `{"network":"blue","netns":"`+dir+`","default_route":true}`); code != 500 {
		t.Fatalf("PUT of a port whose attach fails: %d %v", code, body)
	}
	failures("2")
}
