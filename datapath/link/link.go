// Package link creates, adopts and removes the host-side links of ports — veth
// pairs reaching into network namespaces and persistent tap devices — with
// netlink. Namespaces are entered only through netlink sockets bound to them, so
// no OS thread ever switches namespace and nothing else in the process can run
// in the wrong one.
package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/datapath/nsfile"
	"github.com/ovs-vnet/ovs-vnet/internal/fault"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// Options adapt a port's links to the datapath that forwards for them.
type Options struct {
	// TxChecksumOff turns TX checksum offload off on the namespace end of a
	// veth; see disableTxChecksum.
	TxChecksumOff bool
}

// EnsurePort makes the host link of p exist and be configured — for a veth port
// with its namespace end named, addressed, up and routed via the gateway (see
// setDefaultRoute), or only named and up when p.NoConfigure — and returns the host link, up but not yet in any bridge.
// A link that is already right is kept as it is, so adopting a running port
// after a restart does not disturb its traffic.
func EnsurePort(ctx context.Context, n model.Network, p model.Port, opts Options) (netlink.Link, error) {
	switch p.Type {
	case v1.PortTap:
		return ensureTap(n, p)
	default:
		return ensureVeth(ctx, n, p, opts)
	}
}

func ensureVeth(ctx context.Context, n model.Network, p model.Port, opts Options) (netlink.Link, error) {
	ns, nsh, closeNetns, err := openNetns(ctx, p)
	if err != nil {
		return nil, err
	}
	defer closeNetns()

	host, err := Lookup(p.HostIfname, datapath.PortAlias(p.Name))
	if errors.Is(err, datapath.ErrConflict) {
		host, err = adoptUntagged(p, nsh, err)
	}
	if err != nil {
		return nil, err
	}
	peer, err := nsh.LinkByName(p.Ifname)
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("look up %s in netns %s: %w", p.Ifname, p.Netns, err)
	}
	if host != nil && (peer == nil || !paired(host, peer) || !strings.EqualFold(peer.Attrs().HardwareAddr.String(), p.MAC)) {
		// Half a pair: the namespace end was renamed, moved, replaced or
		// given another MAC (CheckPort's rules). Start over.
		if err := netlink.LinkDel(host); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("remove stale %s: %w", p.HostIfname, err)
		}
		if peer != nil && paired(host, peer) {
			peer = nil // gone with its pair
		}
		host = nil
	}
	if host == nil {
		if peer != nil {
			return nil, fmt.Errorf("%w: interface %s already exists in netns %s", datapath.ErrConflict, p.Ifname, p.Netns)
		}
		if host, peer, err = createVeth(n, p, ns, nsh); err != nil {
			return nil, err
		}
	}
	if err := configureNamespaceEnd(nsh, n, p, peer); err != nil {
		return nil, fmt.Errorf("configure %s in netns %s: %w", p.Ifname, p.Netns, err)
	}
	fault.Point("attach-after-netns-config")
	if opts.TxChecksumOff {
		if err := disableTxChecksum(ns, p.Ifname); err != nil {
			return nil, fmt.Errorf("netns %s: %w", p.Netns, err)
		}
	}
	if err := configureHostEnd(host, p, n.MTU); err != nil {
		return nil, err
	}
	fault.Point("attach-after-host-link")
	return host, nil
}

// openNetns opens p's namespace (nsfile.Open's rules) and a netlink handle
// bound to it; closeNetns closes both.
func openNetns(ctx context.Context, p model.Port) (ns netns.NsHandle, nsh *netlink.Handle, closeNetns func(), err error) {
	if ns, err = nsfile.Open(ctx, p.NetnsPath()); err != nil {
		return ns, nil, nil, err
	}
	if nsh, err = netlink.NewHandleAt(ns); err != nil {
		ns.Close()
		return ns, nil, nil, fmt.Errorf("netlink in netns %s: %w", p.Netns, err)
	}
	return ns, nsh, func() {
		nsh.Close()
		ns.Close()
	}, nil
}

