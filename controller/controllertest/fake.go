// Package controllertest holds the test doubles that the tests of the
// controller and of its HTTP layer (httpapi) share: a fake datapath backend
// and a fixture that runs a controller over it behind the HTTP API. It is
// for tests only; the daemon links none of it.
package controllertest

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/dhcp"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Fake records what the controller asks of a datapath. It is for the
// controller's logic only; the real backends are proven in e2e/.
type Fake struct {
	// Mu guards the fields below: a test takes it to read or set them
	// while a controller runs on the fake.
	Mu        sync.Mutex
	Networks  map[string]bool
	Ports     map[string]bool
	FailPorts map[string]error
	Routers   map[string]model.Router
	// failRouters makes the next EnsureRouter of a name fail, once, so that
	// the rollback's own EnsureRouter of the old router succeeds.
	failRouters map[string]error
	Pruned      datapath.State // the last Prune's argument
	// Gate, when set, holds every AttachPort until it is closed;
	// Attaching counts the ones held.
	Gate      chan struct{}
	Attaching atomic.Int32
	FlowsErr  error // what OVSFake's Flows fails with
	// Policy is the last policy SetPolicy took, FailPolicy what it fails
	// with (leaving Policy as it was), RuleStats what PolicyStats answers.
	Policy     model.Policy
	FailPolicy error
	RuleStats  []datapath.RuleStats
	// NAT is the last NAT SetNAT took, FailNAT what it fails with
	// (leaving NAT as it was), NATCounters what NATStats answers.
	NAT         model.NAT
	FailNAT     error
	NATCounters datapath.NATStats
	// Traced is the last query Trace took.
	Traced v1.Query
	// PolicyGate, when set, holds every SetPolicy until it is closed;
	// PolicyHeld counts the ones held.
	PolicyGate chan struct{}
	PolicyHeld atomic.Int32
	// Calls are the changes asked of the fake, in order: "attach P",
	// "detach P", "policy", "nat".
	Calls []string
}

// NewFake returns a fake that holds nothing and fails nothing.
func NewFake() *Fake {
	return &Fake{
		Networks: map[string]bool{}, Ports: map[string]bool{}, FailPorts: map[string]error{},
		Routers: map[string]model.Router{}, failRouters: map[string]error{},
	}
}

func (f *Fake) Info() datapath.Info { return datapath.Info{Backend: "fake"} }

// Capabilities: the fake traces, enforces security groups, translates
// floating IPs and forwards and answers DHCP (counting nothing). A fake
// made of it with more (or other) roles reports its own.
func (f *Fake) Capabilities() datapath.Capabilities {
	return datapath.Capabilities{Tracer: f, Policy: f, NAT: f, DHCP: f}
}

// DHCPStats: the fake answers no packet, so every counter is there and
// zero, as a backend's are before its first packet.
func (f *Fake) DHCPStats(context.Context) (datapath.DHCPStats, error) {
	var none dhcp.Counters
	s := none.Snapshot()
	return datapath.DHCPStats{Requests: s.Requests, Answers: s.Answers, Refused: s.Refused}, nil
}

func (f *Fake) SetPolicy(_ context.Context, p model.Policy) error {
	f.Mu.Lock()
	gate := f.PolicyGate
	f.Mu.Unlock()
	if gate != nil {
		f.PolicyHeld.Add(1)
		<-gate
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Calls = append(f.Calls, "policy")
	if f.FailPolicy != nil {
		return f.FailPolicy
	}
	f.Policy = p
	return nil
}

func (f *Fake) PolicyStats(context.Context) (datapath.PolicyStats, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return datapath.PolicyStats{Rules: slices.Clone(f.RuleStats)}, nil
}

func (f *Fake) SetNAT(_ context.Context, n model.NAT) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Calls = append(f.Calls, "nat")
	if f.FailNAT != nil {
		return f.FailNAT
	}
	f.NAT = n
	return nil
}

func (f *Fake) NATStats(context.Context) (datapath.NATStats, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return datapath.NATStats{Forwards: slices.Clone(f.NATCounters.Forwards), Floating: slices.Clone(f.NATCounters.Floating)}, nil
}

// LastNAT is the last NAT SetNAT took.
func (f *Fake) LastNAT() model.NAT {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.NAT
}

// LastPolicy is the last policy SetPolicy took.
func (f *Fake) LastPolicy() model.Policy {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.Policy
}

