package link

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// ensureTap makes p's tap exist, ours, and configured. A tap of the name
// that is not ours is refused (ErrConflict) unless p adopts it (adoptTap).
// A tap that is ours is kept as it is: a VM holding it keeps its file
// descriptors across a restart of the daemon.
func ensureTap(n model.Network, p model.Port) (netlink.Link, error) {
	tap, err := Lookup(p.HostIfname, datapath.HostAlias(p))
	switch {
	case errors.Is(err, datapath.ErrConflict) && p.Adopt:
		tap, err = adoptTap(p)
	case err == nil && tap == nil && p.Adopt:
		// The runtime makes it: a VM restarted by libvirt gets a new tap,
		// which the repair that its link event starts adopts.
		err = fmt.Errorf("%w: tap %s to adopt does not exist: the VM runtime makes it (%w)", datapath.ErrConflict, p.HostIfname, datapath.ErrLinkGone)
	case err == nil && tap == nil:
		tap, err = createTap(p)
	}
	if err != nil {
		return nil, err
	}
	if err := configureHostEnd(tap, p, n.MTU); err != nil {
		return nil, err
	}
	return tap, nil
}

// createTap makes p's persistent tap, with the owner and group p names. It
// talks to /dev/net/tun itself rather than through netlink.Tuntap, which
// sets both on every tap: the kernel lets a user open a tap only if it is
// the owner and in the group, of those set, so a group of 0 no one asked
// for would lock the owner out. The queue opened to create the tap is
// closed once the tap is persistent: one held open would tie the tap's
// traffic to the daemon, which must be free to restart while a VM uses
// the tap; and a failure before that takes the half-made tap with it.
// A failure after it deletes the tap by name: a persistent tap outlives
// its queue, and one with no alias is no one's to prune.
func createTap(p model.Port) (netlink.Link, error) {
	if err := makeTap(p); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%w: create tap %s: an interface of that name exists", datapath.ErrConflict, p.HostIfname)
		}
		return nil, fmt.Errorf("create tap %s: %w", p.HostIfname, err)
	}
	tap, err := netlink.LinkByName(p.HostIfname)
	if err == nil {
		err = netlink.LinkSetAlias(tap, datapath.PortAlias(p.Name))
	}
	if err != nil {
		// By name, so that a failed look-up has a link to delete too.
		_ = netlink.LinkDel(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: p.HostIfname}})
		return nil, fmt.Errorf("set up tap %s: %w", p.HostIfname, err)
	}
	return tap, nil
}

// makeTap is createTap's part on /dev/net/tun.
func makeTap(p model.Port) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/net/tun: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(p.HostIfname)
	if err != nil {
		return err
	}
	// TUN_EXCL makes creation fail, rather than attach, when a tap of that name appeared meanwhile.
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
	if p.MultiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("TUNSETIFF: %w", err)
	}
	for _, id := range []struct {
		field, value string
		req          uint
	}{{"owner", p.Owner, unix.TUNSETOWNER}, {"group", p.Group, unix.TUNSETGROUP}} {
		if id.value == "" {
			continue
		}
		n, err := strconv.ParseUint(id.value, 10, 32)
		if err != nil {
			return fmt.Errorf("%s %q is not numeric: %w", id.field, id.value, err)
		}
		if err := unix.IoctlSetInt(fd, id.req, int(n)); err != nil {
			return fmt.Errorf("set %s %d: %w", id.field, n, err)
		}
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("TUNSETPERSIST: %w", err)
	}
	return nil
}

