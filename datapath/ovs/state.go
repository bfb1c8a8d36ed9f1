package ovs

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/flows/flowset"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// state is the model the bridge's flows are compiled from: what the
// controller asked for, with the ofports OVS gave.
type state struct {
	networks map[string]model.Network
	routers  map[string]model.Router
	ports    map[string]map[string]model.Port // by network, then by name
	// remote are other hosts' ports as given, by network, in
	// model.CompareRemote order (cluster mode; SetRemotePorts replaces
	// them whole); which of them get flows is for kept to say.
	remote map[string][]model.RemotePort
	// policy is the security groups' policy (SetPolicy, Prune).
	policy model.Policy
	// nat is this host's floating IPs and port forwards (SetNAT, Prune).
	nat model.NAT
	// pickup is the number of the open pickup window, 0 when it is
	// closed (pickup.go).
	pickup uint64
}

func newState() state {
	return state{networks: map[string]model.Network{}, routers: map[string]model.Router{}, ports: map[string]map[string]model.Port{},
		remote: map[string][]model.RemotePort{}}
}

// model is the state for the pipeline, with the remote ports that get
// flows; self is this host's underlay address.
func (s state) model(self netip.Addr) pipeline.Model {
	m := pipeline.Model{
		Networks: slices.Collect(maps.Values(s.networks)),
		Routers:  slices.Collect(maps.Values(s.routers)),
		Policy:   s.policy,
		NAT:      s.nat,
		Pickup:   s.pickup != 0,
	}
	for _, ports := range s.ports {
		m.Ports = slices.AppendSeq(m.Ports, maps.Values(ports))
	}
	for network := range s.remote {
		m.Remote = append(m.Remote, s.kept(self, network)...)
	}
	return m
}

func (s state) members(network string) []model.Port {
	return slices.Collect(maps.Values(s.ports[network]))
}

// kept are the remote ports of network that get flows: the others are
// invalid or clash with a local port or another remote port (the rule both
// backends follow, datapath.SelectRemote).
func (s state) kept(self netip.Addr, network string) []model.RemotePort {
	kept, _ := datapath.SelectRemote(self, s.members(network), s.remote[network])
	return kept
}

// remote is a network's part that its remote ports decide: their flows,
// which depend on the network's local ports too (a local port shadows a
// remote one with its address or MAC), and the network's flood group (its
// local ports and the hosts of its kept remote ports). Every scope that
// holds the group compiles it this way, since a group is replaced whole;
// the two share one selection of the remote ports.
func (b *Backend) remote(s state, n model.Network) ([]flowset.Flow, flowset.Group) {
	members := s.members(n.Name)
	kept, _ := datapath.SelectRemote(b.self(), members, s.remote[n.Name])
	return b.pipeline.RemoteFlows(n, kept), b.pipeline.Flood(n, members, kept)
}

// scope is the part of the desired state that a change can affect; the
// change sends the difference of the scope before and after.
type scope func(state) flowset.Desired

// portScope is a port's flows (its security groups' too) and meters, its
// network's flood group and its network's remote ports' flows (which a
// local port may shadow).
func (b *Backend) portScope(network, port string) scope {
	return func(s state) flowset.Desired {
		var d flowset.Desired
		n, ok := s.networks[network]
		if !ok {
			return d
		}
		if p, ok := s.ports[network][port]; ok {
			d.Flows = append(b.pipeline.Port(p, n), b.pipeline.PortACL(s.policy, p, n, s.pickup != 0)...)
			d.Meters = b.pipeline.PortMeters(p)
		}
		flows, flood := b.remote(s, n)
		d.Flows = append(d.Flows, flows...)
		d.Groups = []flowset.Group{flood}
		return d
	}
}

// remoteScope is the remote ports' flows and the flood groups of the
// networks named.
func (b *Backend) remoteScope(networks ...string) scope {
	networks = slices.Compact(slices.Sorted(slices.Values(networks)))
	return func(s state) flowset.Desired {
		var d flowset.Desired
		for _, name := range networks {
			n, ok := s.networks[name]
			if !ok {
				continue
			}
			flows, flood := b.remote(s, n)
			d.Flows = append(d.Flows, flows...)
			d.Groups = append(d.Groups, flood)
		}
		return d
	}
}