// TakeCalls returns the calls since the last TakeCalls.
func (f *Fake) TakeCalls() []string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	calls := f.Calls
	f.Calls = nil
	return calls
}

// Unenforcing is the fake as a backend that enforces no security groups
// and translates no floating IPs and port forwards.
type Unenforcing struct{ *Fake }

func (f Unenforcing) Capabilities() datapath.Capabilities {
	c := f.Fake.Capabilities()
	c.Policy, c.NAT = nil, nil
	return c
}

// ErrFakeDatapath is the fake's failure of a trace to BrokenTrace.
var ErrFakeDatapath = errors.New("fake datapath failed")

var BrokenTrace = netip.MustParseAddr("192.0.2.255")

// Trace answers every query as delivered to the sender itself, except one to
// BrokenTrace, which fails as a datapath would.
func (f *Fake) Trace(_ context.Context, _ datapath.State, q v1.Query) (v1.Result, error) {
	f.Mu.Lock()
	f.Traced = q
	f.Mu.Unlock()
	if q.To == BrokenTrace {
		return v1.Result{}, ErrFakeDatapath
	}
	return v1.Result{Backend: "ovs", Packet: "icmp", Steps: []v1.Step{{Table: 0, Stage: "classify"}},
		Verdict: v1.Delivered, Ports: []string{q.From}, Summary: "delivered"}, nil
}

// OVSFake is the fake with flows, as the OVS backend has: one per port.
type OVSFake struct{ *Fake }

func (f OVSFake) Capabilities() datapath.Capabilities {
	c := f.Fake.Capabilities()
	c.FlowLister = f
	return c
}

func (f OVSFake) Flows(_ context.Context, s datapath.State) ([]v1.Flow, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if f.FlowsErr != nil {
		return nil, f.FlowsErr
	}
	var out []v1.Flow
	for _, p := range s.Ports {
		out = append(out, v1.Flow{OwnerKind: "port", Owner: p.Name, TableName: "classify", Cookie: "0x7604000000010000", Text: "cookie=0x7604000000010000, table=0"})
	}
	return out, nil
}
func (f *Fake) Ready() error { return nil }
func (f *Fake) Close() error { return nil }
func (f *Fake) EnsureNetwork(_ context.Context, n model.Network) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Networks[n.Name] = true
	return nil
}
func (f *Fake) DeleteNetwork(_ context.Context, n model.Network) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	delete(f.Networks, n.Name)
	return nil
}
func (f *Fake) AttachPort(_ context.Context, _ model.Network, p model.Port) (model.Port, error) {
	if f.Gate != nil {
		f.Attaching.Add(1)
		<-f.Gate
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Calls = append(f.Calls, "attach "+p.Name)
	f.Ports[p.Name] = true // a failure can leave half a port: rollback must clear it
	if err := f.FailPorts[p.Name]; err != nil {
		return p, err
	}
	p.Ofport = len(f.Ports)
	return p, nil
}
func (f *Fake) PortStats(context.Context) ([]datapath.PortStats, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	var stats []datapath.PortStats
	for name := range f.Ports {
		stats = append(stats, datapath.PortStats{Port: name, RxPackets: 1})
	}
	return stats, nil
}
func (f *Fake) DetachPort(_ context.Context, _ model.Network, p model.Port) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Calls = append(f.Calls, "detach "+p.Name)
	delete(f.Ports, p.Name)
	return nil
}
func (f *Fake) Held(context.Context) (datapath.Held, error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return datapath.Held{Ports: slices.Sorted(maps.Keys(f.Ports)), Networks: slices.Sorted(maps.Keys(f.Networks))}, nil
}
func (f *Fake) Prune(_ context.Context, s datapath.State) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Pruned = s
	return nil
}
func (f *Fake) EnsureRouter(_ context.Context, r model.Router) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.Routers[r.Name] = r // a failure can leave half a router: rollback must clear it
	if err := f.failRouters[r.Name]; err != nil {
		delete(f.failRouters, r.Name)
		return err
	}
	return nil
}
func (f *Fake) DeleteRouter(_ context.Context, r model.Router) error {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	delete(f.Routers, r.Name)
	return nil
}

// FailRouter makes the next EnsureRouter of name fail with err.
func (f *Fake) FailRouter(name string, err error) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.failRouters[name] = err
}

// Router returns what the datapath has for the router name.
func (f *Fake) Router(name string) (model.Router, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	r, ok := f.Routers[name]
	return r, ok
}
