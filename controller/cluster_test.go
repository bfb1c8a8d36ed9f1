package controller_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// overlayFake is the fake with an overlay: it records the remote ports it
// was last handed, the networks it was asked to ensure and delete, and
// every policy it took.
type overlayFake struct {
	*controllertest.Fake
	remoteMu sync.Mutex
	remote   []string // "port@host-ip"
	networks []string // "ensure blue dns=10.1.0.53", "delete blue"; guarded by remoteMu
	policies []model.Policy
	routers  []string // "r [blue red]", every router ensured
}

func (f *overlayFake) SetPolicy(ctx context.Context, p model.Policy) error {
	if err := f.Fake.SetPolicy(ctx, p); err != nil {
		return err
	}
	f.remoteMu.Lock()
	defer f.remoteMu.Unlock()
	f.policies = append(f.policies, p)
	return nil
}

// policiesSince are the policies taken after the first n.
func (f *overlayFake) policiesSince(n int) []model.Policy {
	f.remoteMu.Lock()
	defer f.remoteMu.Unlock()
	return slices.Clone(f.policies[n:])
}

func (f *overlayFake) EnsureNetwork(ctx context.Context, n model.Network) error {
	f.remoteMu.Lock()
	f.networks = append(f.networks, fmt.Sprintf("ensure %s dns=%s", n.Name, n.DNS))
	f.remoteMu.Unlock()
	return f.Fake.EnsureNetwork(ctx, n)
}

func (f *overlayFake) EnsureRouter(ctx context.Context, r model.Router) error {
	f.remoteMu.Lock()
	f.routers = append(f.routers, fmt.Sprintf("%s %v", r.Name, r.Networks))
	f.remoteMu.Unlock()
	return f.Fake.EnsureRouter(ctx, r)
}

func (f *overlayFake) DeleteNetwork(ctx context.Context, n model.Network) error {
	f.remoteMu.Lock()
	f.networks = append(f.networks, "delete "+n.Name)
	f.remoteMu.Unlock()
	return f.Fake.DeleteNetwork(ctx, n)
}

// networkCalls are the network calls since the last look.
func (f *overlayFake) networkCalls() string {
	f.remoteMu.Lock()
	defer f.remoteMu.Unlock()
	calls := strings.Join(f.networks, ", ")
	f.networks = nil
	return calls
}

func (f *overlayFake) Capabilities() datapath.Capabilities {
	c := f.Fake.Capabilities()
	c.Overlay, c.Policy = f, f
	return c
}

func (f *overlayFake) SetRemotePorts(_ context.Context, ports []model.RemotePort) error {
	f.remoteMu.Lock()
	defer f.remoteMu.Unlock()
	f.remote = f.remote[:0]
	for _, r := range ports {
		f.remote = append(f.remote, r.Port.Name+"@"+r.HostIP.String())
	}
	return nil
}

func (f *overlayFake) remotes() string {
	f.remoteMu.Lock()
	defer f.remoteMu.Unlock()
	return strings.Join(f.remote, " ")
}

// clusterHost is a controller of one host of a cluster, on a fake datapath.
type clusterHost struct {
	*controllertest.Fixture
	fake       *overlayFake
	unregister context.CancelFunc
}

