package v1

import "net/netip"

// Port types (PortSpec.Type, Port.Type).
const (
	PortVeth = "veth" // a veth pair with one end, addressed, inside a network namespace
	PortTap  = "tap"  // a persistent tap device on the host, for a VM or a user-space program
)

// NetworkSpec is the body of PUT /v1/networks/{name}.
type NetworkSpec struct {
	Subnet     string `json:"subnet"`
	Gateway    string `json:"gateway,omitempty"`
	MTU        int    `json:"mtu,omitempty"`
	Masquerade bool   `json:"masquerade,omitempty"`
	// DHCP, DNS and Domain are the network's DHCP (docs/DESIGN.md §8.4):
	// DHCP absent or true answers DHCPv4 on its ports, false turns it off;
	// DNS (option 6, in order, at most MaxDNS) and Domain (option 15) go
	// into the answers when set. All three are mutable: a PUT that changes
	// only them applies them in place (clients see them when they renew).
	DHCP   *bool    `json:"dhcp,omitempty"`
	DNS    []string `json:"dns,omitempty"`
	Domain string   `json:"domain,omitempty"`
}

// MaxDNS is how many DNS servers a network hands out.
const MaxDNS = 8

// MaxDomain is the longest domain (in text, without a trailing dot) a
// network hands out: with MaxDNS servers and a client identifier of up to
// 32 bytes echoed, the largest answer is then a 576-byte IP datagram, all
// that RFC 2131 §2 promises a client takes (dhcp's TestLargestAnswerFits).
// DNS allows 253; no search domain is that long.
const MaxDomain = 188

// Network is a network as the API shows it: the fields and JSON of the
// stored model.Network (model/view_test.go holds the two together), so
// that answers and records keep one shape.
type Network struct {
	Name       string       `json:"name"`
	Subnet     netip.Prefix `json:"subnet"`
	Gateway    netip.Addr   `json:"gateway"`
	MTU        int          `json:"mtu"`
	Masquerade bool         `json:"masquerade"`
	ID         int          `json:"id"`
	DHCP       bool         `json:"dhcp"`
	DNS        []string     `json:"dns,omitempty"`
	Domain     string       `json:"domain,omitempty"`
}

// NetworkList is GET /v1/networks.
type NetworkList struct {
	Networks []Network `json:"networks"`
}

// RouterSpec is the body of PUT /v1/routers/{name}.
type RouterSpec struct {
	Networks []string `json:"networks"`
}

// Router is a router as the API shows it, networks sorted: the JSON of the
// stored model.Router.
type Router struct {
	Name     string   `json:"name"`
	Networks []string `json:"networks"`
	ID       int      `json:"id"`
}

// RouterList is GET /v1/routers.
type RouterList struct {
	Routers []Router `json:"routers"`
}

// PortSpec is the body of PUT /v1/ports/{name}. IP and MAC are allocated when absent.
type PortSpec struct {
	Network string `json:"network"`
	Netns   string `json:"netns,omitempty"`
	Ifname  string `json:"ifname,omitempty"`
	IP      string `json:"ip,omitempty"`
	MAC     string `json:"mac,omitempty"`
	Type    string `json:"type,omitempty"`
	// DefaultRoute (veth only): absent, the port sets the namespace's
	// default route only where there is none; true, it takes the default
	// route over; false, it never sets one, as a secondary interface of a
	// container whose default route another port holds (docs/CNI.md).
	DefaultRoute *bool `json:"default_route,omitempty"`
	// ReleaseWithNetns ties the port to its namespace (veth only): a PUT
	// of the port's name replaces it once its namespace has gone, and the
	// daemon releases it after --netns-grace of its namespace gone. The
	// CNI plugin sets it; without it a port stays until it is deleted.
	ReleaseWithNetns bool `json:"release_with_netns,omitempty"`
	// Owner and Group (tap only) let that user or group, besides root,
	// open the tap (a VM runtime run unprivileged): a name, resolved by
	// the daemon when the port is made, or a numeric ID.
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	// MultiQueue (tap only) makes a multi-queue tap, as qemu's queues=N
	// (N ≥ 2) needs. Queues says the same the way qemu and libvirt do:
	// 1 is a single-queue tap, 2-256 a multi-queue one.
	MultiQueue bool `json:"multi_queue,omitempty"`
	Queues     int  `json:"queues,omitempty"`
	// Adopt (tap only) takes over the tap named by Ifname that a VM
	// runtime made, instead of refusing it; the port's DELETE leaves the
	// device to that runtime.
	Adopt bool `json:"adopt,omitempty"`
	// SecurityGroups are the groups whose rules filter the port's
	// traffic (docs/DESIGN.md §8.1), at most MaxPortGroups; none leaves
	// it unrestricted. Mutable: a PUT that changes only them applies
	// them in place (§8.0).
	SecurityGroups []string `json:"security_groups,omitempty"`
	// Configure (veth only): absent or true, the daemon addresses the
	// namespace end and sets its route; false leaves it named, up and
	// unaddressed, for a DHCP client inside (docs/DESIGN.md §8.4). The
	// port's address is its own all the same. Mutable (§8.0).
	Configure *bool `json:"configure,omitempty"`
}

