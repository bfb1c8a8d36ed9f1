package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/flows/pipeline"
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
	// tunnelOverhead is what VXLAN, or Geneve without options, over IPv4
	// adds to a frame on the underlay: outer IPv4 20 + UDP 8 + VXLAN or
	// Geneve 8 + inner Ethernet 14.
	tunnelOverhead = 50
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

// setTunnel makes the pipeline use the tunnel port's ofport; the caller
// syncs the flows in full.
func (b *Backend) setTunnel(ofport uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pipeline.Tunnel = ofport
}

// remoteSet validates remote ports and indexes the valid ones by network
// and name; the others are left out, with the reason, by network and name,
// so that one bad record from another host cannot stop this host's
// reconcile. Each needs a valid name and network, an IPv4 address (its
// flows' cookie), a unicast MAC and another host's IPv4 underlay address.
// Clashes between valid ports (an address or MAC that another port of the
// network has) are the pipeline's to settle (pipeline.SelectRemote).
func (b *Backend) remoteSet(ports []model.RemotePort) (valid map[string]map[string]model.RemotePort, invalid datapath.Skips) {
	valid, invalid = map[string]map[string]model.RemotePort{}, datapath.Skips{}
	if !slices.IsSortedFunc(ports, model.CompareRemote) {
		ports = slices.SortedFunc(slices.Values(ports), model.CompareRemote)
	}
	validNet := map[string]error{}
	for _, r := range ports {
		p := r.Port
		err, seen := validNet[p.Network]
		if !seen {
			if err = v1.ValidateName(p.Network); err != nil {
				err = fmt.Errorf("network: %w", err)
			}
			validNet[p.Network] = err
		}
		if err == nil {
			err = checkRemote(r, b.underlay)
		}
		if had, dup := valid[p.Network][p.Name]; err == nil && dup {
			if sameRemote(had, r) {
				continue
			}
			err = errors.New("listed twice, differently")
		}
		if err != nil {
			invalid.Add(p.Network, p.Name, datapath.Skip{Host: p.Host, Reason: err.Error()})
			continue
		}
		if valid[p.Network] == nil {
			valid[p.Network] = map[string]model.RemotePort{}
		}
		valid[p.Network][p.Name] = model.RemotePort{Port: p, HostIP: r.HostIP}
	}
	return valid, invalid
}

// checkRemote says why a remote port cannot have flows, or nil. (Its
// network's name is checked by the caller.)
func checkRemote(r model.RemotePort, u *datapath.Underlay) error {
	p := r.Port
	if err := v1.ValidateName(p.Name); err != nil {
		return err
	}
	if !p.IP.Is4() {
		return fmt.Errorf("address %q is not IPv4", p.IP)
	}
	if mac, err := net.ParseMAC(p.MAC); err != nil || len(mac) != 6 || mac[0]&1 != 0 || [6]byte(mac) == [6]byte{} {
		return fmt.Errorf("MAC %q is not a unicast Ethernet address", p.MAC)
	}
	if !r.HostIP.Is4() {
		return fmt.Errorf("host address %q is not IPv4", r.HostIP)
	}
	if u != nil && r.HostIP == u.LocalIP {
		return fmt.Errorf("host address %s is this host's own", r.HostIP)
	}
	return nil
}

// SetRemotePorts implements datapath.Overlay: the remote ports' flows and
// the flood groups of their networks change by the difference to the set
// before, in one bundle. The same list again sends nothing and costs a
// comparison with the list before; the same set in another order, a pass
// over it. A port that cannot have flows (invalid, or an address or
// MAC another port of its network has) is left out and logged, once, not
// returned as an error: the rest of the set lands.
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
	next, invalid := b.remoteSet(ports)
	b.mu.Lock()
	affected := changedNetworks(b.state.remote, next)
	logged := slices.Concat(affected, b.invalid.Networks(), invalid.Networks())
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
	b.mu.Lock()
	b.invalid = invalid
	b.mu.Unlock()
	b.reportSkips(logged...)
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
		for name, s := range b.invalid[network] {
			now.Add(network, name, s)
		}
		if len(b.state.remote[network]) == 0 {
			continue
		}
		_, skipped := pipeline.SelectRemote(b.state.members(network), b.state.remoteOf(network))
		for _, s := range skipped {
			now.Add(network, s.Port.Port.Name, datapath.Skip{Host: s.Port.Port.Host, Reason: s.Reason})
		}
	}
	b.skipped.Update(b.log, networks, now)
}

// changedNetworks names the networks whose remote ports differ between a
// and b.
func changedNetworks(a, b map[string]map[string]model.RemotePort) []string {
	var out []string
	for _, network := range slices.Sorted(maps.Keys(a)) {
		if !maps.EqualFunc(a[network], b[network], sameRemote) {
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

func sameRemote(x, y model.RemotePort) bool {
	return x.HostIP == y.HostIP && x.Port.IP == y.Port.IP && x.Port.MAC == y.Port.MAC &&
		x.Port.Network == y.Port.Network && x.Port.Host == y.Port.Host
}

// checkUnderlayMTU warns, once per network and MTU, when a full-size frame
// of n does not fit the underlay once tunnelled: OVS neither fragments the
// outer packet nor sends "fragmentation needed", so such packets vanish
// (ping works, TCP stalls). The underlay's MTU is that of the interface
// holding the underlay address (on the userspace datapath br-phy's
// internal interface). An address on no interface is warned about once: OVS
// cannot route the tunnels' packets then.
func (b *Backend) checkUnderlayMTU(n model.Network) {
	if b.underlay == nil {
		return
	}
	ifname, mtu, err := link.Holding(b.underlay.LocalIP)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err != nil:
		if !b.underlayLost {
			b.log.Warn("underlay address on no interface of this host: tunnels to the other hosts cannot be sent",
				"underlay_ip", b.underlay.LocalIP, "err", err)
		}
		b.underlayLost = true
	case n.MTU+tunnelOverhead > mtu:
		b.underlayLost = false
		if b.mtuWarned[n.Name] != n.MTU {
			b.log.Warn("network MTU too large for the underlay: tunnelled full-size packets will be dropped",
				"network", n.Name, "mtu", n.MTU, "tunnel_overhead", tunnelOverhead, "underlay_interface", ifname, "underlay_mtu", mtu)
			if b.mtuWarned == nil {
				b.mtuWarned = map[string]int{}
			}
			b.mtuWarned[n.Name] = n.MTU
		}
	default:
		b.underlayLost = false
		delete(b.mtuWarned, n.Name)
	}
}
