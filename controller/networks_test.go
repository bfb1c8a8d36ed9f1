package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// changingFake is the fake backend that records the networks it is asked
// to ensure among its calls ("ensure blue dhcp=true dns=… domain=…"), and
// fails the next call that fail names ("ensure blue", "attach a"), once.
type changingFake struct {
	*controllertest.Fake
	fail map[string]error // guarded by Fake.Mu
}

func newChangingFake() *changingFake {
	return &changingFake{Fake: controllertest.NewFake(), fail: map[string]error{}}
}

// failNext makes the next call named call fail with err.
func (f *changingFake) failNext(call string, err error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.fail[call] = err
}

// called records a call and takes the failure set for it, if any.
func (f *changingFake) called(call, text string) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Calls = append(f.Calls, text)
	err := f.fail[call]
	delete(f.fail, call)
	return err
}

func (f *changingFake) EnsureNetwork(ctx context.Context, n model.Network) error {
	if err := f.called("ensure "+n.Name, fmt.Sprintf("ensure %s dhcp=%t dns=%s domain=%s", n.Name, n.DHCP, n.DNS, n.Domain)); err != nil {
		return err
	}
	return f.Fake.EnsureNetwork(ctx, n)
}

func (f *changingFake) DeleteNetwork(ctx context.Context, n model.Network) error {
	if err := f.called("delete "+n.Name, "delete "+n.Name); err != nil {
		return err
	}
	return f.Fake.DeleteNetwork(ctx, n)
}

func (f *changingFake) AttachPort(ctx context.Context, n model.Network, p model.Port) (model.Port, error) {
	f.Mu.Lock()
	err := f.fail["attach "+p.Name]
	delete(f.fail, "attach "+p.Name)
	if err != nil {
		f.Calls = append(f.Calls, "attach "+p.Name)
	}
	f.Mu.Unlock()
	if err != nil {
		return p, err
	}
	return f.Fake.AttachPort(ctx, n, p)
}

// flakyStore is a store whose updates of networks and ports fail while
// it is down, as an unreachable etcd's do.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

func (s *flakyStore) UpdateNetwork(ctx context.Context, n model.Network) (int64, error) {
	if s.down.Load() {
		return 0, fmt.Errorf("%w: update network %q: no answer", store.ErrUnavailable, n.Name)
	}
	return s.Store.UpdateNetwork(ctx, n)
}

func (s *flakyStore) UpdatePort(ctx context.Context, p model.Port) error {
	if s.down.Load() {
		return fmt.Errorf("%w: update port %q: no answer", store.ErrUnavailable, p.Name)
	}
	return s.Store.UpdatePort(ctx, p)
}

func startChanging(t *testing.T) (*fixture, *changingFake, *flakyStore) {
	t.Helper()
	st := &flakyStore{Store: openStore(t)}
	fake := newChangingFake()
	return startFixtureOn(t, st, fake.Fake, fake), fake, st
}

// networkIs checks a network as the API shows it and as it is stored.
func (f *fixture) networkIs(t *testing.T, name, want string) {
	t.Helper()
	out := f.mustDo(t, "GET", "/v1/networks/"+name, "", 200)
	if got := fmt.Sprintf("#%v %v mtu %v dhcp %v dns %v domain %v", out["id"], out["subnet"], out["mtu"], out["dhcp"], out["dns"], out["domain"]); got != want {
		t.Fatalf("network %s shows %s, want %s", name, got, want)
	}
	s, err := f.St.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Networks {
		var view map[string]any
		raw, err := json.Marshal(n.View())
		if err == nil && n.Name == name && json.Unmarshal(raw, &view) == nil && reflect.DeepEqual(view, out) {
			return
		}
	}
	t.Fatalf("network %s is stored as %+v, shown as %v", name, s.Networks, out)
}

