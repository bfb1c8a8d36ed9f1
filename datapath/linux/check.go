package linux

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/link"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Changed implements datapath.PortChecker: a link of ours (a port's host
// link, a network's bridge) appeared, changed or went.
func (b *Backend) Changed() <-chan struct{} { return b.links.Changed() }

// CheckPort implements datapath.PortChecker. Beyond the links
// (link.CheckPort), the host link must be up and in the network's bridge;
// AttachPort puts it back there.
func (b *Backend) CheckPort(ctx context.Context, n model.Network, p model.Port, depth datapath.CheckDepth) error {
	host, err := b.links.Link(p.HostIfname, depth)
	if err == nil {
		err = link.CheckPort(ctx, host, p, depth)
	}
	if err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	name := b.bridgeName(n.Name)
	br, err := b.links.Link(name, depth)
	if err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	switch {
	case br == nil || br.Attrs().Alias != datapath.BridgeAlias(n.Name):
		return fmt.Errorf("port %s: bridge %s of network %s is missing: %w", p.Name, name, n.Name, datapath.ErrNotBound)
	case host.Attrs().MasterIndex != br.Attrs().Index:
		return fmt.Errorf("port %s: %s is not in bridge %s: %w", p.Name, p.HostIfname, name, datapath.ErrNotBound)
	case host.Attrs().RawFlags&unix.IFF_UP == 0:
		return fmt.Errorf("port %s: %s is down: %w", p.Name, p.HostIfname, datapath.ErrNotBound)
	}
	return nil
}
