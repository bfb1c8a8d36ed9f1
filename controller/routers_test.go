package controller_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// withNetworks creates one /24 network per name.
func (f *fixture) withNetworks(t *testing.T, names ...string) {
	t.Helper()
	for i, n := range names {
		if code, body := f.Do(t, "PUT", "/v1/networks/"+n, fmt.Sprintf(`{"subnet":"10.%d.0.0/24"}`, i+1)); code != 201 {
			t.Fatalf("PUT network %s: %d %v", n, code, body)
		}
	}
}

// mustDo sends a request and fails the test unless it gets status want.
func (f *fixture) mustDo(t *testing.T, method, path, body string, want int) map[string]any {
	t.Helper()
	code, out := f.Do(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s %s: %d %v, want %d", method, path, body, code, out, want)
	}
	return out
}

// storedRouters is what a restarted daemon would load.
func (f *fixture) storedRouters(t *testing.T) []model.Router {
	t.Helper()
	s, err := f.St.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Routers
}

func TestRouterLifecycle(t *testing.T) {
	f := newFixture(t)
	f.withNetworks(t, "blue", "red", "green")

	got := f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["red","blue"]}`, 201)
	if fmt.Sprint(got["networks"]) != "[blue red]" || got["id"] != 1.0 || got["name"] != "r1" {
		t.Fatalf("created router: %v", got)
	}
	// The same networks in another order are the same spec.
	if got := f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 200); got["id"] != 1.0 {
		t.Fatalf("same router: %v", got)
	}

	// Another network list replaces the router live, keeping its ID.
	got = f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["green","blue"]}`, 200)
	want := model.Router{Name: "r1", Networks: []string{"blue", "green"}, ID: 1}
	if fmt.Sprint(got["networks"]) != "[blue green]" || got["id"] != 1.0 {
		t.Fatalf("replaced router: %v", got)
	}
	if r, _ := f.Fake.Router("r1"); !reflect.DeepEqual(r, want) {
		t.Fatalf("datapath has %+v, want %+v", r, want)
	}
	if stored := f.storedRouters(t); !reflect.DeepEqual(stored, []model.Router{want}) {
		t.Fatalf("store has %+v", stored)
	}
	// red is free again, green is not.
	f.mustDo(t, "DELETE", "/v1/networks/red", "", 204)

	list := f.mustDo(t, "GET", "/v1/routers", "", 200)
	if routers, _ := list["routers"].([]any); len(routers) != 1 {
		t.Fatalf("list: %v", list)
	}
	f.mustDo(t, "GET", "/v1/routers/r1", "", 200)

	f.mustDo(t, "DELETE", "/v1/routers/r1", "", 204)
	if _, ok := f.Fake.Router("r1"); ok {
		t.Fatal("deleted router left in the datapath")
	}
	if stored := f.storedRouters(t); len(stored) != 0 {
		t.Fatalf("deleted router left in the store: %v", stored)
	}
	f.mustDo(t, "GET", "/v1/routers/r1", "", 404)
	f.mustDo(t, "DELETE", "/v1/routers/r1", "", 404)
	if list := f.mustDo(t, "GET", "/v1/routers", "", 200); fmt.Sprint(list["routers"]) != "[]" {
		t.Fatalf("empty list is %v, want []", list["routers"])
	}
}

