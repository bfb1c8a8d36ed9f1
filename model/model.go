// Package model holds ovs-vnet's desired-state objects — networks and ports — and the
// rules that make a request for one of them valid. It does no I/O: the controller
// stores these objects and the datapath backends realise them.
package model

import (
	"cmp"
	"net/netip"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// Network is an L2 segment with one IPv4 subnet. Its fields and JSON tags
// are v1.Network's: the stored form and the answer stay one shape.
type Network struct {
	Name       string       `json:"name"`
	Subnet     netip.Prefix `json:"subnet"`
	Gateway    netip.Addr   `json:"gateway"`
	MTU        int          `json:"mtu"`
	Masquerade bool         `json:"masquerade"`
	// ID is a small number unique among networks, assigned at creation and never
	// reused while the network exists; backends derive per-network datapath
	// identifiers from it (reg0 and the flood group ID on OVS).
	ID int `json:"id"`
	// DHCP, DNS and Domain are what the network's DHCP answers carry, and
	// whether it answers at all (docs/DESIGN.md §8.4); mutable
	// (SameImmutable). A record without the dhcp key answers
	// (UnmarshalJSON).
	DHCP   bool     `json:"dhcp"`
	DNS    AddrList `json:"dns,omitempty"`
	Domain string   `json:"domain,omitempty"`
}

// Port attaches a workload to a network.
type Port struct {
	Name    string     `json:"name"`
	Network string     `json:"network"`
	Type    string     `json:"type"`
	Netns   string     `json:"netns,omitempty"`
	Ifname  string     `json:"ifname"`
	IP      netip.Addr `json:"ip"`
	MAC     string     `json:"mac"` // canonical form: lower case, colon separated
	// HostIfname is the host side of the port: the veth end or the tap device.
	// It is fixed when the port is created so that a crash at any later step
	// still tells the next run which link to look for.
	HostIfname string `json:"host_ifname"`
	// Ofport is the OpenFlow port number on OVS, 0 on the Linux backend.
	Ofport int `json:"ofport,omitempty"`
	// Host is the name of the host the port is on (--host-name).
	Host string `json:"host,omitempty"`
	// DefaultRoute asks for the namespace's default route even where the
	// namespace has one already: the port takes it over.
	DefaultRoute bool `json:"default_route,omitempty"`
	// NoDefaultRoute keeps the port from setting a default route at all,
	// even where the namespace has none (default_route: false).
	NoDefaultRoute bool `json:"no_default_route,omitempty"`
	// ReleaseWithNetns: the port lives and dies with its namespace
	// (controller/release.go).
	ReleaseWithNetns bool `json:"release_with_netns,omitempty"`
	// Owner and Group (tap only) are the user and group IDs, in decimal,
	// that may open the tap besides root (TUNSETOWNER, TUNSETGROUP); empty
	// when not asked. A request may give names: the controller resolves
	// them before the port is stored, so that a record, and SameSpec,
	// holds one spelling.
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	// MultiQueue (tap only): the tap has IFF_MULTI_QUEUE.
	MultiQueue bool `json:"multi_queue,omitempty"`
	// Adopt (tap only): the tap is a VM runtime's, taken over when the
	// port is attached and handed back, not deleted, when it is detached.
	Adopt bool `json:"adopt,omitempty"`
	// SecurityGroups are the groups whose rules filter the port's
	// traffic; "" leaves it unrestricted. The first mutable field
	// (SameImmutable).
	SecurityGroups GroupList `json:"security_groups,omitempty"`
	// NoConfigure (veth only): configure:false, the namespace end is left
	// unaddressed for a DHCP client inside (docs/DESIGN.md §8.4). Mutable.
	// The negative is stored so that older records stay configured.
	NoConfigure bool `json:"no_configure,omitempty"`
	// Displaced is the default route a DefaultRoute port found in its
	// namespace, read before the port is recorded and replaced only after:
	// its DELETE puts it back, after a restart too. Zero when there was none.
	Displaced Route `json:"displaced_route,omitzero"`
}

// Route is an IPv4 default route of a port's namespace, as far as putting
// it back needs: where it led, through which interface, and how.
type Route struct {
	Gateway  netip.Addr `json:"gateway,omitzero"`
	Dev      string     `json:"dev"`
	Metric   int        `json:"metric,omitempty"`
	Src      netip.Addr `json:"src,omitzero"`
	Protocol int        `json:"protocol,omitempty"` // rtm_protocol: boot, static, dhcp...
	Onlink   bool       `json:"onlink,omitempty"`
}

// RemotePort is a port on another host of a cluster, as a host that
// forwards to it sees it.
type RemotePort struct {
	Port   Port       // Host names the other host; Ofport means nothing here
	HostIP netip.Addr // that host's underlay address: where its tunnels end
}

// CompareRemote orders remote ports by name (the controller's order) and,
// for a name listed twice, differently, always the same one first.
func CompareRemote(a, b RemotePort) int {
	if c := strings.Compare(a.Port.Name, b.Port.Name); c != 0 {
		return c
	}
	return cmp.Or(strings.Compare(a.Port.Network, b.Port.Network), a.HostIP.Compare(b.HostIP), a.Port.IP.Compare(b.Port.IP),
		strings.Compare(a.Port.MAC, b.Port.MAC), strings.Compare(string(a.Port.SecurityGroups), string(b.Port.SecurityGroups)))
}

// View renders the network for the API.
func (n Network) View() v1.Network {
	return v1.Network{Name: n.Name, Subnet: n.Subnet, Gateway: n.Gateway, MTU: n.MTU, Masquerade: n.Masquerade,
		ID: n.ID, DHCP: n.DHCP, DNS: n.DNS.Strings(), Domain: n.Domain}
}

// NetnsPath is where the port's network namespace lives: a bare name refers to
// `ip netns` (/var/run/netns/NAME), anything else is an absolute path.
func (p Port) NetnsPath() string {
	return v1.NetnsPath(p.Netns)
}

// View renders the port in its network for the API.
func (p Port) View(n Network) v1.Port {
	return v1.Port{
		Name:       p.Name,
		Network:    p.Network,
		Type:       p.Type,
		Netns:      p.Netns,
		Ifname:     p.Ifname,
		IP:         netip.PrefixFrom(p.IP, n.Subnet.Bits()).String(),
		MAC:        p.MAC,
		Gateway:    n.Gateway.String(),
		HostIfname: p.HostIfname,
		Ofport:     p.Ofport,
		Host:       p.Host,

		DefaultRoute:     p.defaultRouteSpec(),
		ReleaseWithNetns: p.ReleaseWithNetns,
		Owner:            p.Owner,
		Group:            p.Group,
		MultiQueue:       p.MultiQueue,
		Adopt:            p.Adopt,
		SecurityGroups:   p.SecurityGroups.Names(),
		Configure:        p.configureSpec(),
	}
}

// configureSpec is the port's configure field as a spec writes it: false
// when it is, absent (the default, true) otherwise.
func (p Port) configureSpec() *bool {
	if p.NoConfigure {
		return new(bool)
	}
	return nil
}

// defaultRouteSpec is default_route as the spec gave it: absent, true or
// false.
func (p Port) defaultRouteSpec() *bool {
	switch {
	case p.DefaultRoute:
		return &p.DefaultRoute
	case p.NoDefaultRoute:
		return new(bool)
	}
	return nil
}
