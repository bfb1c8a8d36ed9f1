package linux

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/hostnet"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/internal/fault"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// A port's life on the Linux backend: its link, its rules in the bridge
// table, its DHCP socket, and the prune that finds what a crash left.

// AttachPort implements datapath.Backend. The port's anti-spoofing rules land
// before its link joins the bridge, so no frame of it is ever forwarded
// unchecked.
//
// In a cluster a remote port with the port's MAC or address gives way first
// (claimLocal; before portsMu, which DeleteNetwork takes under mu).
func (b *Backend) AttachPort(ctx context.Context, n model.Network, p model.Port) (model.Port, error) {
	if err := b.claimLocal(ctx, p); err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	b.portsMu.RLock()
	defer b.portsMu.RUnlock()
	br, err := link.Lookup(b.bridgeName(n.Name), datapath.BridgeAlias(n.Name))
	if err == nil && br == nil {
		err = fmt.Errorf("bridge %s is missing", b.bridgeName(n.Name))
	}
	if err != nil {
		return p, fmt.Errorf("port %s: network %s: %w", p.Name, n.Name, err)
	}
	if err := b.ensurePortRules(ctx, p); err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	if err := b.policyPort(ctx, p, true); err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	fault.Point("attach-after-port-rules")
	host, err := link.EnsurePort(ctx, n, p, link.Options{})
	if err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	// Before the link joins the bridge, so that a client's first DISCOVER
	// is read: from then on the port's chain drops its DHCP frames, which
	// only this socket reads.
	if err := b.dhcp.serve(p, host.Attrs().Index); err != nil {
		return p, fmt.Errorf("port %s: %w", p.Name, err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(host, br); err != nil {
			return p, fmt.Errorf("port %s: add %s to bridge %s: %w", p.Name, p.HostIfname, br.Attrs().Name, err)
		}
	}
	// Every port, and every adopted one: a forward may target it later,
	// ours or a chained portmap's (nat.go).
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return p, fmt.Errorf("port %s: hairpin mode on %s: %w", p.Name, p.HostIfname, err)
	}
	fault.Point("attach-after-bridge-master")
	return p, nil
}

// ensurePortRules loads p's rules, unless the start-up reconcile finds them
// in place (see leftRules).
func (b *Backend) ensurePortRules(ctx context.Context, p model.Port) error {
	b.startMu.Lock()
	if !b.primed && b.leftRules == nil {
		have, err := listBridgeTable(ctx)
		if err != nil {
			b.startMu.Unlock()
			return fmt.Errorf("read anti-spoofing rules: %w", err)
		}
		b.leftRules = &have
	}
	inPlace := !b.primed && b.leftRules.elements[p.HostIfname] == portChain(p.Name)
	b.startMu.Unlock()
	if inPlace {
		return nil
	}
	return applyPortRules(ctx, p)
}

// applyPortRules loads p's rules. Should the skeleton be gone (someone deleted
// our table, or Prune did when nothing was left), it is put back and the
// port's rules tried once more.
func applyPortRules(ctx context.Context, p model.Port) error {
	script, err := PortRules(p)
	if err != nil {
		return err
	}
	if err := hostnet.ApplyNft(ctx, script); err == nil {
		return nil
	}
	if err := hostnet.ApplyNft(ctx, BridgeSkeleton()+script); err != nil {
		return fmt.Errorf("anti-spoofing rules: %w", err)
	}
	return nil
}

// DetachPort implements datapath.Backend. The link goes first, so the port
// sends nothing once its rules are gone; both steps succeed when there is
// nothing left to remove. In a cluster a remote port that gave way to the
// port comes back then (or, if that fails, at the next hand-over).
func (b *Backend) DetachPort(ctx context.Context, _ model.Network, p model.Port) error {
	if err := b.detachPort(ctx, p); err != nil {
		return err
	}
	if err := b.releaseLocal(ctx, p); err != nil {
		// The port is gone; the remote port's entries come back with the
		// next hand-over of the remote ports, which repairs what it finds.
		b.log.Warn("restore a remote port's entries after a local port's detach", "port", p.Name, "err", err)
	}
	return nil
}