func TestRouterBadRequests(t *testing.T) {
	f := newFixture(t)
	f.withNetworks(t, "blue", "red")
	f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201)
	for _, c := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"bad name", "PUT", "/v1/routers/R_1", `{"networks":["blue","red"]}`, 400},
		{"one network", "PUT", "/v1/routers/r2", `{"networks":["blue"]}`, 400},
		{"no networks", "PUT", "/v1/routers/r2", `{}`, 400},
		{"duplicate network", "PUT", "/v1/routers/r2", `{"networks":["blue","blue"]}`, 400},
		{"bad network name", "PUT", "/v1/routers/r2", `{"networks":["blue","Red"]}`, 400},
		{"unknown network", "PUT", "/v1/routers/r2", `{"networks":["blue","nope"]}`, 404},
		{"replace with unknown network", "PUT", "/v1/routers/r1", `{"networks":["blue","nope"]}`, 404},
		{"unknown field", "PUT", "/v1/routers/r2", `{"networks":["blue","red"],"nat":true}`, 400},
		{"networks not a list", "PUT", "/v1/routers/r2", `{"networks":"blue"}`, 400},
		{"empty body", "PUT", "/v1/routers/r2", ``, 400},
		{"get unknown", "GET", "/v1/routers/zzz", ``, 404},
		{"delete unknown", "DELETE", "/v1/routers/zzz", ``, 404},
		{"wrong method", "POST", "/v1/routers", `{}`, 405},
		{"network in use by a router", "DELETE", "/v1/networks/blue", ``, 409},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := f.mustDo(t, c.method, c.path, c.body, c.want)
			if msg, _ := out["error"].(string); msg == "" {
				t.Fatalf("no JSON error: %v", out)
			}
			want := []model.Router{{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}}
			if got := f.storedRouters(t); !reflect.DeepEqual(got, want) {
				t.Fatalf("store changed: %+v", got)
			}
			if got := f.C.Routers(); !reflect.DeepEqual(got, []v1.Router{want[0].View()}) {
				t.Fatalf("routers changed: %+v", got)
			}
		})
	}
}

func TestNetworkDeleteWhileRouted(t *testing.T) {
	f := newFixture(t)
	f.withNetworks(t, "blue", "red", "green")
	f.mustDo(t, "PUT", "/v1/routers/r2", `{"networks":["blue","red"]}`, 201)
	f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","green"]}`, 201)
	out := f.mustDo(t, "DELETE", "/v1/networks/blue", "", 409)
	if msg := out["error"].(string); !strings.Contains(msg, "routers r1, r2") {
		t.Fatalf("message does not name the routers: %q", msg)
	}
	f.mustDo(t, "DELETE", "/v1/routers/r1", "", 204)
	f.mustDo(t, "DELETE", "/v1/routers/r2", "", 204)
	f.mustDo(t, "DELETE", "/v1/networks/blue", "", 204)
}

func TestRouterCreateFailureRollsBack(t *testing.T) {
	f := newFixture(t)
	f.withNetworks(t, "blue", "red")
	f.Fake.FailRouter("r1", errors.New("boom"))
	if out := f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 500); !strings.Contains(out["error"].(string), "boom") {
		t.Fatalf("error does not say why: %v", out)
	}
	if _, ok := f.Fake.Router("r1"); ok {
		t.Fatal("failed router left in the datapath")
	}
	if stored := f.storedRouters(t); len(stored) != 0 {
		t.Fatalf("failed router left in the store: %v", stored)
	}
	f.mustDo(t, "GET", "/v1/routers/r1", "", 404)
	// Nothing holds the networks or the ID.
	if got := f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201); got["id"] != 1.0 {
		t.Fatalf("ID not reused: %v", got)
	}
}

func TestRouterReplaceFailureRestoresOld(t *testing.T) {
	f := newFixture(t)
	f.withNetworks(t, "blue", "red", "green")
	f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201)
	f.Fake.FailRouter("r1", fmt.Errorf("in the way: %w", datapath.ErrConflict))
	f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","green"]}`, 409)

	old := model.Router{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}
	if r, _ := f.Fake.Router("r1"); !reflect.DeepEqual(r, old) {
		t.Fatalf("datapath has %+v, want the old %+v", r, old)
	}
	if stored := f.storedRouters(t); !reflect.DeepEqual(stored, []model.Router{old}) {
		t.Fatalf("store has %+v, want the old router", stored)
	}
	if r, _ := f.C.Router("r1"); !reflect.DeepEqual(r, old.View()) {
		t.Fatalf("controller has %+v", r)
	}
	// green was never joined.
	f.mustDo(t, "DELETE", "/v1/networks/green", "", 204)
}