// NetnsPath resolves a netns field (PortSpec.Netns, Port.Netns) to a
// filesystem path: a bare name refers to `ip netns` (/var/run/netns/NAME),
// anything else is an absolute path.
func NetnsPath(netns string) string {
	if netns == "" || netns[0] == '/' {
		return netns
	}
	return "/var/run/netns/" + netns
}

// Port is a port as the API shows it: with its address prefix and gateway.
type Port struct {
	Name       string `json:"name"`
	Network    string `json:"network"`
	Type       string `json:"type"`
	Netns      string `json:"netns,omitempty"`
	Ifname     string `json:"ifname"`
	IP         string `json:"ip"`
	MAC        string `json:"mac"`
	Gateway    string `json:"gateway"`
	HostIfname string `json:"host_ifname"`
	Ofport     int    `json:"ofport,omitempty"`
	Host       string `json:"host,omitempty"`
	// DefaultRoute is the port's spec, absent when not asked; what it
	// displaced is the daemon's.
	DefaultRoute     *bool `json:"default_route,omitempty"`
	ReleaseWithNetns bool  `json:"release_with_netns,omitempty"`
	// A tap's spec: Owner and Group as the numeric IDs they were resolved
	// to, MultiQueue whichever of multi_queue and queues asked for it.
	Owner      string `json:"owner,omitempty"`
	Group      string `json:"group,omitempty"`
	MultiQueue bool   `json:"multi_queue,omitempty"`
	Adopt      bool   `json:"adopt,omitempty"`
	// SecurityGroups as the spec listed them, sorted.
	SecurityGroups []string `json:"security_groups,omitempty"`
	// Configure is false when the spec says so, absent otherwise.
	Configure *bool `json:"configure,omitempty"`
	// Status tells whether this host's port forwards now (PortForwarding
	// or PortDown) and, when it does not, why: StatusReason is one of a
	// fixed set the controller names (docs/API.md), StatusDetail the
	// datapath's words. It is what the daemon last found, never stored;
	// other hosts' ports have none.
	Status       string `json:"status,omitempty"`
	StatusReason string `json:"status_reason,omitempty"`
	StatusDetail string `json:"status_detail,omitempty"`
}

// Port statuses (Port.Status).
const (
	PortForwarding = "forwarding"
	PortDown       = "down"
)

// PortList is GET /v1/ports.
type PortList struct {
	Ports []Port `json:"ports"`
}

// Host is a host as GET /v1/hosts shows it.
type Host struct {
	Name       string `json:"name"`
	UnderlayIP string `json:"underlay_ip,omitempty"`
	Ports      int    `json:"ports"`
	Self       bool   `json:"self,omitempty"`
}

// HostList is GET /v1/hosts.
type HostList struct {
	Hosts []Host `json:"hosts"`
}

// Info is GET /v1/info: the daemon and its backend.
type Info struct {
	Backend      string `json:"backend"` // "ovs" or "linux"
	Bridge       string `json:"bridge"`
	DatapathType string `json:"datapath_type"` // OVS datapath type; empty on Linux
	Version      string `json:"version"`
	// OpenFlowConnected: the bridge is connected to the daemon and has
	// its flows (OVS only).
	OpenFlowConnected bool   `json:"openflow_connected"`
	Host              string `json:"host"`
	Cluster           bool   `json:"cluster"`
	// NoDHCP says why no port's DHCP is answered although networks ask
	// for it (the Linux backend without packet sockets); absent otherwise.
	NoDHCP string `json:"no_dhcp,omitempty"`
}

// Error is the body of every answer that is not a success.
type Error struct {
	Error string `json:"error"`
}