func createVeth(n model.Network, p model.Port, ns netns.NsHandle, nsh *netlink.Handle) (host, peer netlink.Link, err error) {
	mac, err := net.ParseMAC(p.MAC)
	if err != nil {
		return nil, nil, fmt.Errorf("port %s mac %q: %w", p.Name, p.MAC, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = p.HostIfname
	attrs.MTU = n.MTU
	attrs.Group = Group // from its first moment: see Seal
	// The peer is born inside the namespace under its final name: no temporary
	// name on the host that could collide or be left behind.
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: p.Ifname, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(ns)}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, nil, fmt.Errorf("%w: create veth %s/%s: an interface of that name exists", datapath.ErrConflict, p.HostIfname, p.Ifname)
		}
		return nil, nil, fmt.Errorf("create veth %s in netns %s: %w", p.HostIfname, p.Netns, err)
	}
	fault.Point("attach-after-link-created")
	if host, err = netlink.LinkByName(p.HostIfname); err == nil {
		// Tag it at once: from here on a crash leaves a link the next run can recognise as ours.
		err = netlink.LinkSetAlias(host, datapath.PortAlias(p.Name))
	}
	if err == nil {
		peer, err = nsh.LinkByName(p.Ifname)
	}
	if err != nil {
		_ = netlink.LinkDel(veth)
		return nil, nil, fmt.Errorf("set up veth %s: %w", p.HostIfname, err)
	}
	fault.Point("attach-after-link-tagged")
	return host, peer, nil
}

// adoptUntagged takes back a veth that createVeth made but a crash kept from
// tagging (the kernel ignores an alias given at creation, so the tag is a
// second step). It is ours beyond doubt when it has no alias at all, carries
// the host name derived from the port's name, and is paired with the port's
// interface in the port's namespace, which has the port's MAC. Anything else
// stays someone else's: conflict is returned as it was.
func adoptUntagged(p model.Port, nsh *netlink.Handle, conflict error) (netlink.Link, error) {
	host, err := netlink.LinkByName(p.HostIfname)
	if err != nil || host.Attrs().Alias != "" || p.HostIfname != model.HostIfname(p.Name) {
		return nil, conflict
	}
	peer, err := nsh.LinkByName(p.Ifname)
	if err != nil || !paired(host, peer) || !strings.EqualFold(peer.Attrs().HardwareAddr.String(), p.MAC) {
		return nil, conflict
	}
	if err := netlink.LinkSetAlias(host, datapath.PortAlias(p.Name)); err != nil {
		return nil, fmt.Errorf("tag %s: %w", p.HostIfname, err)
	}
	host.Attrs().Alias = datapath.PortAlias(p.Name)
	return host, nil
}

// configureNamespaceEnd brings the namespace end up with the network's MTU
// and, unless the port is unconfigured (configure:false, docs/DESIGN.md
// §8.4), gives it the port's address and route. An unconfigured port's
// addresses and routes are its DHCP client's: nothing is removed, so
// turning configure off in place cuts no connection (the client's lease is
// the same address), and turning it on adds what a configured port has.
func configureNamespaceEnd(nsh *netlink.Handle, n model.Network, p model.Port, peer netlink.Link) error {
	if lo, err := nsh.LinkByName("lo"); err == nil {
		if err := nsh.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
	}
	if peer.Attrs().MTU != n.MTU {
		if err := nsh.LinkSetMTU(peer, n.MTU); err != nil {
			return fmt.Errorf("set mtu: %w", err)
		}
	}
	if p.NoConfigure {
		if err := nsh.LinkSetUp(peer); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
		return nil
	}
	if err := dropStaleAddrs(nsh, peer, n.Subnet, p.IP); err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.IP.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
	if err := nsh.AddrReplace(peer, addr); err != nil {
		return fmt.Errorf("add address %s: %w", addr.IPNet, err)
	}
	if err := nsh.LinkSetUp(peer); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return setDefaultRoute(nsh, n, p, peer)
}