func TestRouterIDsLowestFree(t *testing.T) {
	f := newFixture(t)
	f.withNetworks(t, "blue", "red")
	for _, name := range []string{"a", "b", "c"} {
		f.mustDo(t, "PUT", "/v1/routers/"+name, `{"networks":["blue","red"]}`, 201)
	}
	f.mustDo(t, "DELETE", "/v1/routers/b", "", 204)
	if got := f.mustDo(t, "PUT", "/v1/routers/d", `{"networks":["blue","red"]}`, 201); got["id"] != 2.0 {
		t.Fatalf("new router got id %v, want the freed 2", got["id"])
	}
}

func TestRestartReloadsRouters(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	first := startFixture(t, st)
	first.withNetworks(t, "blue", "red")
	first.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201)
	first.Stop()

	second := startFixture(t, st)
	want := model.Router{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}
	if r, _ := second.Fake.Router("r1"); !reflect.DeepEqual(r, want) {
		t.Fatalf("reconcile did not ensure the router: datapath has %+v", r)
	}
	second.Fake.Mu.Lock()
	pruned := second.Fake.Pruned.Routers
	second.Fake.Mu.Unlock()
	if !reflect.DeepEqual(pruned, []model.Router{want}) {
		t.Fatalf("Prune was told routers %+v", pruned)
	}
	second.mustDo(t, "GET", "/v1/routers/r1", "", 200)
	second.mustDo(t, "DELETE", "/v1/networks/red", "", 409)
}

func TestRoutersNotReady(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blue, _ := model.NewNetwork("blue", v1.NetworkSpec{Subnet: "10.1.0.0/24"})
	red, _ := model.NewNetwork("red", v1.NetworkSpec{Subnet: "10.2.0.0/24"})
	blue.ID, red.ID = 1, 2
	r1 := model.Router{Name: "r1", Networks: []string{"blue", "red"}, ID: 1}
	if err := errors.Join(controllertest.CreateNetwork(st, blue), controllertest.CreateNetwork(st, red), controllertest.PutRouter(st, r1)); err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(st, "h1", slog.New(slog.NewTextHandler(io.Discard, nil)), controller.NewMetrics(prometheus.NewRegistry(), "t"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := c.PutRouter(ctx, "r2", v1.RouterSpec{Networks: []string{"blue", "red"}}); !errors.Is(err, controller.ErrNotReady) {
		t.Fatalf("create before ready: %v", err)
	}
	if _, _, err := c.PutRouter(ctx, "r1", v1.RouterSpec{Networks: []string{"red", "blue"}}); err != nil {
		t.Fatalf("an unchanged router needs no datapath: %v", err)
	}
	if err := c.DeleteRouter(ctx, "r1"); !errors.Is(err, controller.ErrNotReady) {
		t.Fatalf("delete before ready: %v", err)
	}
}

// A router and the deletion of one of its networks race: exactly one wins, and
// never a router over a missing network.
func TestRouterRacesNetworkDelete(t *testing.T) {
	f := newFixture(t)
	for i := range 10 {
		f.withNetworks(t, "blue", "red")
		var wg sync.WaitGroup
		var put, del int
		wg.Go(func() { put, _ = f.Do(t, "PUT", "/v1/routers/r", `{"networks":["blue","red"]}`) })
		wg.Go(func() { del, _ = f.Do(t, "DELETE", "/v1/networks/red", "") })
		wg.Wait()
		if !(put == 201 && del == 409 || put == 404 && del == 204) {
			t.Fatalf("round %d: router %d, network delete %d", i, put, del)
		}
		f.Do(t, "DELETE", "/v1/routers/r", "")
		f.Do(t, "DELETE", "/v1/networks/red", "")
		f.mustDo(t, "DELETE", "/v1/networks/blue", "", 204)
	}
}

func TestRoutersMetric(t *testing.T) {
	f := newFixture(t)
	f.withNetworks(t, "blue", "red")
	f.mustDo(t, "PUT", "/v1/routers/r1", `{"networks":["blue","red"]}`, 201)
	want := `# HELP ovs_vnet_routers Routers in the desired state.
# TYPE ovs_vnet_routers gauge
ovs_vnet_routers 1
`
	if err := testutil.GatherAndCompare(f.Reg, strings.NewReader(want), "ovs_vnet_routers"); err != nil {
		t.Fatal(err)
	}
}
