package model

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// Limits of the API's fields (docs/DESIGN.md §3).
const (
	MinMTU       = 576
	MaxMTU       = 9000
	DefaultMTU   = 1500
	MinPrefixLen = 8
	MaxPrefixLen = 30
	maxIfname    = 15 // IFNAMSIZ - 1
)

var netnsRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", v1.ErrInvalid, fmt.Sprintf(format, args...))
}

// NewNetwork checks the spec and returns the network it asks for, defaults
// filled in. The ID is left for the caller to assign.
func NewNetwork(name string, s v1.NetworkSpec) (Network, error) {
	if err := v1.ValidateName(name); err != nil {
		return Network{}, err
	}
	if s.Subnet == "" {
		return Network{}, invalid("subnet is required")
	}
	subnet, err := netip.ParsePrefix(s.Subnet)
	if err != nil || !subnet.Addr().Is4() {
		return Network{}, invalid("subnet %q is not an IPv4 CIDR such as 10.10.0.0/24", s.Subnet)
	}
	if subnet != subnet.Masked() {
		return Network{}, invalid("subnet %q has host bits set; did you mean %s?", s.Subnet, subnet.Masked())
	}
	if b := subnet.Bits(); b < MinPrefixLen || b > MaxPrefixLen {
		return Network{}, invalid("subnet %q: prefix length must be /%d to /%d", s.Subnet, MinPrefixLen, MaxPrefixLen)
	}
	if err := checkSpecialPurpose(subnet); err != nil {
		return Network{}, err
	}
	n := Network{Name: name, Subnet: subnet, Gateway: subnet.Addr().Next(), MTU: DefaultMTU, Masquerade: s.Masquerade}
	if s.Gateway != "" {
		gw, err := netip.ParseAddr(s.Gateway)
		if err != nil || !gw.Is4() {
			return Network{}, invalid("gateway %q is not an IPv4 address", s.Gateway)
		}
		if !IsHostAddr(subnet, gw) {
			return Network{}, invalid("gateway %s is not a usable host address of %s", gw, subnet)
		}
		n.Gateway = gw
	}
	if s.MTU != 0 {
		if s.MTU < MinMTU || s.MTU > MaxMTU {
			return Network{}, invalid("mtu %d is outside %d-%d", s.MTU, MinMTU, MaxMTU)
		}
		n.MTU = s.MTU
	}
	if err := dhcpOf(&n, s); err != nil {
		return Network{}, err
	}
	return n, nil
}

// specialPurpose are the IPv4 ranges no network may touch (RFC 6890): the
// host's stack treats their addresses specially, so a network there does not
// forward — and on the host side (masquerade, the Linux backend's gateway)
// it breaks the host itself: a route for part of 127.0.0.0/8 through a
// bridge takes the host's own loopback traffic, its API included. 240.0.0.0/4
// holds the limited broadcast address 255.255.255.255 too.
var specialPurpose = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" (RFC 1122)`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (RFC 1122)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (RFC 3927)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (RFC 5771)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (RFC 1112; with the limited broadcast address 255.255.255.255)"},
}

// checkSpecialPurpose refuses a subnet that lies in, or contains, one of
// the special-purpose ranges; prefixes overlap only that way.
func checkSpecialPurpose(subnet netip.Prefix) error {
	for _, sp := range specialPurpose {
		if !subnet.Overlaps(sp.prefix) {
			continue
		}
		where := fmt.Sprintf("lies in %s, which is", sp.prefix)
		switch {
		case subnet == sp.prefix:
			where = "is"
		case subnet.Bits() < sp.prefix.Bits():
			where = fmt.Sprintf("contains %s, which is", sp.prefix)
		}
		return invalid("subnet %s %s %s: networks may not use special-purpose addresses; pick a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
			subnet, where, sp.what)
	}
	return nil
}

// SameSpec reports whether two networks were asked for with the same spec; the
// assigned ID does not count.
func (n Network) SameSpec(o Network) bool {
	o.ID = n.ID
	return n == o
}

// IsHostAddr reports whether a lies in p and is neither its network nor its
// broadcast address.
func IsHostAddr(p netip.Prefix, a netip.Addr) bool {
	return p.Contains(a) && a != p.Addr() && a != Broadcast(p)
}

