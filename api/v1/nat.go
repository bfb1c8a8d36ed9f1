package v1

import "net/netip"

// Floating IPs and port forwards (docs/DESIGN.md §8.5): the seeds' DNAT +
// SNAT, made objects. Both name a port; deleting the port deletes them.

// ProtoTCP and ProtoUDP (trace.go) are the protocols a port forward takes;
// DefaultForwardProtocol is the one it gets without one.
const DefaultForwardProtocol = ProtoTCP

// FloatingIPSpec is the body of PUT /v1/floating-ips/{name}: a 1:1 NAT of
// Address onto the port's own address, inbound and for the port's own
// connections to the outside.
type FloatingIPSpec struct {
	// Address is an IPv4 address the outside network routes to the host;
	// ovs-vnet puts it on no interface.
	Address string `json:"address"`
	Port    string `json:"port"`
}

// FloatingIP is a floating IP as the API shows it.
type FloatingIP struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address"`
	Port    string     `json:"port"`
	// IP and Network are the port's: what the address maps onto.
	IP      netip.Addr `json:"ip"`
	Network string     `json:"network"`
	// Host is the port's host in a cluster: the one whose rules translate.
	Host string `json:"host,omitempty"`
	// Stats are the counters on the port's host, when asked for
	// (?stats=true).
	Stats *NATStats `json:"stats,omitempty"`
}

// PortForwardSpec is the body of PUT /v1/port-forwards/{name}: connections
// to the host's addresses (or HostIP) on HostPort reach the port on
// TargetPort, as `docker run -p HOST_PORT:TARGET_PORT` does.
type PortForwardSpec struct {
	Protocol string `json:"protocol,omitempty"` // ProtoTCP (default) or ProtoUDP
	HostPort int    `json:"host_port"`          // 1-65535
	Port     string `json:"port"`
	// TargetPort is the port's own port, 1-65535; 0 (absent) is HostPort.
	TargetPort int `json:"target_port,omitempty"`
	// HostIP is one IPv4 address to forward on; absent, every address of
	// the host but loopback.
	HostIP string `json:"host_ip,omitempty"`
}

// PortForward is a port forward as the API shows it: its spec with the
// defaults filled in, and the port resolved.
type PortForward struct {
	Name       string     `json:"name"`
	Protocol   string     `json:"protocol"`
	HostPort   int        `json:"host_port"`
	HostIP     netip.Addr `json:"host_ip,omitzero"`
	Port       string     `json:"port"`
	TargetPort int        `json:"target_port"`
	IP         netip.Addr `json:"ip"`
	Network    string     `json:"network"`
	Host       string     `json:"host,omitempty"`
	Stats      *NATStats  `json:"stats,omitempty"`
}

// NATStats count what a floating IP or a port forward carried on its
// port's host.
type NATStats struct {
	// Connections are the new connections translated towards the port.
	Connections uint64 `json:"connections"`
	// Packets and Bytes went towards the port through a forward, after
	// the translation (a forward's only).
	Packets uint64 `json:"packets,omitempty"`
	Bytes   uint64 `json:"bytes,omitempty"`
	// ConnectionsOut are the port's own connections that left with the
	// floating address as their source (a floating IP's only).
	ConnectionsOut uint64 `json:"connections_out,omitempty"`
}

// FloatingIPList is GET /v1/floating-ips.
type FloatingIPList struct {
	FloatingIPs []FloatingIP `json:"floating_ips"`
}

// PortForwardList is GET /v1/port-forwards.
type PortForwardList struct {
	PortForwards []PortForward `json:"port_forwards"`
}
