package linux

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Cluster mode (a backend given a datapath.Underlay): each network's bridge
// also holds a kernel VXLAN device, VNI = the network's ID, which carries the
// network's frames to the other hosts. Nothing is learned from the wire
// (nolearning) and there is no multicast group: where a MAC lives, where
// broadcast goes and which IP has which MAC are all written by
// SetRemotePorts (remote.go) from the controller's view of the cluster.
//
// The underlay must carry UDP port 4789 between the hosts' underlay
// addresses, with an MTU of at least the largest network MTU plus
// datapath.TunnelOverhead (EnsureNetwork warns otherwise); the host's own
// routes pick the interface.
//
// Routing is distributed: every host holds every network's gateway address
// and routes what its own ports send, so a packet crosses the overlay at most
// once, already in its destination network. What keeps the many copies of
// one gateway from seeing each other is in OverlayRules (overlay_nft.go).
const (
	// vxlanPort is the IANA VXLAN port; every host of a cluster uses it.
	vxlanPort     = 4789
	maxVNI        = 1<<24 - 1
	vxlanAliasPfx = datapath.OwnerAlias + "vxlan="
	// maxClusterPrefix keeps at least four hex digits of hash in bridge and
	// VXLAN device names (15 characters in all).
	maxClusterPrefix = 10
)

// VXLANAlias is the alias that marks a network's VXLAN device as ours, so
// that link.Prune finds it (and removes it on a host that is no longer in a
// cluster) like our other links.
func VXLANAlias(network string) string { return vxlanAliasPfx + network }

// VXLANName names a network's VXLAN device: the bridge's name with an "x" in
// place of the "-" after the prefix, so that an operator sees which bridge
// a device belongs to, and the device never matches the prefix-* pattern
// the inet table keeps for our bridges.
func VXLANName(prefix, network string) string {
	br := model.BridgeName(prefix, network)
	hash, ok := strings.CutPrefix(br, prefix+"-")
	if !ok {
		// The prefix filled the bridge name: there is no hash to share.
		// New refuses such prefixes in cluster mode.
		hash = ""
	}
	name := prefix + "x" + hash
	return name[:min(len(name), 15)]
}

// checkUnderlay refuses what the Linux backend cannot carry, before anything
// is created. A Geneve device in the kernel sends to one fixed remote (or to
// whatever a lightweight-tunnel route says); it has no per-MAC forwarding
// database like VXLAN's FDB, so per-port destinations and per-network
// flooding to just the hosts that need it cannot be expressed with it.
func checkUnderlay(prefix string, u *datapath.Underlay) error {
	if u == nil {
		return nil
	}
	switch u.Kind {
	case "", datapath.TunnelVXLAN:
	case datapath.TunnelGeneve:
		return errors.New("linux backend: Geneve tunnels are not supported: a kernel geneve device cannot send each MAC to its own host as a VXLAN device's FDB does; use the OVS backend (--backend ovs) for Geneve, or VXLAN with the Linux backend")
	default:
		return fmt.Errorf("linux backend: unknown tunnel kind %q: want %s", u.Kind, datapath.TunnelVXLAN)
	}
	// Tunnels run over IPv4 only: other hosts' IPv6 addresses are refused
	// (datapath.SelectRemote), and the daemon takes no other.
	if ip := u.LocalIP; !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() {
		return fmt.Errorf("linux backend: underlay address %q is not a unicast IPv4 address", u.LocalIP)
	}
	if len(prefix) > maxClusterPrefix {
		return fmt.Errorf("linux backend: bridge prefix %q is longer than %d characters: no room left for the network hash in bridge and VXLAN device names", prefix, maxClusterPrefix)
	}
	return nil
}

// checkLocalAddr makes sure the underlay address is one of this host's: the
// kernel would take a VXLAN device with any local address, and the outer
// packets, sent from an address the host does not have, would never be
// answered.
func checkLocalAddr(ip netip.Addr) error {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(nil, family)
	if err != nil {
		return fmt.Errorf("linux backend: list the host's addresses: %w", err)
	}
	for _, a := range addrs {
		if have, ok := netip.AddrFromSlice(a.IP); ok && have.Unmap() == ip {
			return nil
		}
	}
	return fmt.Errorf("linux backend: underlay address %s is not an address of this host", ip)
}

