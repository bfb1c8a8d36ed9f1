package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
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

// setTunnel makes the pipeline use the tunnel port's ofport; the caller
// syncs the flows in full.
func (b *Backend) setTunnel(ofport uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pipeline.Tunnel = ofport
}

// remoteSet validates remote ports and indexes them by network and name.
// Each needs an IPv4 address (its flows' cookie), a unicast MAC and another
// host's IPv4 underlay address; addresses must be unique among them. The
// first bad port is the error; with skip it is left out and logged instead,
// so that one bad record from another host cannot stop this host's reconcile.
func (b *Backend) remoteSet(ports []model.RemotePort, skip bool) (map[string]map[string]model.RemotePort, error) {
	out := map[string]map[string]model.RemotePort{}
	ips := map[string]string{}
	for _, r := range ports {
		p := r.Port
		err := checkRemote(r, b.underlay)
		if _, dup := out[p.Network][p.Name]; err == nil && dup {
			err = fmt.Errorf("%w: listed twice", model.ErrInvalid)
		}
		if other, dup := ips[p.IP.String()]; err == nil && dup {
			err = fmt.Errorf("%w: port %s has address %s too", model.ErrInvalid, other, p.IP)
		}
		if err != nil {
			if !skip {
				return nil, fmt.Errorf("remote port %s: %w", p.Name, err)
			}
			b.log.Error("remote port left out", "port", p.Name, "host", p.Host, "err", err)
			continue
		}
		ips[p.IP.String()] = p.Name
		if out[p.Network] == nil {
			out[p.Network] = map[string]model.RemotePort{}
		}
		out[p.Network][p.Name] = model.RemotePort{Port: p, HostIP: r.HostIP}
	}
	return out, nil
}

func checkRemote(r model.RemotePort, u *datapath.Underlay) error {
	p := r.Port
	if err := model.ValidateName(p.Name); err != nil {
		return err
	}
	if p.Network == "" {
		return fmt.Errorf("%w: no network", model.ErrInvalid)
	}
	if !p.IP.Is4() {
		return fmt.Errorf("%w: address %q is not IPv4", model.ErrInvalid, p.IP)
	}
	if mac, err := net.ParseMAC(p.MAC); err != nil || len(mac) != 6 || mac[0]&1 != 0 {
		return fmt.Errorf("%w: MAC %q is not a unicast Ethernet address", model.ErrInvalid, p.MAC)
	}
	if !r.HostIP.Is4() {
		return fmt.Errorf("%w: host address %q is not IPv4", model.ErrInvalid, r.HostIP)
	}
	if u != nil && r.HostIP == u.LocalIP {
		return fmt.Errorf("%w: host address %s is this host's own", model.ErrInvalid, r.HostIP)
	}
	return nil
}

// SetRemotePorts implements datapath.Overlay: the remote ports' flows and
// the flood groups of their networks change by the difference to the set
// before, in one bundle. The same set again sends nothing.
func (b *Backend) SetRemotePorts(ctx context.Context, ports []model.RemotePort) error {
	next, err := b.remoteSet(ports, false)
	if err != nil {
		return fmt.Errorf("set remote ports: %w", err)
	}
	if b.underlay == nil && len(next) > 0 {
		return fmt.Errorf("set remote ports: no underlay configured (single host)")
	}
	// The scope is the networks whose remote ports differ, computed on the
	// state the change replaces: remoteMu keeps another SetRemotePorts from
	// changing it in between.
	b.remoteMu.Lock()
	defer b.remoteMu.Unlock()
	b.mu.Lock()
	affected := changedNetworks(b.state.remote, next)
	b.mu.Unlock()
	if len(affected) == 0 {
		return nil
	}
	err = b.change(ctx, b.remoteScope(affected...), func(s *state) func() {
		old := s.remote
		s.remote = next
		return func() { s.remote = old }
	})
	if err != nil {
		return fmt.Errorf("set remote ports: flows: %w", err)
	}
	return nil
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
