package ovs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/model"
	"github.com/ovs-vnet/ovs-vnet/ovsdb"
)

// Changed implements datapath.PortChecker: a link of ours appeared,
// changed or went (link.Watcher), or an interface's ofport, error, link
// state or ifindex changed in OVSDB.
func (b *Backend) Changed() <-chan struct{} { return b.links.Changed() }

// CheckPort implements datapath.PortChecker. Beyond the links
// (link.CheckPort), the port's OVS interface must have the ofport the
// port's flows use, no error, and be bound to the host link as it is now
// (see bound).
func (b *Backend) CheckPort(ctx context.Context, _ model.Network, p model.Port, depth datapath.CheckDepth) error {
	if name := b.spares.claimedBy(p); name != "" {
		p.HostIfname = name
	}
	host, err := b.links.Link(p.HostIfname, depth)
	if err == nil {
		err = link.CheckPort(ctx, host, p, depth)
	}
	if err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	iface, found, err := b.db.Interface(ctx, p.HostIfname)
	if err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	if err := bound(host, iface, found, b.flowOfport(p)); err != nil {
		return fmt.Errorf("port %s: %s: %w", p.Name, p.HostIfname, err)
	}
	return nil
}

// flowOfport is the ofport p's flows use: the one the state holds, else the
// one p was given.
func (b *Backend) flowOfport(p model.Port) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if got, ok := b.state.ports[p.Network][p.Name]; ok {
		return got.Ofport
	}
	return p.Ofport
}

// bound tells why the OVS interface (found or not) does not carry host,
// or nil. want is the ofport the flows use; 0 accepts any.
//
// ovs-vswitchd 3.1 on the userspace datapath stays bound to a device
// deleted under it: when a device of the same name comes back, OVSDB shows
// the new device's ifindex, link_state up, no error and the old ofport,
// while the datapath still reads and writes the dead one ("error sending
// Ethernet packet on ...: Network is down") and nothing is forwarded. So
// OVSDB cannot tell. What does is the device's promiscuity count
// (IFLA_PROMISCUITY, `ip -d link`'s "promiscuity N"): ovs-vswitchd raises
// it when it adds a device to the datapath (the userspace datapath by
// setting IFF_PROMISC, which counts; the kernel datapath's vport raises
// the count alone, so the flag would not do), a new device starts at 0,
// and it is a property of the device, not a memory of ours, so it holds
// across daemon restarts. A device whose promiscuous mode someone turned
// off by hand is taken for unbound too: its repair, a re-bind, costs a
// moment and turns it on again.
func bound(host netlink.Link, iface ovsdb.Interface, found bool, want int) error {
	switch {
	case !found:
		return fmt.Errorf("not on the bridge: %w", datapath.ErrNotBound)
	case iface.Error != "":
		return fmt.Errorf("interface error %q: %w", iface.Error, datapath.ErrNotBound)
	case iface.Ofport <= 0:
		return fmt.Errorf("no ofport (%d): %w", iface.Ofport, datapath.ErrNotBound)
	case want > 0 && iface.Ofport != want:
		return fmt.Errorf("ofport %d, the flows use %d: %w", iface.Ofport, want, datapath.ErrNotBound)
	case host.Attrs().Promisc == 0:
		return fmt.Errorf("ovs-vswitchd is bound to an earlier device of that name: %w", datapath.ErrNotBound)
	}
	return nil
}

// rebindSpec is the spec that puts p's host link on the bridge. An OVS
// port of that name that is not bound to the link as it is (its device
// deleted, or made again: see bound) is deleted first, and ovs-vswitchd
// given time to let go of the old device; rebound tells, and the spec
// then asks for the old ofport, so that the flows, which name it, stay
// right if OVS grants it.
//
// AttachPort calls it before it makes the link again: ovs-vswitchd, as it
// deletes a port, sets the device's flags back from what it last saw of
// them, which for a device made again under the same name may be a down
// link; when the port goes first, the new link is made, and brought up,
// after that.
func (b *Backend) rebindSpec(ctx context.Context, n model.Network, p model.Port) (spec ovsdb.PortSpec, rebound bool, err error) {
	spec = b.portSpec(n, p)
	iface, found, err := b.db.Interface(ctx, p.HostIfname)
	// An ofport of 0 is an add ovs-vswitchd has yet to make: nothing to
	// undo.
	if err != nil || !found || iface.Ofport == 0 {
		return spec, false, err
	}
	host, err := netlink.LinkByName(p.HostIfname)
	switch {
	case err != nil && !errors.As(err, new(netlink.LinkNotFoundError)):
		return spec, false, fmt.Errorf("look up %s: %w", p.HostIfname, err)
	case err == nil && !strings.HasPrefix(host.Attrs().Alias, datapath.OwnerAlias):
		return spec, false, nil // someone else's link: EnsurePort refuses it
	case err == nil && bound(host, iface, true, 0) == nil:
		return spec, false, nil
	}
	switch err := b.db.DeletePort(ctx, b.bridge, p.HostIfname); {
	case errors.Is(err, ovsdb.ErrNotOwned):
		return spec, false, nil // someone else's OVS port: AddPort refuses it
	case err != nil:
		return spec, false, fmt.Errorf("re-bind: %w", err)
	}
	if err := b.db.WaitApplied(ctx); err != nil {
		return spec, false, fmt.Errorf("re-bind: %w", err)
	}
	b.log.Info("port's OVS interface taken off the bridge, to be bound to its link again", "port", p.Name, "interface", p.HostIfname, "ofport", iface.Ofport)
	spec.OfportRequest = max(iface.Ofport, 0)
	return spec, true, nil
}