// TestNetworkInPlace: a PUT of an existing network whose spec differs only
// in dhcp, dns or domain changes it in place (docs/DESIGN.md §8.0, §8.4):
// 200, the record and the datapath's network change, its ports are
// neither detached nor attached, its ID stays. Any other difference is
// 409 and an invalid field 400, and neither changes anything; nor does a
// refusal of the store or of the datapath, which is undone.
func TestNetworkInPlace(t *testing.T) {
	f, fake, st := startChanging(t)
	f.mustDo(t, "PUT", "/v1/networks/red", `{"subnet":"10.9.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ip":"10.0.0.2"}`, 201)
	f.networkIs(t, "blue", "#2 10.0.0.0/24 mtu 1500 dhcp true dns <nil> domain <nil>")
	fake.TakeCalls()

	const spec = `{"subnet":"10.0.0.0/24","dns":["10.0.0.53","9.9.9.9"],"domain":"Lab.Example"}`
	out := f.mustDo(t, "PUT", "/v1/networks/blue", spec, 200)
	if fmt.Sprintf("%v %v %v", out["id"], out["dns"], out["domain"]) != "2 [10.0.0.53 9.9.9.9] lab.example" {
		t.Fatalf("answer %v", out)
	}
	f.callsAre(t, "ensure blue dhcp=true dns=10.0.0.53,9.9.9.9 domain=lab.example")
	f.networkIs(t, "blue", "#2 10.0.0.0/24 mtu 1500 dhcp true dns [10.0.0.53 9.9.9.9] domain lab.example")
	f.mustDo(t, "PUT", "/v1/networks/blue", spec, 200) // the same spec: nothing to do
	f.callsAre(t)

	// A PUT is a whole spec: what it leaves out goes.
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24","dhcp":false}`, 200)
	f.callsAre(t, "ensure blue dhcp=false dns= domain=")
	const off = "#2 10.0.0.0/24 mtu 1500 dhcp false dns <nil> domain <nil>"
	f.networkIs(t, "blue", off)

	for _, c := range []struct {
		spec string
		want int
	}{
		{`{"subnet":"10.0.0.0/24","mtu":9000,"dns":["10.0.0.53"]}`, 409},
		{`{"subnet":"10.0.0.0/24","masquerade":true}`, 409},
		{`{"subnet":"10.0.0.0/24","gateway":"10.0.0.254"}`, 409},
		{`{"subnet":"10.0.0.0/23"}`, 409},
		{`{"subnet":"10.0.0.0/24","dns":["10.0.0.53","10.0.0.53"]}`, 400},
		{`{"subnet":"10.0.0.0/24","domain":"a..b"}`, 400},
	} {
		f.mustDo(t, "PUT", "/v1/networks/blue", c.spec, c.want)
	}
	f.callsAre(t)
	f.networkIs(t, "blue", off)

	// The datapath refuses: the store and the datapath get the old
	// network back, and the answer says why.
	fake.failNext("ensure blue", errors.New("switch refused"))
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 500)
	f.callsAre(t, "ensure blue dhcp=true dns= domain=", "ensure blue dhcp=false dns= domain=")
	f.networkIs(t, "blue", off)

	// The store cannot be reached: nothing else is tried.
	st.down.Store(true)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 503)
	st.down.Store(false)
	f.callsAre(t)
	f.networkIs(t, "blue", off)

	if got := f.LoggedErrors(); len(got) > 0 {
		t.Fatalf("logged errors: %q", got)
	}
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24","dns":["10.0.0.53"]}`, 200)
	f.Stop()
	restarted := startFixture(t, st.Store)
	restarted.networkIs(t, "blue", "#2 10.0.0.0/24 mtu 1500 dhcp true dns [10.0.0.53] domain <nil>")
	restarted.networkIs(t, "red", "#1 10.9.0.0/24 mtu 1500 dhcp true dns <nil> domain <nil>")
}

// TestPortConfigureInPlace: configure is mutable (docs/DESIGN.md §8.4): a
// PUT that flips it answers 200 after one attach of the port as it now is
// — the repair path, which keeps the link — and no detach; with other
// groups too, after the policy. A refusal of the attach puts the old port
// back in the store and the datapath.
func TestPortConfigureInPlace(t *testing.T) {
	f, fake, st := startChanging(t)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	dir := t.TempDir()
	spec := func(extra string) string {
		return `{"network":"blue","netns":"` + dir + `","ip":"10.0.0.2"` + extra + `}`
	}
	f.mustDo(t, "PUT", "/v1/ports/a", spec(""), 201)
	fake.TakeCalls()
	stored := func(want bool) {
		t.Helper()
		ports, err := controllertest.StoredPorts(t, f.St)
		if err != nil || len(ports) != 1 || ports[0].NoConfigure != want {
			t.Fatalf("stored %+v %v, want no_configure %t", ports, err, want)
		}
	}

	out := f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"configure":false`), 200)
	if out["configure"] != false || out["status"] != "forwarding" {
		t.Fatalf("answer %v", out)
	}
	f.callsAre(t, "attach a")
	stored(true)
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"configure":false`), 200) // the same spec
	f.callsAre(t)
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"configure":false,"default_route":true`), 400)
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"configure":false,"ifname":"eth1"`), 409)
	f.callsAre(t)

	out = f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"configure":true,"security_groups":["web"]`), 200)
	if out["configure"] != nil || fmt.Sprint(out["security_groups"]) != "[web]" {
		t.Fatalf("answer %v", out)
	}
	f.callsAre(t, "policy", "attach a")
	stored(false)
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"security_groups":["web"]`), 200) // configure absent is true
	f.callsAre(t)

	fake.failNext("attach a", errors.New("netlink refused"))
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"configure":false`), 500)
	// The try, then the old port again: groups, then its link as it was.
	f.callsAre(t, "policy", "attach a", "policy", "attach a")
	stored(false)
	f.policyIs(t, "groups web#1 | ports a=web | members web=10.0.0.2")
	if out := f.mustDo(t, "GET", "/v1/ports/a", "", 200); out["configure"] != nil || fmt.Sprint(out["security_groups"]) != "[web]" {
		t.Fatalf("port a is %v", out)
	}

	st.down.Store(true)
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"configure":false,"security_groups":["web"]`), 503)
	st.down.Store(false)
	f.callsAre(t) // the record comes first: nothing to undo
	stored(false)
	if got := f.LoggedErrors(); len(got) > 0 {
		t.Fatalf("logged errors: %q", got)
	}
}
