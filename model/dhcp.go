package model

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// The network's DHCP fields (docs/DESIGN.md §8.4).

// AddrList is a network's DNS servers in order, the first the primary, as
// a string ("10.1.0.53,9.9.9.9"; "" for none) so that Network stays
// comparable (==). Its JSON is the list of addresses.
type AddrList string

// NewAddrList checks a network's dns and returns it in canonical form: in
// order, each address once, unicast IPv4 only — a client can ask nothing
// of 0.0.0.0, a broadcast, multicast or loopback address.
func NewAddrList(addrs []string) (AddrList, error) {
	if len(addrs) > v1.MaxDNS {
		return "", invalid("dns: %d servers, at most %d", len(addrs), v1.MaxDNS)
	}
	seen := map[netip.Addr]bool{}
	out := make([]string, 0, len(addrs))
	for i, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return "", invalid("dns[%d]: %q is not an IPv4 address", i, s)
		}
		if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return "", invalid("dns[%d]: %s is not a unicast address", i, a)
		}
		if seen[a] {
			return "", invalid("dns: %s is listed twice", a)
		}
		seen[a] = true
		out = append(out, a.String())
	}
	return AddrList(strings.Join(out, ",")), nil
}

// Strings are the addresses as text, in order; nil for none.
func (l AddrList) Strings() []string {
	if l == "" {
		return nil
	}
	return strings.Split(string(l), ",")
}

// Addrs are the addresses, in order; nil for none.
func (l AddrList) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, s := range l.Strings() {
		out = append(out, netip.MustParseAddr(s)) // NewAddrList made them
	}
	return out
}

// MarshalJSON writes the list of addresses.
func (l AddrList) MarshalJSON() ([]byte, error) {
	addrs := l.Strings()
	if addrs == nil {
		addrs = []string{}
	}
	return json.Marshal(addrs)
}

// UnmarshalJSON reads a list of addresses, as NewAddrList takes them.
func (l *AddrList) UnmarshalJSON(b []byte) error {
	var addrs []string
	if err := json.Unmarshal(b, &addrs); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	list, err := NewAddrList(addrs)
	if err != nil {
		return err
	}
	*l = list
	return nil
}

var domainLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// canonicalDomain checks a network's domain and returns it lower-cased:
// DNS names compare without case, so "Lab.Example" and "lab.example" are
// one spec. It is handed out as option 15, which clients write into
// resolv.conf as is: nothing but letters, digits, hyphens and dots.
func canonicalDomain(s string) (string, error) {
	d := strings.ToLower(s)
	ok := len(d) <= v1.MaxDomain
	for label := range strings.SplitSeq(d, ".") {
		ok = ok && domainLabelRE.MatchString(label)
	}
	if !ok {
		return "", invalid("domain %q: labels of 1-63 letters, digits and hyphens, not starting or ending with a hyphen, %d characters at most, no trailing dot", s, v1.MaxDomain)
	}
	return d, nil
}

// dhcpOf fills in the network's DHCP fields from the spec.
func dhcpOf(n *Network, s v1.NetworkSpec) error {
	n.DHCP = s.DHCP == nil || *s.DHCP
	dns, err := NewAddrList(s.DNS)
	if err != nil {
		return err
	}
	n.DNS = dns
	if s.Domain != "" {
		if n.Domain, err = canonicalDomain(s.Domain); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalJSON reads a network record. One written before networks had
// DHCP has no dhcp key: it answers DHCP, as every network does unless
// told not to (docs/DESIGN.md §8.4).
func (n *Network) UnmarshalJSON(b []byte) error {
	type record Network // without this method
	r := record{DHCP: true}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	*n = Network(r)
	return nil
}

// SameImmutable reports whether o asks for what n is but for the mutable
// fields — DHCP, DNS and Domain — which a PUT changes in place, as a
// port's (docs/DESIGN.md §8.0): they change what DHCP answers, not the
// network's links or flows' addresses.
func (n Network) SameImmutable(o Network) bool {
	o.DHCP, o.DNS, o.Domain = n.DHCP, n.DNS, n.Domain
	return n.SameSpec(o)
}