// bridgeMAC is the MAC of a network's bridge, the gateway MAC its ports see.
//
// On a single host it is model.BridgeMAC, as it always was. In a cluster the
// gateway address is the same on every host but the MAC is each host's own,
// derived from the network and the host's underlay address:
//   - A packet routed on host A to a port on host B leaves A's bridge with A's
//     bridge MAC as source. With one MAC everywhere, B's bridge would see its
//     own address arrive from the VXLAN port ("received packet ... with own
//     address as source address"), warn, and learn nothing.
//   - A bridge's IPv6 link-local address comes from its MAC: one MAC on every
//     host would give every host's bridge the same link-local address, and
//     IPv6 duplicate address detection would see the others over the overlay.
//   - Nothing needs the MAC to be the same everywhere: a port only ever talks
//     to its own host's gateway (ARP for the gateway never crosses the
//     overlay, see OverlayRules), and ports do not move between hosts.
//
// The MAC is stable across restarts while the underlay address stays. A host
// that joins or leaves a cluster changes its gateways' MACs once; its ports
// re-learn them with their next ARP (a few seconds of stale entries at most).
func bridgeMAC(network string, u *datapath.Underlay) string {
	if u == nil {
		return model.BridgeMAC(network)
	}
	return model.BridgeMACOn(network, u.LocalIP)
}

// checkVNI refuses network IDs that do not fit a VXLAN header. VNI 0 is left
// out: some VTEPs treat it as "no VNI".
func checkVNI(n model.Network) error {
	if n.ID < 1 || n.ID > maxVNI {
		return fmt.Errorf("network %s: id %d cannot be a VXLAN VNI (1..%d)", n.Name, n.ID, maxVNI)
	}
	return nil
}

// ensureVXLAN makes the network's VXLAN device exist with the settings the
// cluster needs, enslaved to br and up. A device that is already right is
// kept as it is, with its FDB, so a restart does not disturb forwarding. One
// whose VNI, local address or port differ (the network was re-created under
// its name, the host's underlay address changed) is replaced: the kernel
// cannot change those in place.
func ensureVXLAN(u *datapath.Underlay, name string, br netlink.Link, n model.Network) error {
	if err := checkVNI(n); err != nil {
		return err
	}
	l, err := link.Lookup(name, VXLANAlias(n.Name))
	if err != nil {
		return err
	}
	if l != nil && !vxlanMatches(l, u, n) {
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("replace VXLAN device %s: %w", name, err)
		}
		l = nil
	}
	if l == nil {
		if l, err = createVXLAN(u, name, n); err != nil {
			return err
		}
	}
	if l.Attrs().MTU != n.MTU {
		if err := netlink.LinkSetMTU(l, n.MTU); err != nil {
			return fmt.Errorf("VXLAN device %s: set mtu: %w", name, err)
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("VXLAN device %s: add to bridge %s: %w", name, br.Attrs().Name, err)
		}
	}
	// It carries the other hosts' ports' frames as a port's host end does.
	if err := link.Seal(l); err != nil {
		return fmt.Errorf("VXLAN device %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("VXLAN device %s: set up: %w", name, err)
	}
	return nil
}

func createVXLAN(u *datapath.Underlay, name string, n model.Network) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = n.MTU
	// No VtepDevIndex: the outer packets follow the host's routes to the
	// other hosts, whichever interface those use. No Group: no multicast.
	vx := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: n.ID, SrcAddr: u.LocalIP.AsSlice(), Port: vxlanPort, Learning: false}
	if err := netlink.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("create VXLAN device %s (vni %d, local %s): %w", name, n.ID, u.LocalIP, err)
	}
	l, err := netlink.LinkByName(name)
	if err == nil {
		// Tagged at once, so a crash from here on leaves a device the next
		// run recognises as ours.
		err = netlink.LinkSetAlias(l, VXLANAlias(n.Name))
	}
	if err != nil {
		_ = netlink.LinkDel(vx)
		return nil, fmt.Errorf("set up VXLAN device %s: %w", name, err)
	}
	return l, nil
}

// vxlanMatches reports whether an existing device carries the network the
// way this host's underlay wants.
func vxlanMatches(l netlink.Link, u *datapath.Underlay, n model.Network) bool {
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return false
	}
	local, _ := netip.AddrFromSlice(vx.SrcAddr)
	noGroup := len(vx.Group) == 0 || vx.Group.IsUnspecified()
	return vx.VxlanId == n.ID && local.Unmap() == u.LocalIP.Unmap() && vx.Port == vxlanPort &&
		!vx.Learning && !vx.FlowBased && noGroup
}

// SetRemotePorts implements datapath.Overlay: the overlay is made to hold
// exactly ports, changing only what differs (see remote.go). Remote ports of
// a network whose devices do not exist yet land when EnsureNetwork makes
// them. On a single host there is no overlay: an empty set is all it takes.
func (b *Backend) SetRemotePorts(ctx context.Context, ports []model.RemotePort) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.setRemote(ctx, ports)
}