// Broadcast returns the last address of an IPv4 prefix.
func Broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	for i := 3; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	return netip.AddrFrom4(b)
}

// NewPort checks the fields that need no other object and returns the port
// with defaults filled in; IP and MAC stay zero when the spec leaves them
// out. The caller checks the IP against the network and the namespace
// against the host.
func NewPort(name string, s v1.PortSpec) (Port, error) {
	if err := v1.ValidateName(name); err != nil {
		return Port{}, err
	}
	p := Port{Name: name, Network: s.Network, Type: s.Type, Netns: s.Netns, Ifname: s.Ifname,
		ReleaseWithNetns: s.ReleaseWithNetns, NoConfigure: s.Configure != nil && !*s.Configure}
	if s.DefaultRoute != nil {
		p.DefaultRoute, p.NoDefaultRoute = *s.DefaultRoute, !*s.DefaultRoute
	}
	if s.Network == "" {
		return Port{}, invalid("network is required")
	}
	if err := v1.ValidateName(s.Network); err != nil {
		return Port{}, invalid("network: %v", err)
	}
	groups, err := NewGroupList(s.SecurityGroups)
	if err != nil {
		return Port{}, err
	}
	p.SecurityGroups = groups
	switch p.Type {
	case "", v1.PortVeth:
		p.Type = v1.PortVeth
		if p.Netns == "" {
			return Port{}, invalid("netns is required for a veth port")
		}
		if err := validateNetns(p.Netns); err != nil {
			return Port{}, err
		}
		if p.Ifname == "" {
			p.Ifname = "eth0"
		}
		if err := refuseTapSpec(s); err != nil {
			return Port{}, err
		}
		if p.NoConfigure && p.DefaultRoute {
			return Port{}, invalid("default_route true needs configure: an unconfigured port sets no route")
		}
	case v1.PortTap:
		if p.Netns != "" {
			return Port{}, invalid("netns must be empty for a tap port: the tap device stays on the host")
		}
		if p.DefaultRoute {
			return Port{}, invalid("default_route is for a veth port: a tap port has no namespace end")
		}
		p.NoDefaultRoute = false // nor a route to leave out
		if p.ReleaseWithNetns {
			return Port{}, invalid("release_with_netns is for a veth port: a tap port has no namespace")
		}
		if p.NoConfigure {
			return Port{}, invalid("configure applies to veth ports: the daemon never addresses a tap")
		}
		if err := tapSpec(&p, s); err != nil {
			return Port{}, err
		}
		if p.Ifname == "" {
			p.Ifname = HostIfname(name)
		}
	default:
		return Port{}, invalid("type %q must be %q or %q", p.Type, v1.PortVeth, v1.PortTap)
	}
	if err := ValidateIfname(p.Ifname); err != nil {
		return Port{}, err
	}
	if s.IP != "" {
		ip, err := netip.ParseAddr(s.IP)
		if err != nil || !ip.Is4() {
			return Port{}, invalid("ip %q is not an IPv4 address (give it without a prefix length)", s.IP)
		}
		p.IP = ip
	}
	if s.MAC != "" {
		mac, err := v1.ParseMAC(s.MAC)
		if err != nil {
			return Port{}, err
		}
		if err := (DatapathMACs{Networks: []string{s.Network}}).Check(mac); err != nil {
			return Port{}, err
		}
		p.MAC = mac
	}
	p.HostIfname = p.Ifname
	if p.Type == v1.PortVeth {
		p.HostIfname = HostIfname(name)
	}
	return p, nil
}

// SameSpec reports whether q asks for what p is: fields q leaves to allocation
// (IP, MAC) match whatever p was given, and the datapath's results and the
// route p displaced do not count. Nor does the host link: a request cannot
// name it (NewPort derives it from the name, type and ifname, which
// count), and the OVS backend may give the port a spare's instead
// (datapath/ovs/spares.go), so a retry must not be judged by it.
func (p Port) SameSpec(q Port) bool {
	if !q.IP.IsValid() {
		q.IP = p.IP
	}
	if q.MAC == "" {
		q.MAC = p.MAC
	}
	q.Ofport = p.Ofport
	q.Displaced = p.Displaced
	q.HostIfname = p.HostIfname
	return p == q
}

