package link

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// CheckPort tells whether p's links are as an attach left them — the part of
// datapath.PortChecker both backends share. host is the link named
// p.HostIfname on the host, nil if there is none. A veth's namespace must
// exist (else datapath.ErrNoNetns: the namespace is what its port waits
// for) and hold p.Ifname with p's MAC, paired with host; host must exist
// and carry p's alias (else datapath.ErrLinkGone). With datapath.CheckHost
// the namespace is looked into only when the host link is missing — a
// namespace that went takes its veth with it — so that a port waiting for
// its namespace says so. It changes nothing.
func CheckPort(ctx context.Context, host netlink.Link, p model.Port, depth datapath.CheckDepth) error {
	var peer netlink.Link
	deep := p.Type != v1.PortTap && (depth == datapath.CheckAll || host == nil)
	if deep {
		var err error
		if peer, err = namespaceEnd(ctx, p); err != nil {
			return err
		}
	}
	switch {
	case host == nil:
		return fmt.Errorf("host link %s is missing: %w", p.HostIfname, datapath.ErrLinkGone)
	case host.Attrs().Alias != datapath.HostAlias(p):
		return fmt.Errorf("host link %s is not the port's (alias %q): %w", p.HostIfname, host.Attrs().Alias, datapath.ErrLinkGone)
	case !deep:
		return nil
	case peer == nil:
		return fmt.Errorf("%s is missing in netns %s: %w", p.Ifname, p.Netns, datapath.ErrLinkGone)
	case !strings.EqualFold(peer.Attrs().HardwareAddr.String(), p.MAC):
		return fmt.Errorf("%s in netns %s has MAC %s, not the port's: %w", p.Ifname, p.Netns, peer.Attrs().HardwareAddr, datapath.ErrLinkGone)
	case !paired(host, peer):
		return fmt.Errorf("%s in netns %s is not the peer of %s: %w", p.Ifname, p.Netns, p.HostIfname, datapath.ErrLinkGone)
	}
	return nil
}

// namespaceEnd returns p.Ifname in p's namespace, nil if there is none. A
// path that is gone, or is no network namespace (a namespace deleted and
// its name's file left or reused), is datapath.ErrNoNetns.
func namespaceEnd(ctx context.Context, p model.Port) (netlink.Link, error) {
	_, nsh, closeNetns, err := openNetns(ctx, p)
	if errors.Is(err, v1.ErrInvalid) && !errors.Is(err, datapath.ErrNoNetns) {
		err = fmt.Errorf("%w: %w", datapath.ErrNoNetns, err)
	}
	if err != nil {
		return nil, err
	}
	defer closeNetns()
	peer, err := nsh.LinkByName(p.Ifname)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s in netns %s: %w", p.Ifname, p.Netns, err)
	}
	return peer, nil
}
