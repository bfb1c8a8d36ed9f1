package link

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// Group is the interface group (IFLA_GROUP, `ip link set IF group 30318`) of
// every link that carries ports' frames into the host: veth host ends, taps,
// spares and the Linux backend's VXLAN devices. The OVS backend's nftables
// rules drop whatever the host's own stack would take from the group
// (datapath/ovs/host.go): one static rule per family, however many ports come
// and go. The Linux backend's ports hand their frames to their bridge, so the
// host's stack meets them with the bridge as input interface; its links are
// in the group too, unused there, so both backends seal links alike. 0x766e
// is "vn".
const Group = 0x766e

// Seal keeps the host's own IP stack off a link that carries ports' frames,
// before the link first comes up and again whenever it is adopted, so a link
// made by an older version is sealed too. Every step reads first and changes
// only what differs: sealing a sealed link costs a few reads.
//
// On the userspace datapath ovs-vswitchd reads such a link with a packet
// socket, yet the host kernel processes the same frames, so the link is put in
// Group, where the OVS backend's nftables rules drop them; and its sysctls
// keep the host from answering or learning where no rule is loaded (after an
// operator's `nft flush ruleset`; on the Linux backend, which needs no such
// rule, in the moment between a host end coming up and joining its bridge):
//
//   - IPv6 off: no link-local address, no router advertisement or neighbour
//     discovery taken from a port, IPv6 dropped before any hook.
//   - arp_ignore=8: no ARP reply for any of the host's addresses, so no
//     neighbour entry learnt from a request either.
//   - rp_filter=1 (strict): no route leads out of such a link, so IPv4 from
//     it with any unicast source fails the reverse-path check before local
//     delivery. Broadcast from source 0.0.0.0 and multicast are not checked
//     by the kernel: only the nftables rule stops those.
func Seal(l netlink.Link) error {
	name := l.Attrs().Name
	if err := disableIPv6(name); err != nil {
		return err
	}
	for _, s := range []struct{ key, value string }{{"arp_ignore", "8"}, {"rp_filter", "1"}} {
		if err := setSysctl("/proc/sys/net/ipv4/conf/"+name+"/"+s.key, s.value); err != nil {
			return fmt.Errorf("seal %s: %w", name, err)
		}
	}
	if l.Attrs().Group != Group {
		if err := netlink.LinkSetGroup(l, Group); err != nil {
			return fmt.Errorf("seal %s: set group %#x: %w", name, Group, err)
		}
		l.Attrs().Group = Group
	}
	return nil
}

// SealGateway keeps the host, on a link that holds networks' gateway
// addresses (the Linux backend's bridges), to what the networks are offered
// there: IPv6 off, ARP answered only for the addresses on the link itself
// (arp_ignore=1: the host's other addresses stay unknown to the ports) and
// asked only from them (arp_announce=2).
func SealGateway(name string) error {
	if err := disableIPv6(name); err != nil {
		return err
	}
	for _, s := range []struct{ key, value string }{{"arp_ignore", "1"}, {"arp_announce", "2"}} {
		if err := setSysctl("/proc/sys/net/ipv4/conf/"+name+"/"+s.key, s.value); err != nil {
			return fmt.Errorf("seal %s: %w", name, err)
		}
	}
	return nil
}

// disableIPv6 turns IPv6 off on the link called name (net.ipv6.conf.NAME.
// disable_ipv6=1, in the daemon's network namespace): the link gets no
// address and the host takes nothing from it over IPv6. Networks are IPv4
// only, so this is right for every link ovs-vnet makes. A kernel without
// IPv6 has nothing to turn off, nor has a link whose MTU is below IPv6's
// minimum (a network's may be 576): the kernel takes IPv6 and its conf off
// such a link, and a network's MTU never changes.
func disableIPv6(name string) error {
	err := setSysctl("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", "1")
	if errors.Is(err, fs.ErrNotExist) {
		if _, statErr := os.Stat("/proc/sys/net/ipv6"); errors.Is(statErr, fs.ErrNotExist) {
			return nil
		}
		if l, linkErr := netlink.LinkByName(name); linkErr == nil && l.Attrs().MTU < ipv6MinMTU {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("IPv6 off on %s: %w", name, err)
	}
	return nil
}

// ipv6MinMTU is IPv6's minimum link MTU (RFC 8200 §5).
const ipv6MinMTU = 1280

// setSysctl writes value to the sysctl file path unless it holds it already:
// a write takes the kernel's RTNL lock, which a read does not.
func setSysctl(path, value string) error {
	cur, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(cur)) == value {
		return nil
	}
	return os.WriteFile(path, []byte(value), 0o644)
}