// SameImmutable reports whether q asks for what p is but for the mutable
// fields, which a PUT changes in place (docs/DESIGN.md §8.0): a port whose
// spec differs only in them keeps its link, address and flows. Every other
// field is immutable: a change of one is a new port, which a PUT refuses.
func (p Port) SameImmutable(q Port) bool {
	q.SecurityGroups = p.SecurityGroups
	q.NoConfigure = p.NoConfigure
	return p.SameSpec(q)
}

// UpgradedBy returns p as q asks for it, and whether q asks for p but for
// what a newer CNI plugin sets that an older one did not: ReleaseWithNetns,
// and NoDefaultRoute (default_route: false, sent for a secondary
// interface). Only each going from false to true is an upgrade; any other
// difference is another spec (SameSpec).
func (p Port) UpgradedBy(q Port) (Port, bool) {
	u := p
	u.ReleaseWithNetns = p.ReleaseWithNetns || q.ReleaseWithNetns
	u.NoDefaultRoute = p.NoDefaultRoute || q.NoDefaultRoute
	return u, u != p && u.SameSpec(q)
}

// DatapathMACs are the MACs the datapath gives itself, which no port may
// have: the datapath would take the port's frames for its own, or send
// the port's to itself.
//   - Every network's gateway MAC (BridgeMAC): the one the network's ports
//     send routed traffic to, on OVS (flows/pipeline) the source of every
//     packet routed into the network, and the Linux bridge's own on a single
//     host. Every network's, not only the port's: routers join networks into
//     one routed domain in which a port with a gateway's MAC would make one
//     MAC name both a router and a host, and which networks a router joins
//     may change after the port is made.
//   - On a cluster's Linux hosts, each host's own gateway MAC of every
//     network (BridgeMACOn): a port's peers on that host reach it through
//     that host's bridge, which keeps frames to its own MAC for itself.
//   - The OVS integration bridge's own interface (HostMAC, set as
//     other_config:hwaddr by datapath/ovs), to which masquerading networks
//     send what leaves them. It is refused whatever the backend: --backend
//     auto may pick OVS at the next start, with the port already stored.
//
// Check refuses those of them that the fields name; a zero field names none.
type DatapathMACs struct {
	Networks []string     // names of the networks
	Bridge   string       // --bridge
	Hosts    []netip.Addr // underlay addresses of a cluster's hosts
}

// Check refuses mac, in canonical form (v1.ParseMAC), when the datapath uses it.
func (d DatapathMACs) Check(mac string) error {
	refuse := func(what string) error {
		return invalid("mac %s is %s, which the datapath uses itself: a port with it would not forward; leave mac out to have one allocated", mac, what)
	}
	for _, n := range d.Networks {
		if mac == BridgeMAC(n) {
			return refuse(fmt.Sprintf("the gateway MAC of network %q", n))
		}
		for _, h := range d.Hosts {
			if mac == BridgeMACOn(n, h) {
				return refuse(fmt.Sprintf("the gateway MAC of network %q on the host at %s", n, h))
			}
		}
	}
	if d.Bridge != "" && mac == HostMAC(d.Bridge) {
		return refuse(fmt.Sprintf("the MAC of the integration bridge %s's own interface", d.Bridge))
	}
	return nil
}

// ValidateIfname applies the kernel's rules for interface names (dev_valid_name).
func ValidateIfname(name string) error {
	if name == "" || len(name) > maxIfname || name == "." || name == ".." ||
		strings.ContainsAny(name, "/:") || strings.IndexFunc(name, isSpace) >= 0 {
		return invalid("ifname %q must be 1-%d characters, without '/', ':' or white space, and not '.' or '..'", name, maxIfname)
	}
	return nil
}

func isSpace(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }

func validateNetns(ns string) error {
	if ns[0] == '/' {
		if filepath.Clean(ns) != ns {
			return invalid("netns path %q is not clean (no '..', '//' or trailing '/')", ns)
		}
		return nil
	}
	if !netnsRE.MatchString(ns) || ns == "." || ns == ".." {
		return invalid("netns %q must be a name under /var/run/netns or an absolute path", ns)
	}
	return nil
}
