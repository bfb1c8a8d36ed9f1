package link

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/fault"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// A spare is a veth pair made before any port asks for it, so that a switch
// can take its host end in ahead of time: the host end carries SpareAlias
// until a port claims it, the free end waits, down, on the host.
const (
	SpareAlias = datapath.OwnerAlias + "spare"
	sparePfx   = "vnp" // host end; the free end has sparePeerPfx and the same suffix
	sparePeer  = "vnq"
)

// IsSpare reports whether name is a spare's host end (claimed or not).
func IsSpare(name string) bool {
	return strings.HasPrefix(name, sparePfx) && len(name) == len(sparePfx)+10
}

func sparePeerName(host string) string { return sparePeer + strings.TrimPrefix(host, sparePfx) }

// NewSpare creates a spare veth pair with a random name and returns its host
// end's name. The host end is sealed (see Seal) and up, so the switch can
// open it at once; its free end stays down on the host until a claim.
func NewSpare(mtu int) (string, error) {
	var suffix [5]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("spare name: %w", err)
	}
	host := sparePfx + hex.EncodeToString(suffix[:])
	attrs := netlink.NewLinkAttrs()
	attrs.Name = host
	attrs.MTU = mtu
	attrs.Group = Group
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: sparePeerName(host)}
	if err := netlink.LinkAdd(veth); err != nil {
		return "", fmt.Errorf("create spare veth %s: %w", host, err)
	}
	l, err := netlink.LinkByName(host)
	if err == nil {
		err = netlink.LinkSetAlias(l, SpareAlias)
	}
	if err == nil {
		err = Seal(l) // before it is up: the switch opens it at once
	}
	if err == nil {
		err = netlink.LinkSetUp(l)
	}
	if err != nil {
		_ = netlink.LinkDel(veth)
		return "", fmt.Errorf("set up spare veth %s: %w", host, err)
	}
	return host, nil
}

