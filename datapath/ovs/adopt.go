package ovs

import (
	"context"
	"fmt"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// netdevDatapath is the device of OVS's userspace (netdev) datapath.
const netdevDatapath = "ovs-netdev"

// adoptable refuses, before anything is changed, a tap p would adopt that
// the switch holds: on the netdev datapath the bridge's own device and the
// datapath's (netdevDatapath) are unaliased taps, which link's checks
// (a tap, no alias, no master) would pass; and any interface OVSDB lists
// that is not ovs-vnet's is another tool's.
func (b *Backend) adoptable(ctx context.Context, p model.Port) error {
	if !p.Adopt {
		return nil
	}
	if p.HostIfname == b.bridge || p.HostIfname == netdevDatapath {
		return fmt.Errorf("%w: adopt %s: it is the switch's own device", datapath.ErrConflict, p.HostIfname)
	}
	iface, found, err := b.db.Interface(ctx, p.HostIfname)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", p.HostIfname, err)
	}
	if found && !iface.Owned {
		return fmt.Errorf("%w: adopt %s: it is an interface of OVS that is not ovs-vnet's", datapath.ErrConflict, p.HostIfname)
	}
	return nil
}
