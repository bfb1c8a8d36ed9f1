package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
	"github.com/ovs-vnet/ovs-vnet/ovsdb"
)

// The overlay (cluster mode): one flow-based tunnel port on the integration
// bridge carries every network to the other hosts, the VNI being the
// network's ID and the destination host chosen per flow (remote_ip=flow,
// key=flow). On the userspace datapath OVS encapsulates itself and sends
// the outer packet by its own routing table, learned from the kernel's: the
// host's underlay address must be on an interface OVS forwards for (the
// internal port of a netdev bridge holding the physical NIC, br-phy; see
// docs/PIPELINE.md).

const (
	// tunnelPort names the tunnel port, on the bridge and in OVSDB.
	tunnelPort = "vnet-tun0"
	// tunnelKey marks the tunnel port's rows, with the tunnel kind as value.
	tunnelKey = "ovs-vnet-tunnel"
	// tunnelTimeout bounds making the tunnel port, its ofport included.
	tunnelTimeout = 30 * time.Second
)

var _ datapath.Overlay = (*Backend)(nil)

// checkUnderlay validates an underlay and fills in the default kind.
func checkUnderlay(u *datapath.Underlay) (*datapath.Underlay, error) {
	if u == nil {
		return nil, nil
	}
	out := *u
	switch out.Kind {
	case "":
		out.Kind = datapath.TunnelVXLAN
	case datapath.TunnelVXLAN, datapath.TunnelGeneve:
	default:
		return nil, fmt.Errorf("underlay: tunnel kind %q is not %s or %s", u.Kind, datapath.TunnelVXLAN, datapath.TunnelGeneve)
	}
	// The flows set the destination as tun_dst, an IPv4 field.
	if !out.LocalIP.Is4() {
		return nil, fmt.Errorf("underlay: local address %q is not IPv4", u.LocalIP)
	}
	return &out, nil
}

func tunnelSpec(u datapath.Underlay) ovsdb.PortSpec {
	return ovsdb.PortSpec{
		Name: tunnelPort,
		Type: u.Kind,
		Options: map[string]string{
			"remote_ip": "flow",
			"key":       "flow",
			"local_ip":  u.LocalIP.String(),
		},
		ExternalIDs: map[string]string{tunnelKey: u.Kind},
	}
}

// ensureTunnel makes the tunnel port exist as the underlay says and returns
// its ofport; 0 without an underlay (Prune then removes a tunnel port left
// from before, like any owned port nobody wants). A port of the other kind
// is replaced, not changed in place, so that the ofport waited for is the
// new interface's.
func (b *Backend) ensureTunnel(ctx context.Context) (uint32, error) {
	if b.underlay == nil {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, tunnelTimeout)
	defer cancel()
	spec := tunnelSpec(*b.underlay)
	owned, err := b.db.OwnedPorts(b.bridge)
	if err != nil {
		return 0, fmt.Errorf("tunnel port: %w", err)
	}
	for _, op := range owned {
		if op.Name == tunnelPort && op.Type != spec.Type {
			if err := b.db.DeletePort(ctx, b.bridge, tunnelPort); err != nil {
				return 0, fmt.Errorf("tunnel port: replace %s with %s: %w", op.Type, spec.Type, err)
			}
		}
	}
	if err := b.db.AddPort(ctx, b.bridge, spec); err != nil {
		if errors.Is(err, ovsdb.ErrNotOwned) {
			err = fmt.Errorf("%w: %w", datapath.ErrConflict, err)
		}
		return 0, fmt.Errorf("tunnel port: %w", err)
	}
	ofport, err := b.db.WaitOfport(ctx, tunnelPort)
	if err != nil {
		return 0, fmt.Errorf("tunnel port: %w", err)
	}
	return uint32(ofport), nil
}

// self is this host's underlay address; none on a single host.
func (b *Backend) self() netip.Addr {
	if b.underlay == nil {
		return netip.Addr{}
	}
	return b.underlay.LocalIP
}

// setTunnel makes the pipeline use the tunnel port's ofport; the caller
// syncs the flows in full.
func (b *Backend) setTunnel(ofport uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pipeline.Tunnel = ofport
}

// SetRemotePorts implements datapath.Overlay: the remote ports' flows and
// the flood groups of their networks change by the difference to the set
// before, in one bundle. The same list again sends nothing and costs a
// comparison with the list before; the same set in another order, a pass
// over it. A port that cannot have flows (datapath.SelectRemote) is left
// out and logged, once, not returned as an error: the rest of the set
// lands.
func (b *Backend) SetRemotePorts(ctx context.Context, ports []model.RemotePort) error {
	if b.underlay == nil && len(ports) > 0 {
		return fmt.Errorf("set remote ports: no underlay configured (single host)")
	}
	// The scope is the networks whose remote ports differ, computed on the
	// state the change replaces: remoteMu keeps another SetRemotePorts from
	// changing it in between.
	b.remoteMu.Lock()
	defer b.remoteMu.Unlock()
	if b.remoteGiven != nil && slices.Equal(ports, *b.remoteGiven) {
		return nil
	}
	next := byNetwork(ports)
	b.mu.Lock()
	affected := changedNetworks(b.state.remote, next)
	b.mu.Unlock()
	if len(affected) > 0 {
		err := b.change(ctx, b.remoteScope(affected...), func(s *state) func() {
			old := s.remote
			s.remote = next
			return func() { s.remote = old }
		})
		if err != nil {
			return fmt.Errorf("set remote ports: flows: %w", err)
		}
	}
	b.reportSkips(affected...)
	b.setGiven(ports)
	return nil
}

// setGiven records the remote ports that the state now holds; remoteMu is
// held.
func (b *Backend) setGiven(ports []model.RemotePort) {
	given := slices.Clone(ports)
	b.remoteGiven = &given
}

// reportSkips logs, for the networks named, the remote ports that have no
// flows, and why: each once, when it starts or its reason changes (see
// datapath.SkipLog).
func (b *Backend) reportSkips(networks ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := datapath.Skips{}
	for _, network := range networks {
		if len(b.state.remote[network]) == 0 {
			continue
		}
		_, skips := datapath.SelectRemote(b.self(), b.state.members(network), b.state.remote[network])
		maps.Copy(now, skips)
	}
	b.skipped.Update(b.log, networks, now)
}

// byNetwork indexes remote ports by network, each network's in
// model.CompareRemote order, so that the same set in another order is the
// same index.
func byNetwork(ports []model.RemotePort) map[string][]model.RemotePort {
	out := map[string][]model.RemotePort{}
	for _, r := range ports {
		out[r.Port.Network] = append(out[r.Port.Network], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, model.CompareRemote)
	}
	return out
}

// changedNetworks names the networks whose remote ports differ between a
// and b.
func changedNetworks(a, b map[string][]model.RemotePort) []string {
	var out []string
	for _, network := range slices.Sorted(maps.Keys(a)) {
		if !slices.Equal(a[network], b[network]) {
			out = append(out, network)
		}
	}
	for network := range b {
		if _, ok := a[network]; !ok && len(b[network]) > 0 {
			out = append(out, network)
		}
	}
	return out
}