func (b *Backend) detachPort(ctx context.Context, p model.Port) error {
	b.portsMu.RLock()
	defer b.portsMu.RUnlock()
	if err := link.DeletePort(p); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	b.dhcp.stop(p.Name)
	fault.Point("detach-after-link-removed")
	if err := b.policyPort(ctx, p, false); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	script, err := PortRulesDelete(p)
	if err == nil {
		err = hostnet.ApplyNft(ctx, script)
	}
	if err != nil {
		return fmt.Errorf("port %s: remove anti-spoofing rules: %w", p.Name, err)
	}
	fault.Point("detach-after-rules-removed")
	return nil
}

// SpoofDrops returns how many frames the port's anti-spoofing rules have
// dropped (the counter SpoofCounter names).
func (b *Backend) SpoofDrops(ctx context.Context, port string) (uint64, error) {
	n, err := readCounter(ctx, SpoofCounter(port))
	if err != nil {
		return 0, fmt.Errorf("port %s: spoof drops: %w", port, err)
	}
	return n, nil
}

// Prune implements datapath.Backend: links, per-port rules, the inet table,
// the NAT table and the security groups' table are made to match s, and in a cluster the
// overlay: VXLAN devices, the
// gateway ARP rules, and the remote ports' entries, which must be s.Remote.
// Per-port objects of ports in s are left as they are, so their counters
// keep counting across a restart; entries that are right are not touched.
// On a single host every VXLAN device of ours goes (a host that left its
// cluster). A policy that guards a port is refused, with nothing changed,
// while bridged traffic skips the security groups' table (judgeable): a
// start on a host without br_netfilter fails closed.
func (b *Backend) Prune(ctx context.Context, s datapath.State) error {
	if err := b.judgeable(s.Policy); err != nil {
		return fmt.Errorf("prune: security groups: %w", err)
	}
	want := link.PortLinks(s.Ports)
	for _, n := range s.Networks {
		want[b.bridgeName(n.Name)] = datapath.BridgeAlias(n.Name)
		if b.underlay != nil {
			want[b.vxlanName(n.Name)] = VXLANAlias(n.Name)
		}
	}
	if err := link.Prune(want); err != nil {
		return err
	}
	if err := b.prunePortRules(ctx, s); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.networks = map[string]model.Network{}
	for _, n := range s.Networks {
		b.networks[n.Name] = n
	}
	b.dhcp.keep(s.Networks, s.Ports)
	b.routers = map[string]model.Router{}
	for _, r := range s.Routers {
		b.routers[r.Name] = r
	}
	b.inherited = false
	b.nat.want, b.nat.primed, b.nat.held = s.NAT, true, nil
	if err := b.syncRules(ctx, ""); err != nil {
		return err
	}
	if err := b.prunePolicy(ctx, s); err != nil {
		return err
	}
	b.local = map[string]map[string]model.Port{}
	if b.underlay != nil {
		for _, p := range s.Ports {
			if b.local[p.Network] == nil {
				b.local[p.Network] = map[string]model.Port{}
			}
			b.local[p.Network][p.Name] = p
		}
	}
	// Read the kernel and repair what differs, even if nothing changed.
	b.remoteApplied = false
	return b.setRemote(ctx, s.Remote)
}

func (b *Backend) prunePortRules(ctx context.Context, s datapath.State) error {
	b.portsMu.Lock()
	defer b.portsMu.Unlock()
	have, err := listBridgeTable(ctx)
	if err != nil {
		return fmt.Errorf("prune anti-spoofing rules: %w", err)
	}
	// The ports' rules go with the pruning: each rewritten in place, in one
	// transaction, so none is without its rules at any moment.
	script := PruneScript(have, s.Ports, len(s.Networks))
	// PruneScript removes the whole table when nothing is wanted; otherwise
	// the overlay's objects are made to match too, in the same transaction.
	if len(s.Ports) > 0 || len(s.Networks) > 0 {
		switch {
		case b.underlay != nil:
			script += OverlayPrune(b.prefix, s.Networks)
		case have.overlay:
			script += OverlayRemove()
		}
	}
	for _, p := range s.Ports {
		rules, err := PortRules(p)
		if err != nil {
			return err
		}
		script += rules
	}
	if err := hostnet.ApplyNft(ctx, script); err != nil {
		return fmt.Errorf("prune anti-spoofing rules: %w", err)
	}
	b.startMu.Lock()
	b.primed, b.leftRules = true, nil
	b.startMu.Unlock()
	return nil
}
