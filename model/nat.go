package model

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// Floating IPs and port forwards (docs/DESIGN.md §8.5) in their stored
// form. Both name a port, which must exist; the store deletes them with
// it.

// FloatingIP maps Address 1:1 onto Port's address: traffic to Address
// reaches the port, and the port's own connections to the outside leave
// with Address as their source.
type FloatingIP struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address"`
	Port    string     `json:"port"`
}

// PortForward forwards HostPort of the host's addresses — or of HostIP
// alone, when valid — to Port's TargetPort, for one protocol.
type PortForward struct {
	Name       string     `json:"name"`
	Proto      uint8      `json:"proto"` // ProtoTCP or ProtoUDP
	HostIP     netip.Addr `json:"host_ip,omitzero"`
	HostPort   uint16     `json:"host_port"`
	TargetPort uint16     `json:"target_port"`
	Port       string     `json:"port"`
}

// NewFloatingIP checks the spec and returns the floating IP it asks for.
// What depends on other objects — the port exists, the address is in no
// network's subnet and no other floating IP's — is the caller's to check.
func NewFloatingIP(name string, s v1.FloatingIPSpec) (FloatingIP, error) {
	if err := v1.ValidateName(name); err != nil {
		return FloatingIP{}, err
	}
	addr, err := natAddr("address", s.Address)
	if err != nil {
		return FloatingIP{}, err
	}
	if err := natPort(s.Port); err != nil {
		return FloatingIP{}, err
	}
	return FloatingIP{Name: name, Address: addr, Port: s.Port}, nil
}

// NewPortForward checks the spec and returns the forward it asks for,
// defaults filled in: protocol tcp, the target port the host port. That
// the port exists and no other forward of its host takes the host port is
// the caller's to check.
func NewPortForward(name string, s v1.PortForwardSpec) (PortForward, error) {
	if err := v1.ValidateName(name); err != nil {
		return PortForward{}, err
	}
	f := PortForward{Name: name, Port: s.Port}
	switch cmp.Or(s.Protocol, v1.DefaultForwardProtocol) {
	case v1.ProtoTCP:
		f.Proto = ProtoTCP
	case v1.ProtoUDP:
		f.Proto = ProtoUDP
	default:
		return PortForward{}, invalid("protocol must be tcp or udp, not %q", s.Protocol)
	}
	if s.HostPort < 1 || s.HostPort > 65535 {
		return PortForward{}, invalid("host_port %d is not a port: 1-65535 (required)", s.HostPort)
	}
	f.HostPort = uint16(s.HostPort)
	if tunnel := overlayTunnel(f.Proto, f.HostPort); tunnel != "" {
		return PortForward{}, invalid("host_port udp/%d is %s's, which carries a cluster's overlay between its hosts", f.HostPort, tunnel)
	}
	f.TargetPort = f.HostPort
	if s.TargetPort != 0 {
		if s.TargetPort < 1 || s.TargetPort > 65535 {
			return PortForward{}, invalid("target_port %d is not a port: 1-65535", s.TargetPort)
		}
		f.TargetPort = uint16(s.TargetPort)
	}
	if s.HostIP != "" {
		addr, err := natAddr("host_ip", s.HostIP)
		if err != nil {
			return PortForward{}, err
		}
		f.HostIP = addr
	}
	if err := natPort(s.Port); err != nil {
		return PortForward{}, err
	}
	return f, nil
}

// overlayTunnel names the tunnel whose port proto/port is, or is empty:
// a cluster's tunnels use VXLAN (datapath/linux/overlay.go) or, on OVS,
// VXLAN or Geneve, at their IANA ports. A forward on one would take the
// other hosts' tunnelled traffic at prerouting; it is refused on a lone
// host too, which may join a cluster later with its forwards stored.
func overlayTunnel(proto uint8, port uint16) string {
	switch {
	case proto != ProtoUDP:
		return ""
	case port == 4789:
		return "VXLAN"
	case port == 6081:
		return "Geneve"
	}
	return ""
}

// natAddr parses an address the host is to translate: IPv4, and none of
// the special-purpose ranges networks may not use either (loopback among
// them: the kernel does not route it without route_localnet).
func natAddr(field, s string) (netip.Addr, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil || !addr.Is4() {
		return netip.Addr{}, invalid("%s %q is not an IPv4 address such as 198.51.100.50", field, s)
	}
	for _, sp := range specialPurpose {
		if sp.prefix.Contains(addr) {
			return netip.Addr{}, invalid("%s %s lies in %s, which is %s", field, addr, sp.prefix, sp.what)
		}
	}
	return addr, nil
}

func natPort(port string) error {
	if port == "" {
		return invalid("port is required")
	}
	if err := v1.ValidateName(port); err != nil {
		return fmt.Errorf("port: %w", err)
	}
	return nil
}

// Overlaps reports whether f and g would take the same connections on one
// host: the same protocol and host port, on every address (an absent
// HostIP) or the same one. Two such forwards of one host are a conflict
// (409); forwards of ports on different hosts never are.
func (f PortForward) Overlaps(g PortForward) bool {
	return f.Proto == g.Proto && f.HostPort == g.HostPort &&
		(!f.HostIP.IsValid() || !g.HostIP.IsValid() || f.HostIP == g.HostIP)
}

// ProtoName is the API's word for a forward's protocol.
func (f PortForward) ProtoName() string {
	if f.Proto == ProtoUDP {
		return v1.ProtoUDP
	}
	return v1.ProtoTCP
}

// String names the forwarded host port as messages do: tcp/8080, or
// udp/192.0.2.9:53 for one address.
func (f PortForward) String() string {
	if f.HostIP.IsValid() {
		return f.ProtoName() + "/" + netip.AddrPortFrom(f.HostIP, f.HostPort).String()
	}
	return f.ProtoName() + "/" + strconv.Itoa(int(f.HostPort))
}

// View renders the floating IP for the API with its port p resolved.
func (f FloatingIP) View(p Port) v1.FloatingIP {
	return v1.FloatingIP{Name: f.Name, Address: f.Address, Port: f.Port, IP: p.IP, Network: p.Network, Host: p.Host}
}

// View renders the forward for the API with its port p resolved.
func (f PortForward) View(p Port) v1.PortForward {
	return v1.PortForward{Name: f.Name, Protocol: f.ProtoName(), HostPort: int(f.HostPort), HostIP: f.HostIP,
		Port: f.Port, TargetPort: int(f.TargetPort), IP: p.IP, Network: p.Network, Host: p.Host}
}