// adoptTap takes over the tap called p.HostIfname that a VM runtime made
// (libvirt's managed taps, qemu's bridge helper): it gets p's alias
// (datapath.AdoptedAlias: never deleted, whatever happens), and ensureTap
// seals it, sets its MTU and brings it up. Only a tap with no alias and no
// master is taken: an alias is a tool's mark, ours for another port or
// another tool's, and a master is a bridge or a switch's datapath (OVS's)
// that holds it already. All is checked before anything is changed, so
// that a refusal leaves the device as it was. The device is taken as the
// runtime made it; a
// port that asks for an owner, a group or a queueing the device does not
// have is refused rather than the device changed under a VM that may hold
// it already.
func adoptTap(p model.Port) (netlink.Link, error) {
	l, err := netlink.LinkByName(p.HostIfname)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", p.HostIfname, err)
	}
	conflict := func(format string, args ...any) error {
		return fmt.Errorf("%w: adopt %s: %s", datapath.ErrConflict, p.HostIfname, fmt.Sprintf(format, args...))
	}
	t, ok := l.(*netlink.Tuntap)
	switch {
	case !ok || t.Mode != netlink.TUNTAP_MODE_TAP:
		return nil, conflict("it is a %s device, not a tap", l.Type())
	case l.Attrs().Alias != "":
		return nil, conflict("it carries the alias %q: another port's or another tool's", l.Attrs().Alias)
	case l.Attrs().MasterIndex != 0:
		return nil, conflict("it is in a bridge or a switch already (master index %d)", l.Attrs().MasterIndex)
	}
	if err := tapMatches(t, p); err != nil {
		return nil, conflict("%v", err)
	}
	if err := netlink.LinkSetAlias(l, datapath.AdoptedAlias(p.Name)); err != nil {
		return nil, fmt.Errorf("adopt %s: set alias: %w", p.HostIfname, err)
	}
	l.Attrs().Alias = datapath.AdoptedAlias(p.Name)
	return l, nil
}

// tapMatches tells how the tap t differs from what p asks: its queueing,
// and the owner and group p names (those p leaves out are the device's).
func tapMatches(t *netlink.Tuntap, p model.Port) error {
	if mq := t.Flags&netlink.TUNTAP_MULTI_QUEUE != 0; mq != p.MultiQueue {
		return fmt.Errorf("the tap has multi_queue %v, the port asks for %v", mq, p.MultiQueue)
	}
	for _, id := range []struct {
		field, want string
		have        uint32
	}{{"owner", p.Owner, t.Owner}, {"group", p.Group, t.Group}} {
		if id.want != "" && id.want != strconv.FormatUint(uint64(id.have), 10) {
			return fmt.Errorf("the tap has %s %d, the port asks for %s", id.field, id.have, id.want)
		}
	}
	return nil
}

// DeletePort removes what attaching p added to its host link: the link
// itself (Delete's rules), or from a tap p adopted only p's alias and its
// place in a Linux bridge, leaving the device, its owner and its queues
// to the runtime that made it. Such a tap that is gone, or is not ours,
// is success, as with Delete.
func DeletePort(p model.Port) error {
	alias := datapath.HostAlias(p)
	if !p.Adopt {
		return Delete(p.HostIfname, alias)
	}
	l, err := Lookup(p.HostIfname, alias)
	if errors.Is(err, datapath.ErrConflict) {
		return nil
	}
	if err != nil || l == nil {
		return err
	}
	return handBack(l)
}

// handBack undoes an adoption: the tap l leaves our bridge and loses our
// alias; the device stays.
func handBack(l netlink.Link) error {
	if err := leaveBridge(l); err != nil {
		return fmt.Errorf("hand back %s: %w", l.Attrs().Name, err)
	}
	if err := netlink.LinkSetAlias(l, ""); err != nil && !isNotFound(err) {
		return fmt.Errorf("hand back %s: clear alias: %w", l.Attrs().Name, err)
	}
	return nil
}

// leaveBridge takes l out of the Linux bridge it is in, if any. A link
// OVS holds has the switch's datapath device as master, which ovs-vswitchd
// lets go of once its port is deleted: that is left to it.
func leaveBridge(l netlink.Link) error {
	if l.Attrs().MasterIndex == 0 {
		return nil
	}
	master, err := netlink.LinkByIndex(l.Attrs().MasterIndex)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up its master: %w", err)
	}
	if _, ok := master.(*netlink.Bridge); !ok {
		return nil
	}
	if err := netlink.LinkSetNoMaster(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("leave bridge %s: %w", master.Attrs().Name, err)
	}
	return nil
}