// networkScope is the networks' own flows (with the classification of
// their VNIs from the tunnel), routes, flood groups and remote ports' flows:
// all depend on the network, and remote ports may be known before their
// network is.
func (b *Backend) networkScope(networks ...string) scope {
	networks = slices.Compact(slices.Sorted(slices.Values(networks)))
	return func(s state) flowset.Desired {
		var d flowset.Desired
		peers := model.Peers(slices.Collect(maps.Values(s.routers)))
		for _, name := range networks {
			n, ok := s.networks[name]
			if !ok {
				continue
			}
			var nets []model.Network
			for _, peer := range peers[name] {
				nets = append(nets, s.networks[peer])
			}
			d.Flows = append(d.Flows, b.pipeline.Network(n)...)
			d.Flows = append(d.Flows, b.pipeline.Routes(n, nets)...)
			flows, flood := b.remote(s, n)
			d.Flows = append(d.Flows, flows...)
			d.Groups = append(d.Groups, flood)
		}
		return d
	}
}

// change applies mutate to the state and sends the difference it makes
// within sc to the bridge, in one bundle (shared with the changes submitted
// at the same time). Before the state is complete only
// the state changes: the first Prune syncs it whole. When the bridge refuses
// the change, the state goes back to what the bridge holds.
func (b *Backend) change(ctx context.Context, sc scope, mutate func(*state) (undo func())) error {
	b.mu.Lock()
	if !b.primed {
		mutate(&b.state)
		b.mu.Unlock()
		return nil
	}
	before := sc(b.state)
	undo := mutate(&b.state)
	after := sc(b.state)
	// Submitted under mu, so that the switch sees concurrent changes in
	// the order they changed the state (two ports' edits of their
	// network's flood group); the wait for the commit is not.
	pending, err := b.flows.Submit(b.dpid, before, after)
	b.mu.Unlock()
	if err == nil {
		_, err = pending.Wait(ctx)
	}
	if err != nil {
		b.mu.Lock()
		undo()
		b.mu.Unlock()
		return err
	}
	return nil
}

// prime makes the state complete from the controller's desired state. Ports
// come from this run's attaches, which carry the ofports OVS has now; a
// desired port that did not attach has no flows. Remote ports come from s
// as they are (byNetwork).
func (b *Backend) prime(s datapath.State, remote map[string][]model.RemotePort) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := newState()
	if remote != nil {
		next.remote = remote
	}
	next.policy = s.Policy
	if b.natHost != nil {
		next.nat = s.NAT
	}
	next.pickup = b.state.pickup // opened as the switch connected (checkPickup)
	for _, n := range s.Networks {
		next.networks[n.Name] = n
	}
	for _, r := range s.Routers {
		next.routers[r.Name] = r
	}
	for _, p := range s.Ports {
		if got, ok := b.state.ports[p.Network][p.Name]; ok {
			if next.ports[p.Network] == nil {
				next.ports[p.Network] = map[string]model.Port{}
			}
			next.ports[p.Network][p.Name] = got
		}
	}
	b.state, b.primed = next, true
}

// putPort installs a local port's flows. A remote port with the local
// port's address or MAC loses its flows while the local port is there
// (datapath.SelectRemote), which is logged.
func (b *Backend) putPort(ctx context.Context, p model.Port) error {
	defer b.reportSkips(p.Network)
	return b.change(ctx, b.portScope(p.Network, p.Name), func(s *state) func() {
		old, had := s.ports[p.Network][p.Name]
		if s.ports[p.Network] == nil {
			s.ports[p.Network] = map[string]model.Port{}
		}
		s.ports[p.Network][p.Name] = p
		return func() {
			if had {
				s.ports[p.Network][p.Name] = old
			} else {
				delete(s.ports[p.Network], p.Name)
			}
		}
	})
}

