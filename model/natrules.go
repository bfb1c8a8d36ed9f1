package model

import (
	"cmp"
	"net/netip"
	"slices"
)

// NAT is everything the datapath enforces of floating IPs and port
// forwards on one host: the controller resolves it from the desired state
// (ResolveNAT) and hands it whole to the backend, which sends nothing when
// it is Equal to what it holds. One value for both backends, so that they
// translate one thing (docs/DESIGN.md §8.5).
type NAT struct {
	Floating []FloatingRule // sorted by name
	Forwards []ForwardRule  // sorted by name
}

// Target is the port a rule translates to, resolved.
type Target struct {
	Port    string
	Network string
	IP      netip.Addr
}

// FloatingRule is a floating IP of a port of this host.
type FloatingRule struct {
	Name    string
	Address netip.Addr
	Target
}

// ForwardRule is a port forward to a port of this host.
type ForwardRule struct {
	Name       string
	Proto      uint8      // ProtoTCP or ProtoUDP
	HostIP     netip.Addr // invalid: every address of the host but loopback
	HostPort   uint16
	TargetPort uint16
	Target
}

// Equal reports whether n and m translate the same: a backend holding one
// has nothing to send for the other.
func (n NAT) Equal(m NAT) bool {
	return slices.Equal(n.Floating, m.Floating) && slices.Equal(n.Forwards, m.Forwards)
}

// Empty reports whether n translates nothing.
func (n NAT) Empty() bool { return len(n.Floating) == 0 && len(n.Forwards) == 0 }

// LeftOut is a floating IP or forward of this host's port that the host
// cannot enforce, and why; the controller logs it and counts it.
type LeftOut struct {
	Kind   string // "floating-ip" or "port-forward"
	Name   string
	Reason string
}

// Kinds of LeftOut and Translation.
const (
	KindFloatingIP  = "floating-ip"
	KindPortForward = "port-forward"
)

// ResolveNAT is the NAT of one host: the floating IPs and forwards whose
// port is in ports (this host's attached ports), resolved to the port's
// address and network. The store refuses conflicts, but a host sees its
// objects as they are, and so the rules stay one per packet whatever it
// is given: a floating address that is one of hostAddrs (the host's own),
// or that an earlier floating IP (by name) has, a port's second floating
// IP, a forward that overlaps an earlier one or whose host_ip is a
// floating address or none of hostAddrs (stored by another host, or an
// address the host has lost), are left out.
func ResolveNAT(fips []FloatingIP, fwds []PortForward, ports map[string]Port, hostAddrs []netip.Addr) (NAT, []LeftOut) {
	var n NAT
	var left []LeftOut
	floating := map[netip.Addr]string{}
	floated := map[string]string{} // port → its floating IP
	for _, f := range slices.SortedFunc(slices.Values(fips), func(a, b FloatingIP) int { return cmp.Compare(a.Name, b.Name) }) {
		p, ok := ports[f.Port]
		if !ok {
			continue
		}
		reason := ""
		switch {
		case slices.Contains(hostAddrs, f.Address):
			reason = "the address is the host's own"
		case floating[f.Address] != "":
			reason = "the address is floating IP " + floating[f.Address] + "'s"
		case floated[f.Port] != "":
			reason = "port " + f.Port + " has floating IP " + floated[f.Port]
		}
		if reason != "" {
			left = append(left, LeftOut{Kind: KindFloatingIP, Name: f.Name, Reason: reason})
			continue
		}
		floating[f.Address], floated[f.Port] = f.Name, f.Name
		n.Floating = append(n.Floating, FloatingRule{Name: f.Name, Address: f.Address, Target: target(p)})
	}
	var kept []PortForward
	for _, f := range slices.SortedFunc(slices.Values(fwds), func(a, b PortForward) int { return cmp.Compare(a.Name, b.Name) }) {
		p, ok := ports[f.Port]
		if !ok {
			continue
		}
		reason := ""
		if i := slices.IndexFunc(kept, f.Overlaps); i >= 0 {
			reason = "host port " + f.String() + " is forwarded by " + kept[i].Name
		} else if f.HostIP.IsValid() && floating[f.HostIP] != "" {
			reason = "host_ip is floating IP " + floating[f.HostIP] + "'s address"
		} else if f.HostIP.IsValid() && !slices.Contains(hostAddrs, f.HostIP) {
			reason = "host_ip is not the host's"
		}
		if reason != "" {
			left = append(left, LeftOut{Kind: KindPortForward, Name: f.Name, Reason: reason})
			continue
		}
		kept = append(kept, f)
		n.Forwards = append(n.Forwards, ForwardRule{Name: f.Name, Proto: f.Proto, HostIP: f.HostIP,
			HostPort: f.HostPort, TargetPort: f.TargetPort, Target: target(p)})
	}
	return n, left
}

func target(p Port) Target { return Target{Port: p.Name, Network: p.Network, IP: p.IP} }

// HostAddress is Translate's local for the host's addresses local and the
// networks: a forward without a host_ip takes an address of the host but
// none in a network's subnet, as the rules skip them (datapath/natnft:
// `fib daddr type local ip daddr != { SUBNETS }`) — on Linux the gateways
// are host addresses, and a packet to one is not translated.
func HostAddress(local []netip.Addr, networks []Network) func(netip.Addr) bool {
	return func(a netip.Addr) bool {
		return slices.Contains(local, a) && !slices.ContainsFunc(networks, func(n Network) bool { return n.Subnet.Contains(a) })
	}
}

// Translation is what a rule makes of a new connection: its destination
// rewritten to To, on the port Target.
type Translation struct {
	Kind string // KindFloatingIP or KindPortForward
	Name string
	To   netip.AddrPort
	Target
}

// Translate is what the host's rules make of a new connection to dst
// (dport for tcp and udp): the reference both backends' rules are tested
// against, and the trace's NAT step. local reports whether an address is
// one of the host's (nftables' `fib daddr type local`). A floating
// address takes every protocol; a forward with a host_ip takes its
// address while it is local, one without every local address but
// loopback, which the kernel does not route to another host (no
// route_localnet). ok is false when no rule applies.
func (n NAT) Translate(dst netip.Addr, proto uint8, dport uint16, local func(netip.Addr) bool) (t Translation, ok bool) {
	for _, f := range n.Floating {
		if f.Address == dst {
			return Translation{Kind: KindFloatingIP, Name: f.Name, To: netip.AddrPortFrom(f.IP, dport), Target: f.Target}, true
		}
	}
	if proto != ProtoTCP && proto != ProtoUDP || dst.IsLoopback() {
		return Translation{}, false
	}
	// ResolveNAT leaves no two overlapping forwards, so at most one
	// matches; the order is the rules' (datapath/natnft), one address
	// before every address.
	for _, specific := range []bool{true, false} {
		for _, f := range n.Forwards {
			if f.Proto != proto || f.HostPort != dport || f.HostIP.IsValid() != specific {
				continue
			}
			if (!specific || f.HostIP == dst) && local(dst) {
				return Translation{Kind: KindPortForward, Name: f.Name, To: netip.AddrPortFrom(f.IP, f.TargetPort), Target: f.Target}, true
			}
		}
	}
	return Translation{}, false
}