func startClusterHost(t *testing.T, etcd *testbed.Etcd, name, underlay string) *clusterHost {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.OpenEtcd(ctx, store.EtcdConfig{Endpoints: etcd.Endpoints(), Prefix: "/test", LeaseTTL: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	host, unregister := context.WithCancel(ctx)
	go func() { _ = st.Register(host, store.Host{Name: name, UnderlayIP: netip.MustParseAddr(underlay)}, nil) }()
	fake := &overlayFake{Fake: controllertest.NewFake()}
	return &clusterHost{Fixture: controllertest.StartHost(t, name, st, fake.Fake, fake), fake: fake, unregister: unregister}
}

// mustDo sends a request to the host and fails the test unless it gets
// status want.
func (h *clusterHost) mustDo(t *testing.T, method, path, body string, want int) {
	t.Helper()
	if code, out := h.Do(t, method, path, body); code != want {
		t.Fatalf("%s %s on %s: %d %v, want %d", method, path, h.C.HostName(), code, out, want)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterControllers runs two hosts' controllers on one real etcd and
// checks what each hands its datapath: the other's networks and routers,
// and only the remote ports its own ports need, from live hosts only.
func TestClusterControllers(t *testing.T) {
	etcd := testbed.StartEtcd(t, 1)
	h1 := startClusterHost(t, etcd, "h1", "192.0.2.1")
	h2 := startClusterHost(t, etcd, "h2", "192.0.2.2")
	remotes := func(h *clusterHost, want string) {
		t.Helper()
		waitUntil(t, h.C.HostName()+" remote ports "+want, func() bool { return h.fake.remotes() == want })
	}

	h1.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24"}`, 201)
	h2.mustDo(t, "PUT", "/v1/networks/red", `{"subnet":"10.2.0.0/24"}`, 201)
	h2.mustDo(t, "PUT", "/v1/networks/green", `{"subnet":"10.3.0.0/24"}`, 201)
	h2.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.9.0.0/24"}`, 409)
	for _, h := range []*clusterHost{h1, h2} {
		waitUntil(t, "every network on "+h.C.HostName()+"'s datapath", func() bool {
			h.Fake.Mu.Lock()
			defer h.Fake.Mu.Unlock()
			return len(h.Fake.Networks) == 3
		})
	}
	h1.mustDo(t, "PUT", "/v1/ports/a1", `{"network":"blue","type":"tap","ip":"10.1.0.11"}`, 201)
	h2.mustDo(t, "PUT", "/v1/ports/a2", `{"network":"blue","type":"tap","ip":"10.1.0.12"}`, 201)
	h2.mustDo(t, "PUT", "/v1/ports/g2", `{"network":"green","type":"tap"}`, 201)
	h1.mustDo(t, "PUT", "/v1/ports/x", `{"network":"blue","type":"tap","ip":"10.1.0.12"}`, 409) // a2's
	remotes(h1, "a2@192.0.2.2")                                                                 // not g2: h1 has no green port
	remotes(h2, "a1@192.0.2.1")

	// A router makes red's ports needed where blue's are.
	h2.mustDo(t, "PUT", "/v1/ports/r2", `{"network":"red","type":"tap","ip":"10.2.0.12"}`, 201)
	remotes(h1, "a2@192.0.2.2")
	h1.mustDo(t, "PUT", "/v1/routers/r", `{"networks":["blue","red"]}`, 201)
	remotes(h1, "a2@192.0.2.2 r2@192.0.2.2")
	waitUntil(t, "the router on h2's datapath", func() bool { _, ok := h2.Fake.Router("r"); return ok })

	// Other hosts' ports are listed, not deleted while their host lives.
	ports, err := h1.C.Ports("", "h2")
	if got := names(ports); err != nil || got != "a2 g2 r2" {
		t.Errorf("h1 lists h2's ports as %s (%v)", got, err)
	}
	h1.mustDo(t, "DELETE", "/v1/ports/a2", "", 409)

	// h2 stops renewing its lease (its controller runs on): h1 stops
	// forwarding to its ports, and may now delete them, which frees their
	// addresses; h2 takes the record for the truth and detaches its port.
	h2.unregister()
	remotes(h1, "")
	waitUntil(t, "h2 gone from h1's hosts", func() bool { return len(h1.C.Hosts()) == 1 })
	h1.mustDo(t, "DELETE", "/v1/ports/a2", "", 204)
	h1.mustDo(t, "PUT", "/v1/ports/y", `{"network":"blue","type":"tap","ip":"10.1.0.12"}`, 201)
	waitUntil(t, "a2 detached on h2", func() bool {
		h2.Fake.Mu.Lock()
		defer h2.Fake.Mu.Unlock()
		return !h2.Fake.Ports["a2"]
	})
	if ports, _ := h2.C.Ports("", "h2"); names(ports) != "g2 r2" {
		t.Errorf("h2 still has %s", names(ports))
	}
}

func names(ports []v1.Port) string {
	var out []string
	for _, p := range ports {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestClusterNetworkInPlace: a network's DHCP fields changed on one host
// reach the others' datapaths in place — ensured again, never deleted
// under the ports they have on it — and their API shows the change.
func TestClusterNetworkInPlace(t *testing.T) {
	etcd := testbed.StartEtcd(t, 1)
	h1 := startClusterHost(t, etcd, "h1", "192.0.2.1")
	h2 := startClusterHost(t, etcd, "h2", "192.0.2.2")
	// networkCalls waits until h's datapath was asked for want since
	// the last look, and for nothing else.
	networkCalls := func(h *clusterHost, want string) {
		t.Helper()
		var got []string
		waitUntil(t, h.C.HostName()+": "+want, func() bool {
			if calls := h.fake.networkCalls(); calls != "" {
				got = append(got, calls)
			}
			return strings.Join(got, ", ") == want
		})
	}
	h1.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24"}`, 201)
	networkCalls(h1, "ensure blue dns=")
	networkCalls(h2, "ensure blue dns=")
	h2.mustDo(t, "PUT", "/v1/ports/p2", `{"network":"blue","type":"tap","ip":"10.1.0.12"}`, 201)

	h1.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24","dns":["10.1.0.53"]}`, 200)
	networkCalls(h1, "ensure blue dns=10.1.0.53")
	networkCalls(h2, "ensure blue dns=10.1.0.53")
	if got, err := h2.C.Network("blue"); err != nil || fmt.Sprint(got.DNS) != "[10.1.0.53]" || got.ID != 1 {
		t.Fatalf("h2 shows blue as %+v (%v)", got, err)
	}
	// From h2 too; h1 follows, and h2's own write comes back as no change.
	h2.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24","dhcp":false}`, 200)
	networkCalls(h2, "ensure blue dns=")
	networkCalls(h1, "ensure blue dns=")
	if got, _ := h1.C.Network("blue"); got.DHCP {
		t.Fatalf("h1 shows blue as %+v", got)
	}
	h2.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/25"}`, 409)
	time.Sleep(100 * time.Millisecond) // an event would have come by now
	for _, h := range []*clusterHost{h1, h2} {
		if calls := h.fake.networkCalls(); calls != "" {
			t.Fatalf("%s's network calls: %s", h.C.HostName(), calls)
		}
	}
	if calls := h2.Fake.TakeCalls(); slices.Contains(calls, "detach p2") {
		t.Fatalf("h2's port calls: %q", calls)
	}
}

// TestClusterGroupInPlace: a security group changed twice in a row on one
// host never has its older rules back there — the watch still sends the
// first write's change after the second is applied, and a removed rule
// allowing again, even for a moment, is a hole.
func TestClusterGroupInPlace(t *testing.T) {
	etcd := testbed.StartEtcd(t, 1)
	h1 := startClusterHost(t, etcd, "h1", "192.0.2.1")
	h2 := startClusterHost(t, etcd, "h2", "192.0.2.2")
	rules := func(port int) string {
		return fmt.Sprintf(`{"rules":[{"direction":"ingress","protocol":"tcp","ports":"%d"}]}`, port)
	}
	since := map[string]int{} // by group: h1's policies before its second write was applied
	for i := range 20 {
		name := fmt.Sprintf("g%d", i)
		h1.mustDo(t, "PUT", "/v1/security-groups/"+name, rules(80), 201)
		h1.mustDo(t, "PUT", "/v1/security-groups/"+name, rules(443), 200)
		since[name] = len(h1.fake.policiesSince(0)) - 1 // the second write's own policy on
	}
	// h2's write comes to h1 after h1's own, in the order they committed.
	h2.mustDo(t, "PUT", "/v1/security-groups/last", rules(22), 201)
	waitUntil(t, "h1 has group last", func() bool { _, err := h1.C.SecurityGroup(context.Background(), "last", false); return err == nil })
	for name, n := range since {
		for _, p := range h1.fake.policiesSince(n) {
			if g := p.Groups[name]; len(g.Rules) != 1 || g.Rules[0].PortMin != 443 {
				t.Fatalf("h1 handed its datapath group %s as %+v after changing it to port 443", name, g.Rules)
			}
		}
	}
}

// TestClusterRouterInPlace: a router whose networks change twice in a row
// on one host is never set up with its older networks again there.
func TestClusterRouterInPlace(t *testing.T) {
	etcd := testbed.StartEtcd(t, 1)
	h1 := startClusterHost(t, etcd, "h1", "192.0.2.1")
	h2 := startClusterHost(t, etcd, "h2", "192.0.2.2")
	for i, n := range []string{"blue", "red", "green"} {
		h1.mustDo(t, "PUT", "/v1/networks/"+n, fmt.Sprintf(`{"subnet":"10.%d.0.0/24"}`, i+1), 201)
	}
	var want []string
	for i := range 20 {
		name := fmt.Sprintf("r%d", i)
		h1.mustDo(t, "PUT", "/v1/routers/"+name, `{"networks":["blue","red"]}`, 201)
		h1.mustDo(t, "PUT", "/v1/routers/"+name, `{"networks":["blue","green"]}`, 200)
		want = append(want, name+" [blue red]", name+" [blue green]")
	}
	// h2's write comes to h1 after h1's own, in the order they committed.
	h2.mustDo(t, "PUT", "/v1/security-groups/last", `{"rules":[]}`, 201)
	waitUntil(t, "h1 has group last", func() bool { _, err := h1.C.SecurityGroup(context.Background(), "last", false); return err == nil })
	h1.fake.remoteMu.Lock()
	defer h1.fake.remoteMu.Unlock()
	if got := strings.Join(h1.fake.routers, ", "); got != strings.Join(want, ", ") {
		t.Fatalf("h1 ensured routers\n  %s\nwant\n  %s", got, strings.Join(want, ", "))
	}
}