// Spares lists the host ends of spare pairs: free ones (alias SpareAlias,
// free end still on the host) and claimed ones, by the port whose alias
// they carry.
func Spares() (free []string, claimed map[string]string, err error) {
	all, err := List(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	claimed = map[string]string{}
	byName := make(map[string]netlink.Link, len(all))
	for _, l := range all {
		byName[l.Attrs().Name] = l
	}
	for _, l := range all {
		a := l.Attrs()
		switch {
		case !IsSpare(a.Name):
		case a.Alias == SpareAlias:
			if peer, ok := byName[sparePeerName(a.Name)]; ok && paired(l, peer) {
				free = append(free, a.Name)
			}
		case strings.HasPrefix(a.Alias, datapath.PortAlias("")):
			claimed[strings.TrimPrefix(a.Alias, datapath.PortAlias(""))] = a.Name
		}
	}
	return free, claimed, nil
}

// ClaimSpare makes the spare whose host end is p.HostIfname port p's: the
// free end moves into the port's namespace, the host end is tagged as the
// port's, then the free end takes the port's name and MAC and is configured
// as EnsurePort configures a new veth's. Each step checks what is already
// done, so a claim cut short by a crash completes when it is repeated. The
// move comes before the tag: the move takes the kernel about 15 ms, in
// which the caller's OpenFlow bundle reaches ovs-vswitchd ahead of the
// tag's link event (every link event makes it reconfigure the bridge).
// A spare moved but not tagged is not claimed: a restart deletes it.
func ClaimSpare(ctx context.Context, n model.Network, p model.Port, opts Options) error {
	host, err := netlink.LinkByName(p.HostIfname)
	if err != nil {
		return fmt.Errorf("spare %s: %w", p.HostIfname, err)
	}
	alias := datapath.PortAlias(p.Name)
	if a := host.Attrs().Alias; a != alias && a != SpareAlias {
		return fmt.Errorf("%w: spare %s is %q's", datapath.ErrConflict, p.HostIfname, a)
	}
	// Before the free end can carry a frame: a spare an older version made
	// is not sealed yet.
	if err := Seal(host); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	ns, nsh, closeNetns, err := openNetns(ctx, p)
	if err != nil {
		return err
	}
	defer closeNetns()
	peer, err := moveSparePeer(host, p, ns, nsh)
	if err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	if host.Attrs().Alias != alias {
		if err := netlink.LinkSetAlias(host, alias); err != nil {
			return fmt.Errorf("claim spare %s: %w", p.HostIfname, err)
		}
		fault.Point("attach-after-spare-claimed")
	}
	if peer, err = nameSparePeer(nsh, p, peer); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	if err := configureNamespaceEnd(nsh, n, p, peer); err != nil {
		return fmt.Errorf("configure %s in netns %s: %w", p.Ifname, p.Netns, err)
	}
	fault.Point("attach-after-netns-config")
	if opts.TxChecksumOff {
		if err := disableTxChecksum(ns, p.Ifname); err != nil {
			return fmt.Errorf("netns %s: %w", p.Netns, err)
		}
	}
	if err := configureHostEnd(host, p, n.MTU); err != nil {
		return err
	}
	fault.Point("attach-after-host-link")
	return nil
}

// moveSparePeer brings the free end of host's pair into the namespace, from
// wherever an earlier attempt left it, and returns it there.
func moveSparePeer(host netlink.Link, p model.Port, ns netns.NsHandle, nsh *netlink.Handle) (netlink.Link, error) {
	if peer, err := nsh.LinkByName(p.Ifname); err == nil {
		if paired(host, peer) {
			return peer, nil
		}
		return nil, fmt.Errorf("%w: interface %s already exists in netns %s", datapath.ErrConflict, p.Ifname, p.Netns)
	}
	peerName := sparePeerName(p.HostIfname)
	peer, err := nsh.LinkByName(peerName)
	if err != nil {
		if peer, err = netlink.LinkByName(peerName); err != nil || !paired(host, peer) {
			return nil, fmt.Errorf("free end %s of spare %s is gone", peerName, p.HostIfname)
		}
		if err := netlink.LinkSetNsFd(peer, int(ns)); err != nil {
			return nil, fmt.Errorf("move %s into netns %s: %w", peerName, p.Netns, err)
		}
		fault.Point("attach-after-spare-moved")
		if peer, err = nsh.LinkByName(peerName); err != nil {
			return nil, fmt.Errorf("find %s in netns %s: %w", peerName, p.Netns, err)
		}
	}
	return peer, nil
}

// nameSparePeer gives the free end, in the namespace, p's name and MAC.
func nameSparePeer(nsh *netlink.Handle, p model.Port, peer netlink.Link) (netlink.Link, error) {
	if peer.Attrs().Name == p.Ifname {
		return peer, nil
	}
	peerName := peer.Attrs().Name
	mac, err := net.ParseMAC(p.MAC)
	if err != nil {
		return nil, fmt.Errorf("mac %q: %w", p.MAC, err)
	}
	// Both while the link is down, as it is until configureNamespaceEnd.
	if err := nsh.LinkSetHardwareAddr(peer, mac); err != nil {
		return nil, fmt.Errorf("set mac of %s: %w", peerName, err)
	}
	if err := nsh.LinkSetName(peer, p.Ifname); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("%w: interface %s already exists in netns %s", datapath.ErrConflict, p.Ifname, p.Netns)
		}
		return nil, fmt.Errorf("rename %s to %s: %w", peerName, p.Ifname, err)
	}
	return nsh.LinkByName(p.Ifname)
}

// DeleteSpare deletes the spare called name if it is free or port's; a
// missing link is success, and a link that is someone else's is left alone
// with ErrConflict.
func DeleteSpare(name, port string) error {
	if err := Delete(name, datapath.PortAlias(port)); !errors.Is(err, datapath.ErrConflict) {
		return err
	}
	return Delete(name, SpareAlias)
}