func (b *Backend) removePort(ctx context.Context, name string) error {
	b.mu.Lock()
	var network string
	for n, ports := range b.state.ports {
		if _, ok := ports[name]; ok {
			network = n
		}
	}
	b.mu.Unlock()
	if network == "" {
		return nil // never attached in this run, so it has no flows of ours
	}
	defer b.reportSkips(network)
	return b.change(ctx, b.portScope(network, name), func(s *state) func() {
		old := s.ports[network][name]
		delete(s.ports[network], name)
		return func() { s.ports[network][name] = old }
	})
}

// HostConflict implements datapath.HostChecker: a network's host side
// here is a route through the bridge's LOCAL interface (host.go).
func (b *Backend) HostConflict(n model.Network) (string, error) {
	return hostnet.SubnetConflict(n.Subnet, datapath.OwnerAlias)
}

// EnsureNetwork implements datapath.Backend.
func (b *Backend) EnsureNetwork(ctx context.Context, n model.Network) error {
	if n.ID < 1 || n.ID >= 1<<24 {
		return fmt.Errorf("network %s: id %d out of range", n.Name, n.ID)
	}
	err := b.change(ctx, b.networkScope(n.Name), func(s *state) func() {
		old, had := s.networks[n.Name]
		s.networks[n.Name] = n
		return func() {
			if had {
				s.networks[n.Name] = old
			} else {
				delete(s.networks, n.Name)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("network %s: flows: %w", n.Name, err)
	}
	if b.underlay != nil {
		ifname, mtu, err := link.Holding(b.underlay.LocalIP)
		b.underlayMTU.Check(b.log, n, b.underlay.LocalIP, ifname, mtu, err)
	}
	if err := b.syncHostAfter(ctx, n); err != nil {
		return err
	}
	return b.sparesFollowNetworks(ctx)
}

// DeleteNetwork implements datapath.Backend.
func (b *Backend) DeleteNetwork(ctx context.Context, n model.Network) error {
	err := b.change(ctx, b.networkScope(n.Name), func(s *state) func() {
		old, had := s.networks[n.Name]
		delete(s.networks, n.Name)
		return func() {
			if had {
				s.networks[n.Name] = old
			}
		}
	})
	if err != nil {
		return fmt.Errorf("network %s: flows: %w", n.Name, err)
	}
	b.underlayMTU.Forget(n.Name)
	if err := b.syncHostAfter(ctx, n); err != nil {
		return err
	}
	return b.sparesFollowNetworks(ctx)
}

// sparesFollowNetworks keeps spares while a network exists, once the state
// is complete (Prune decides at start).
func (b *Backend) sparesFollowNetworks(ctx context.Context) error {
	b.mu.Lock()
	primed, any := b.primed, len(b.state.networks) > 0
	b.mu.Unlock()
	if !primed {
		return nil
	}
	return b.spares.setActive(ctx, any)
}

// EnsureRouter implements datapath.Backend: the routes of every network the
// router joined or joins now are replaced.
func (b *Backend) EnsureRouter(ctx context.Context, r model.Router) error {
	b.mu.Lock()
	affected := slices.Clone(r.Networks)
	if old, ok := b.state.routers[r.Name]; ok {
		affected = append(affected, old.Networks...)
	}
	b.mu.Unlock()
	err := b.change(ctx, b.networkScope(affected...), func(s *state) func() {
		old, had := s.routers[r.Name]
		s.routers[r.Name] = r
		return func() {
			if had {
				s.routers[r.Name] = old
			} else {
				delete(s.routers, r.Name)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("router %s: flows: %w", r.Name, err)
	}
	return nil
}

// DeleteRouter implements datapath.Backend.
func (b *Backend) DeleteRouter(ctx context.Context, r model.Router) error {
	b.mu.Lock()
	old, ok := b.state.routers[r.Name]
	b.mu.Unlock()
	if !ok {
		return nil
	}
	err := b.change(ctx, b.networkScope(old.Networks...), func(s *state) func() {
		delete(s.routers, r.Name)
		return func() { s.routers[r.Name] = old }
	})
	if err != nil {
		return fmt.Errorf("router %s: flows: %w", r.Name, err)
	}
	return nil
}