// dropStaleAddrs removes from the port's interface the addresses of its
// network other than keep. They are an earlier attach's of this port, whose
// address was given up while its link stayed (a rollback whose detach
// timed out on a stalled switch, see docs/OPERATIONS.md); the kernel would
// send from the first one, and the port's anti-spoofing drops that. They go
// before the port's address is added: removing a primary address removes
// its secondaries with it.
func dropStaleAddrs(nsh *netlink.Handle, l netlink.Link, subnet netip.Prefix, keep netip.Addr) error {
	addrs, err := nsh.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if ip = ip.Unmap(); !ok || ip == keep || !subnet.Contains(ip) {
			continue
		}
		if err := nsh.AddrDel(l, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove stale address %s: %w", a.IPNet, err)
		}
	}
	return nil
}

// configureHostEnd seals the host end (see Seal) before it comes up, on every
// attach: a link adopted from an older version is sealed too.
func configureHostEnd(l netlink.Link, p model.Port, mtu int) error {
	if err := Seal(l); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	if l.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("set mtu of %s: %w", p.HostIfname, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", p.HostIfname, err)
	}
	return nil
}

// Lookup returns the host link called name if it carries alias, nil if there
// is no such link, and ErrConflict if a link of that name belongs to someone else.
func Lookup(name, alias string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	if l.Attrs().Alias != alias {
		return nil, fmt.Errorf("%w: interface %s exists and is not ours (alias %q)", datapath.ErrConflict, name, l.Attrs().Alias)
	}
	return l, nil
}

// paired reports whether two veth ends are each other's peer. Each end's
// IFLA_LINK names the other's index, in the other's namespace.
func paired(host, peer netlink.Link) bool {
	_, hostIsVeth := host.(*netlink.Veth)
	_, peerIsVeth := peer.(*netlink.Veth)
	return hostIsVeth && peerIsVeth &&
		host.Attrs().ParentIndex == peer.Attrs().Index && peer.Attrs().ParentIndex == host.Attrs().Index
}

// Delete removes the host link called name if it carries alias; a missing link
// is success, and so is a link that is not ours, which is left alone: nothing
// of ours is there to delete (the undo of an attach refused because another's
// link has the name must not fail on that link, let alone delete it).
// Deleting a veth end takes its namespace end with it.
func Delete(name, alias string) error {
	l, err := Lookup(name, alias)
	if errors.Is(err, datapath.ErrConflict) {
		return nil
	}
	if err != nil || l == nil {
		return err
	}
	if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// PortLinks maps each port's host link name to the alias that marks it, the
// form Prune wants.
func PortLinks(ports []model.Port) map[string]string {
	want := make(map[string]string, len(ports))
	for _, p := range ports {
		want[p.HostIfname] = datapath.HostAlias(p)
	}
	return want
}

// Prune deletes every host link marked as ovs-vnet's unless want maps its name
// to its alias — but a tap a port adopted it hands back (handBack): the
// device is a VM runtime's. Links of other tools are never looked at twice.
func Prune(want map[string]string) error {
	all, err := List(nil)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range all {
		a := l.Attrs()
		if !strings.HasPrefix(a.Alias, datapath.OwnerAlias) || want[a.Name] == a.Alias {
			continue
		}
		if _, adopted, _ := datapath.AliasPort(a.Alias); adopted {
			if err := handBack(l); err != nil {
				return fmt.Errorf("prune: %w", err)
			}
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
			return fmt.Errorf("prune %s (%s): %w", a.Name, a.Alias, err)
		}
	}
	return nil
}

// dumpRetries is how often List repeats a dump that links changed under.
const dumpRetries = 5

// List returns the links of h's namespace (ours when h is nil). A dump that
// links changed under (NLM_F_DUMP_INTR, common while ports come and go) is
// repeated, since its result may lack links.
func List(h *netlink.Handle) ([]netlink.Link, error) {
	list := netlink.LinkList
	if h != nil {
		list = h.LinkList
	}
	for range dumpRetries - 1 {
		links, err := list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, err
		}
	}
	return list()
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// Holding names the interface that holds the IPv4 address ip, with its MTU.
func Holding(ip netip.Addr) (name string, mtu int, err error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if have, ok := netip.AddrFromSlice(a.IP); ok && have.Unmap() == ip {
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return "", 0, fmt.Errorf("interface of %s: %w", ip, err)
			}
			return l.Attrs().Name, l.Attrs().MTU, nil
		}
	}
	return "", 0, fmt.Errorf("no interface has %s", ip)
}