// setRemote records and applies the remote ports; b.mu is held. A port that
// cannot be written is left out and logged (once, see datapath.SkipLog), not an
// error: the others land. When the kernel was last given, successfully, the
// same ports or the same entries, nothing is read or written: the
// controller calls this after every change of the cluster's ports. (Local
// ports coming and going keep b.remote up to date themselves, see
// claimLocal.) Prune clears remoteApplied first, so that it reads the
// kernel and repairs what differs.
func (b *Backend) setRemote(ctx context.Context, ports []model.RemotePort) error {
	if b.underlay == nil {
		if len(ports) > 0 {
			return fmt.Errorf("%d remote ports for a single-host Linux backend: it was opened without an underlay", len(ports))
		}
		return nil
	}
	if b.remoteApplied && slices.Equal(ports, b.remotePorts) {
		return nil
	}
	b.remotePorts = slices.Clone(ports)
	want := b.desiredOverlay()
	if b.remoteApplied && equalOverlay(b.remote, want) {
		return nil
	}
	b.remote = want
	err := b.syncOverlay(ctx, "")
	b.remoteApplied = err == nil
	if err != nil {
		return fmt.Errorf("remote ports: %w", err)
	}
	return nil
}

// desiredOverlay is the overlay for the remote ports last given and the
// local ports there are now; it logs what it leaves out. b.mu is held.
func (b *Backend) desiredOverlay() map[string]*overlayEntries {
	want, skipped := desiredOverlay(b.underlay.LocalIP, b.local, b.remotePorts)
	b.skipped.Update(b.log, slices.Concat(skipped.Networks(), b.skipped.Networks()), skipped)
	return want
}

// claimLocal records a port of this host before it joins its bridge: a
// remote port with its MAC or address gives way (its entries would take
// the port's traffic to the other host). Only such a clash costs a sync of
// the network's overlay.
func (b *Backend) claimLocal(ctx context.Context, p model.Port) error {
	if b.underlay == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.local[p.Network] == nil {
		b.local[p.Network] = map[string]model.Port{}
	}
	b.local[p.Network][p.Name] = p
	e := b.remote[p.Network]
	mac, _ := net.ParseMAC(p.MAC)
	if e == nil || !e.static[mac.String()] && e.neigh[p.IP] == "" {
		return nil
	}
	return b.resyncOverlay(ctx, p.Network)
}

// releaseLocal forgets a detached port of this host: a remote port that gave
// way to it comes back.
func (b *Backend) releaseLocal(ctx context.Context, p model.Port) error {
	if b.underlay == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.local[p.Network][p.Name]; !ok {
		return nil
	}
	delete(b.local[p.Network], p.Name)
	if !b.skipped.Any(p.Network) || b.remote == nil {
		return nil
	}
	return b.resyncOverlay(ctx, p.Network)
}

// resyncOverlay recomputes the overlay after a change of network's local
// ports and applies network's part; b.mu is held.
func (b *Backend) resyncOverlay(ctx context.Context, network string) error {
	b.remote = b.desiredOverlay()
	if err := b.syncOverlay(ctx, network); err != nil {
		b.remoteApplied = false
		return fmt.Errorf("network %s: remote ports: %w", network, err)
	}
	return nil
}

// syncOverlay makes our devices hold b.remote: every network's, or only
// network only's; b.mu is held. Before the controller first said what it
// wants, the kernel's entries stand as a previous run left them.
func (b *Backend) syncOverlay(ctx context.Context, only string) error {
	if b.remote == nil {
		return nil
	}
	h, err := overlayHandle(ctx)
	if err != nil {
		return err
	}
	defer h.Close()
	devs, err := listOverlay(h, b.prefix)
	if err != nil {
		return err
	}
	networks := slices.Collect(maps.Keys(devs))
	for n := range b.remote {
		if _, ok := devs[n]; !ok {
			networks = append(networks, n)
		}
	}
	if only != "" {
		d, ok := devs[only]
		devs = map[string]overlayDevice{}
		if ok {
			devs[only] = d
		}
		networks = []string{only}
	}
	have, err := readOverlay(h, devs)
	if err != nil {
		return err
	}
	var errs []error
	for _, network := range slices.Sorted(slices.Values(networks)) {
		d, ok := devs[network]
		if !ok {
			// A network not ensured yet gets its entries from EnsureNetwork;
			// one we hold lost its device to someone else.
			_, known := b.networks[network]
			if e := b.remote[network]; known && e != nil && len(e.fdb) > 0 {
				errs = append(errs, fmt.Errorf("network %s: VXLAN device %s is missing", network, b.vxlanName(network)))
			}
			continue
		}
		if err := applyOverlay(ctx, h, d, diffOverlay(have[network], b.remote[network])); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", network, err))
		}
	}
	return errors.Join(errs...)
}
