// Package linux is the fallback backend: a Linux bridge per network, veth pairs
// into namespaces and tap devices enslaved to it, the gateway address on the
// bridge, and isolation by nftables rules in a table of our own.
package linux

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Backend implements datapath.Backend with Linux bridges.
type Backend struct {
	prefix string

	// mu serialises network changes so the nftables table always matches the
	// networks that exist.
	mu       sync.Mutex
	networks map[string]model.Network
}

// New returns a backend naming its bridges prefix-<hash>. It checks that nft is
// usable, since without it networks would not be isolated.
func New(ctx context.Context, prefix string) (*Backend, error) {
	if err := applyRuleset(ctx, "list tables\n"); err != nil {
		return nil, fmt.Errorf("linux backend needs nftables: %w", err)
	}
	return &Backend{prefix: prefix, networks: map[string]model.Network{}}, nil
}

// Info implements datapath.Backend.
func (b *Backend) Info() datapath.Info {
	return datapath.Info{Backend: "linux", Bridge: b.prefix}
}

// Ready implements datapath.Backend: netlink is always there.
func (b *Backend) Ready() error { return nil }

// Close implements datapath.Backend.
func (b *Backend) Close() error { return nil }

func (b *Backend) bridgeName(network string) string { return model.BridgeName(b.prefix, network) }

// EnsureNetwork implements datapath.Backend.
func (b *Backend) EnsureNetwork(ctx context.Context, n model.Network) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := b.bridgeName(n.Name)
	br, err := link.Lookup(name, datapath.BridgeAlias(n.Name))
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if br == nil {
		if br, err = createBridge(name, n); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	if err := configureBridge(br, n); err != nil {
		return fmt.Errorf("network %s: bridge %s: %w", n.Name, name, err)
	}
	b.networks[n.Name] = n
	return b.syncRules(ctx)
}

func createBridge(name string, n model.Network) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = n.MTU
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	l, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetAlias(l, datapath.BridgeAlias(n.Name))
	}
	if err != nil {
		_ = netlink.LinkDel(br)
		return nil, fmt.Errorf("set up bridge %s: %w", name, err)
	}
	return l, nil
}

func configureBridge(br netlink.Link, n model.Network) error {
	mac, _ := net.ParseMAC(model.BridgeMAC(n.Name))
	if br.Attrs().HardwareAddr.String() != mac.String() {
		if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("set mac: %w", err)
		}
	}
	if br.Attrs().MTU != n.MTU {
		if err := netlink.LinkSetMTU(br, n.MTU); err != nil {
			return fmt.Errorf("set mtu: %w", err)
		}
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
	if err := netlink.AddrReplace(br, gw); err != nil {
		return fmt.Errorf("add gateway address %s: %w", gw.IPNet, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// DeleteNetwork implements datapath.Backend.
func (b *Backend) DeleteNetwork(ctx context.Context, n model.Network) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := link.Delete(b.bridgeName(n.Name), datapath.BridgeAlias(n.Name)); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	delete(b.networks, n.Name)
	return b.syncRules(ctx)
}

func (b *Backend) syncRules(ctx context.Context) error {
	if err := applyRuleset(ctx, Ruleset(b.prefix, slices.Collect(maps.Values(b.networks)))); err != nil {
		return fmt.Errorf("isolation rules: %w", err)
	}
	return nil
}

// AttachPort implements datapath.Backend.
func (b *Backend) AttachPort(_ context.Context, n model.Network, p model.Port) (model.Port, error) {
	br, err := link.Lookup(b.bridgeName(n.Name), datapath.BridgeAlias(n.Name))
	if err == nil && br == nil {
		err = fmt.Errorf("bridge %s is missing", b.bridgeName(n.Name))
	}
	if err != nil {
		return p, fmt.Errorf("port %s: network %s: %w", p.Name, n.Name, err)
	}
	host, err := link.EnsurePort(n, p, link.Options{})
	if err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(host, br); err != nil {
			return p, fmt.Errorf("port %s: add %s to bridge %s: %w", p.Name, p.HostIfname, br.Attrs().Name, err)
		}
	}
	return p, nil
}

// DetachPort implements datapath.Backend.
func (b *Backend) DetachPort(_ context.Context, _ model.Network, p model.Port) error {
	if err := link.Delete(p.HostIfname, datapath.PortAlias(p.Name)); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	return nil
}

// Prune implements datapath.Backend.
func (b *Backend) Prune(ctx context.Context, s datapath.State) error {
	networks, ports := s.Networks, s.Ports
	want := link.PortLinks(ports)
	for _, n := range networks {
		want[b.bridgeName(n.Name)] = datapath.BridgeAlias(n.Name)
	}
	if err := link.Prune(want); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.networks = map[string]model.Network{}
	for _, n := range networks {
		b.networks[n.Name] = n
	}
	return b.syncRules(ctx)
}

// EnsureRouter implements datapath.Backend.
func (b *Backend) EnsureRouter(context.Context, model.Router) error {
	return fmt.Errorf("routers are not implemented on this backend yet")
}

// DeleteRouter implements datapath.Backend.
func (b *Backend) DeleteRouter(context.Context, model.Router) error { return nil }
